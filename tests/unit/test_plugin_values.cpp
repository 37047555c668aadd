// worker/plugin_values: plugin arguments read from the codec's bytes and results written in
// them, checked against the codec itself in both directions.
#include <catch2/catch.hpp>
#include <cstring>
#include <skyhost/plugin.hpp>
#include <string>

#include "bindings/codec.hpp"
#include "worker/plugin_values.hpp"

using namespace skyhost;
using skyworker::ArgViews;
using skyworker::ResultWriter;

namespace {

struct State {
  lua_State* L = luaL_newstate();
  State() { luaL_openlibs(L); }
  ~State() { lua_close(L); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  operator lua_State*() const { return L; }
};

// The values `code` returns, as the codec encodes them.
std::string encode(lua_State* L, const char* code) {
  int top = lua_gettop(L);
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
    FAIL(lua_tostring(L, -1));
  wire::Writer w;
  codec::encode_values(L, top + 1, lua_gettop(L) - top, w);
  lua_settop(L, top);
  return w.take();
}

// Decodes result bytes with the codec and runs `check` on them (as ...).
void check_decoded(lua_State* L, std::string_view bytes, const char* check) {
  wire::Reader r(bytes);
  int n = codec::decode_values(L, r);
  REQUIRE(r.empty());
  if (luaL_loadstring(L, check) != LUA_OK) FAIL(lua_tostring(L, -1));
  lua_insert(L, -(n + 1));
  if (lua_pcall(L, n, 0, 0) != LUA_OK) FAIL(lua_tostring(L, -1));
}

std::string_view str(const sky_value& v) {
  REQUIRE(v.type == SKY_STRING);
  return {v.as.string.data, v.as.string.size};
}

}  // namespace

TEST_CASE("arguments: scalars and strings are views of the bytes") {
  State L;
  std::string bytes = encode(L, "return nil, true, false, -7, 2.5, 'a\\0b', ''");
  ArgViews v;
  v.parse(bytes);
  REQUIRE(v.size() == 7);
  CHECK(v.data()[0].type == SKY_NIL);
  CHECK((v.data()[1].type == SKY_BOOL && v.data()[1].as.boolean == 1));
  CHECK((v.data()[2].type == SKY_BOOL && v.data()[2].as.boolean == 0));
  CHECK((v.data()[3].type == SKY_INT && v.data()[3].as.integer == -7));
  CHECK((v.data()[4].type == SKY_FLOAT && v.data()[4].as.number == 2.5));
  CHECK(str(v.data()[5]) == std::string_view("a\0b", 3));
  // no copy: the view points into the message
  CHECK(v.data()[5].as.string.data >= bytes.data());
  CHECK(v.data()[5].as.string.data < bytes.data() + bytes.size());
  CHECK(str(v.data()[6]).empty());
}

TEST_CASE("arguments: lists, maps, holes, shared references") {
  State L;
  std::string bytes =
      encode(L, "local s = {7}; return {1, 2, {3}}, {a = 1, [2] = 'x'}, {1, nil, 3}, {}, {s, s}");
  ArgViews v;
  v.parse(bytes);
  REQUIRE(v.size() == 5);
  const sky_value& list = v.data()[0];
  REQUIRE(list.type == SKY_LIST);
  REQUIRE(list.as.list.size == 3);
  CHECK(list.as.list.items[2].type == SKY_LIST);
  CHECK(list.as.list.items[2].as.list.items[0].as.integer == 3);
  const sky_value& map = v.data()[1];
  REQUIRE(map.type == SKY_MAP);
  CHECK(map.as.map.size == 2);
  const sky_value& holes = v.data()[2];
  REQUIRE(holes.type == SKY_LIST);
  CHECK(holes.as.list.size == 3);
  CHECK(holes.as.list.items[1].type == SKY_NIL);
  CHECK((v.data()[3].type == SKY_LIST && v.data()[3].as.list.size == 0));
  const sky_value& shared = v.data()[4];
  CHECK(shared.as.list.items[0].as.list.items == shared.as.list.items[1].as.list.items);
}

TEST_CASE("arguments: what a plugin cannot take is refused") {
  State L;
  ArgViews v;
  CHECK_THROWS_WITH(v.parse(encode(L, "return print")), Catch::Contains("function"));
  CHECK_THROWS_WITH(v.parse(encode(L, "return function() end")), Catch::Contains("function"));
  CHECK_THROWS_WITH(v.parse(encode(L, "return setmetatable({}, {})")),
                    Catch::Contains("metatable"));
  CHECK_THROWS_WITH(v.parse(encode(L, "local t = {}; t.t = t; return t")),
                    Catch::Contains("contains itself"));
  CHECK_THROWS(v.parse(std::string("\x01\x06\x05", 3)));  // truncated table
  CHECK_THROWS(v.parse(std::string("\x01\x63", 2)));      // unknown tag
}

TEST_CASE("results: the codec reads what the writer wrote") {
  State L;
  ResultWriter w;
  const sky_api* api = ResultWriter::api();
  sky_call* c = w.call();
  api->push_nil(c);
  api->push_bool(c, 1);
  api->push_int(c, -42);
  api->push_float(c, 0.25);
  api->push_string(c, "a\0b", 3);
  api->begin_list(c, 2);
  api->push_int(c, 1);
  api->begin_map(c, 1);
  api->push_string(c, "k", 1);
  api->push_string(c, "v", 1);
  api->begin_list(c, 0);
  REQUIRE(w.finish());
  check_decoded(L, w.out().view(), R"(
    local n = select('#', ...)
    assert(n == 7, n)
    local a, b, c, d, e, f, g = ...
    assert(a == nil and b == true and c == -42 and math.type(c) == 'integer')
    assert(d == 0.25 and e == 'a\0b')
    assert(f[1] == 1 and f[2].k == 'v' and #f == 2)
    assert(type(g) == 'table' and next(g) == nil))");
}

TEST_CASE("results: large strings are written in place in shared memory") {
  State L;
  ResultWriter w;
  const size_t n = 3 << 20;
  char* p = ResultWriter::api()->push_string_alloc(w.call(), n);
  REQUIRE(p != nullptr);
  std::memset(p, 'x', n);
  REQUIRE(w.finish());
  auto region = w.out().take_region();
  REQUIRE(region != nullptr);
  CHECK(region->size() == w.out().size());
  check_decoded(L, region->view(), "local s = ...; assert(#s == 3 << 20 and s:sub(-1) == 'x')");
}

TEST_CASE("results: more than 127 values, and broken results") {
  State L;
  ResultWriter w;
  for (int i = 0; i < 300; ++i) ResultWriter::api()->push_int(w.call(), i);
  REQUIRE(w.finish());
  check_decoded(L, w.out().view(), "assert(select('#', ...) == 300 and select(300, ...) == 299)");

  ResultWriter unfinished;
  ResultWriter::api()->begin_list(unfinished.call(), 2);
  ResultWriter::api()->push_int(unfinished.call(), 1);
  CHECK_FALSE(unfinished.finish());
  CHECK_THAT(unfinished.why(), Catch::Contains("unfinished"));

  ResultWriter nil_key;
  ResultWriter::api()->begin_map(nil_key.call(), 1);
  ResultWriter::api()->push_nil(nil_key.call());
  ResultWriter::api()->push_int(nil_key.call(), 1);
  CHECK_FALSE(nil_key.finish());
  CHECK_THAT(nil_key.why(), Catch::Contains("nil"));
}

namespace {
std::tuple<int64_t, std::string> typed(int64_t a, std::string_view s, std::optional<double> d) {
  if (a < 0) throw std::runtime_error("negative");
  return {a + static_cast<int64_t>(d.value_or(0)), std::string(s) + "!"};
}
}  // namespace

TEST_CASE("the C++ layer: typed arguments, results, exceptions as errors") {
  State L;
  auto fn = &sky::detail::trampoline<&typed>;
  auto run = [&](const char* args, ResultWriter& w) {
    std::string bytes = encode(L, args);  // the views point into it
    ArgViews v;
    v.parse(bytes);
    return fn(ResultWriter::api(), w.call(), v.data(), v.size());
  };
  ResultWriter ok;
  REQUIRE(run("return 2, 'hi', 3.0", ok) == 0);
  REQUIRE(ok.finish());
  check_decoded(L, ok.out().view(), "local a, b = ...; assert(a == 5 and b == 'hi!')");
  ResultWriter optional;
  REQUIRE(run("return 2, 'hi'", optional) == 0);
  ResultWriter thrown;
  CHECK(run("return -1, 'x'", thrown) != 0);
  CHECK(thrown.why() == "negative");
  ResultWriter wrong;
  CHECK(run("return 'x', 'y'", wrong) != 0);
  CHECK(wrong.why() == "argument 1: expected an integer, got a string");
  ResultWriter count;
  CHECK(run("return 1", count) != 0);
  CHECK(count.why() == "expected 2 to 3 arguments, got 1");
}
