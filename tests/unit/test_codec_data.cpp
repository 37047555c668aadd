// bindings/codec_data.cpp: a node's results, decoded as data. No code ever loads, no metatable is
// ever set, and what decoding costs is bounded by the bytes it was given — checked here with an
// allocator that counts every byte Lua asks for.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "bindings/codec.hpp"

using namespace skyhost;

namespace {

// A Lua state whose allocator counts live bytes and their peak.
struct Counted {
  size_t now = 0;
  size_t peak = 0;
  lua_State* L;
  Counted() : L(lua_newstate(alloc, this)) { luaL_openlibs(L); }
  ~Counted() { lua_close(L); }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  operator lua_State*() const { return L; }

  static void* alloc(void* ud, void* p, size_t osize, size_t nsize) {
    auto* c = static_cast<Counted*>(ud);
    size_t old = p ? osize : 0;  // without a block, osize is a type tag
    if (nsize == 0) {
      std::free(p);
      c->now -= old;
      return nullptr;
    }
    void* q = std::realloc(p, nsize);
    if (q == nullptr) return nullptr;
    c->now = c->now - old + nsize;
    c->peak = std::max(c->peak, c->now);
    return q;
  }
};

int run(lua_State* L, const char* code) {
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, code, std::strlen(code), "@job.lua") != LUA_OK ||
      lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
    FAIL(lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

std::string encode_chunk(lua_State* L, const char* code, codec::Mode mode) {
  int n = run(L, code);
  wire::Writer w;
  codec::encode_values(L, lua_gettop(L) - n + 1, n, w, mode);
  lua_pop(L, n);
  return w.take();
}

void check(lua_State* L, int n, const char* code) {
  if (luaL_loadbuffer(L, code, std::strlen(code), "=check") != LUA_OK) FAIL(lua_tostring(L, -1));
  lua_insert(L, -(n + 1));
  if (lua_pcall(L, n, 0, 0) != LUA_OK) FAIL(lua_tostring(L, -1));
}

std::string refusal(lua_State* L, const std::string& bytes) {
  wire::Reader r(bytes);
  int top = lua_gettop(L);
  try {
    codec::decode_data(L, r);
  } catch (const codec::DecodeError& e) {
    CHECK(lua_gettop(L) == top);
    return e.what();
  }
  lua_settop(L, top);
  return "";
}

// Peak Lua memory while decoding `bytes` (GC stopped, so nothing is freed meanwhile), above
// what the state held before.
size_t decode_cost(Counted& c, const std::string& bytes, bool* ok = nullptr) {
  lua_gc(c, LUA_GCCOLLECT);
  lua_gc(c, LUA_GCSTOP);
  size_t before = c.now;
  c.peak = c.now;
  wire::Reader r(bytes);
  bool decoded = true;
  try {
    int n = codec::decode_data(c, r);
    lua_pop(c, n);
  } catch (const codec::DecodeError&) {
    decoded = false;
  }
  if (ok) *ok = decoded;
  lua_gc(c, LUA_GCRESTART);
  lua_gc(c, LUA_GCCOLLECT);
  return c.peak - before;
}

size_t bound(size_t n) {
  return codec::kDataCostFactor * n + codec::kDataCostSlack;
}

}  // namespace

TEST_CASE("codec data: plain data round-trips with its shape", "[codec]") {
  Counted a, b;
  std::string bytes = encode_chunk(a, R"(
    local shared = {1, 2, 3}
    local t = {shared, shared, nil, "x\0y", name = "n", [2.5] = true, [false] = -7, inf = 1/0,
               big = string.rep("z", 100000), [math.mininteger] = 0.1}
    t.self = t
    return t, nil, 42, "tail"
  )",
                                   codec::Mode::kData);
  wire::Reader r(bytes);
  REQUIRE(codec::decode_data(b, r) == 4);
  CHECK(r.empty());
  check(b, 4, R"(local t, none, n, s = ...
    assert(t[1] == t[2] and t[1][3] == 3 and t[3] == nil and t[4] == "x\0y" and #t == 4)
    assert(t.name == "n" and t[2.5] == true and t[false] == -7 and t.inf == 1/0)
    assert(#t.big == 100000 and t[math.mininteger] == 0.1 and t.self == t)
    assert(none == nil and math.type(n) == "integer" and n == 42 and s == "tail")
    assert(getmetatable(t) == nil))");
  CHECK(lua_gettop(b) == 0);
}

TEST_CASE("codec data: the two modes write plain data the same way", "[codec]") {
  Counted a;
  const char* code = "local s = {} return {s, s, 1, 'x', k = {2.5, false}}, 7";
  CHECK(encode_chunk(a, code, codec::Mode::kCode) == encode_chunk(a, code, codec::Mode::kData));
}

TEST_CASE("codec data: code and metatables cannot be returned, and the error names them",
          "[codec]") {
  Counted a;
  auto err = [&](const char* code) {
    int n = run(a, code);
    wire::Writer w;
    w.put_u8(0xaa);
    std::string msg;
    try {
      codec::encode_values(a, lua_gettop(a) - n + 1, n, w, codec::Mode::kData);
    } catch (const codec::EncodeError& e) {
      msg = e.what();
      CHECK(w.size() == 1);
    }
    lua_pop(a, n);
    return msg;
  };
  CHECK_THAT(err("return 1, {f = function() end}"),
             Catch::StartsWith("cannot return function (field 'f' of result 2): a task returns "
                               "data only (nil, booleans, numbers, strings, tables without "
                               "metatables): the host never runs code that a node sends"));
  CHECK_THAT(err("return {{}, setmetatable({}, {__gc = type})}"),
             Catch::StartsWith("cannot return a table with a metatable (index 2 of result 1)"));
  CHECK_THAT(err("return string.format"), Catch::StartsWith("cannot return function (result 1)"));
  CHECK_THAT(err("return {math}"), Catch::StartsWith("cannot return function (field '") &&
                                       Catch::Contains("of index 1 of result 1)"));
  CHECK_THAT(err("return _G"), Catch::StartsWith("cannot return the global table (result 1)"));
  CHECK_THAT(err("return coroutine.create(print)"),
             Catch::Equals("cannot return thread (result 1)"));
}

TEST_CASE("codec data: what would run code on the receiver is refused", "[codec]") {
  Counted a, b;
  // What a hostile node can send: the host's own encoding of code.
  auto code = [&](const char* chunk) {
    return refusal(b, encode_chunk(a, chunk, codec::Mode::kCode));
  };
  CHECK_THAT(code("return setmetatable({}, {__gc = function() ran = true end})"),
             Catch::Equals("codec: refused a table with a metatable (a node returns data only: "
                           "the host never runs code that a node sends)"));
  CHECK_THAT(code("return {1, 2, function() end}"), Catch::StartsWith("codec: refused a function"));
  CHECK_THAT(code("return {1, os.execute}"),
             Catch::StartsWith("codec: refused a library value ('os.execute')"));
  CHECK_THAT(code("return {env = _G}"), Catch::StartsWith("codec: refused a global table"));
  CHECK_THAT(code("return setmetatable({}, {})"), Catch::Contains("metatable"));
  CHECK(lua_gettop(b) == 0);
}

TEST_CASE("codec data: malformed input is refused", "[codec]") {
  Counted b;
  using S = std::string;
  CHECK_THAT(refusal(b, S("\x01\xee", 2)), Catch::Contains("bad value tag"));
  CHECK_THAT(refusal(b, S("\x01\x07\x00", 3)), Catch::Contains("reference 0 out of range"));
  CHECK_THAT(refusal(b, S("\x05\x00", 2)), Catch::Contains("value count"));
  CHECK_THAT(refusal(b, S("\x01\x05\x80\x80\x80\x80\x80\x20xyz", 11)),
             Catch::Contains("string of"));
  CHECK_THAT(refusal(b, S("\x01\x06\xff\xff\xff\xff\x0f\x00", 8)), Catch::Contains("table sizes"));
  CHECK_THAT(refusal(b, S("\x01\x06\x00\x01\x00\x01\x00", 7)), Catch::Contains("key is nil"));
  std::string nan_key("\x01\x06\x00\x01\x04", 5);
  nan_key += S("\x00\x00\x00\x00\x00\x00\xf8\x7f\x01\x00", 10);
  CHECK_THAT(refusal(b, nan_key), Catch::Contains("key is NaN"));
  CHECK_THAT(refusal(b, S("\x01\x06\x00\x00\x07\x00", 6)), Catch::Contains("metatable"));
  CHECK_THAT(refusal(b, S("\x01\x08\x08\x00\x00\x00return 1", 14)), Catch::Contains("function"));
  std::string deep = "\x01";
  for (int i = 0; i < 1000; ++i) deep += S("\x06\x01\x00", 3);
  CHECK_THAT(refusal(b, deep), Catch::Contains("nested more than 200"));
}

TEST_CASE("codec data: every truncation and random corruption is refused, never a crash",
          "[codec]") {
  Counted a, b;
  std::string good = encode_chunk(a, R"(
    local s = {1, 2, 3}
    local t = {s, s, name = "x\0y", [2.5] = true, [false] = -7, inf = 1/0, deep = {{{}}}}
    t.self = t
    return t, 1, "x")",
                                  codec::Mode::kData);
  for (size_t n = 0; n < good.size(); ++n) {
    wire::Reader r(good.data(), n);
    CHECK_THROWS_AS(codec::decode_data(b, r), codec::DecodeError);
    REQUIRE(lua_gettop(b) == 0);
  }
  std::mt19937 rng(4242);
  for (int iter = 0; iter < 4000; ++iter) {
    std::string bytes = good;
    for (int k = 0, flips = 1 + static_cast<int>(rng() % 3); k < flips; ++k)
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    bool ok;
    CHECK(decode_cost(b, bytes, &ok) <= bound(bytes.size()));
    REQUIRE(lua_gettop(b) == 0);
  }
}

// Inputs built to make a decoder allocate as much as it can per byte, about 1 MiB each. The
// first is the one that drove the host to gigabytes: nested tables each declaring sizes as
// large as the whole rest of the input, allocated before their elements are read.
TEST_CASE("codec data: decoding n bytes costs at most a constant times n", "[codec]") {
  const size_t kSize = 1 << 20;
  auto varint = [](wire::Writer& w, uint64_t v) { w.put_varint(v); };
  Counted c;
  SECTION("nested tables that lie about their sizes") {
    wire::Writer w;
    varint(w, 1);
    for (int i = 0; i < 200; ++i) {
      w.put_u8(6);
      varint(w, kSize - w.size() - 16);
      varint(w, (kSize - w.size() - 16) / 2);
    }
    w.data().resize(kSize, '\0');  // nils, then truncated
    bool ok;
    size_t cost = decode_cost(c, w.data(), &ok);
    CHECK_FALSE(ok);
    CHECK(cost <= bound(kSize));
    CHECK(cost <= 40 * kSize);
  }
  SECTION("honest worst cases") {
    const char* shapes[] = {
        // many empty tables
        "local t = {} for i = 1, 262144 do t[i] = {} end return t",
        // references to one table
        "local s, t = {}, {} for i = 1, 500000 do t[i] = s end return t",
        // a hash part of table keys
        "local t = {} for i = 1, 150000 do t[{}] = true end return t",
        // short distinct strings
        "local t = {} for i = 1, 200000 do t[i] = tostring(i) end return t",
        // sparse integer keys
        "local t = {} for i = 1, 200000 do t[i * 1000] = i end return t",
        // deep chains side by side
        "local t = {} for i = 1, 1000 do local x = {} for d = 1, 190 do x = {x} end t[i] = x end "
        "return t",
    };
    for (const char* shape : shapes) {
      Counted a;
      std::string bytes = encode_chunk(a, shape, codec::Mode::kData);
      bool ok;
      size_t cost = decode_cost(c, bytes, &ok);
      INFO(shape << ": " << bytes.size() << " bytes cost " << cost);
      CHECK(ok);
      CHECK(cost <= bound(bytes.size()));
    }
  }
  SECTION("a value list of nils") {
    wire::Writer w;
    varint(w, 900000);
    w.data().resize(w.size() + 900000, '\0');
    bool ok;
    CHECK(decode_cost(c, w.data(), &ok) <= bound(w.size()));
    CHECK(ok);
  }
}
