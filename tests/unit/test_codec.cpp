#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "bindings/codec.hpp"

using namespace skyhost;

namespace {

struct State {
  lua_State* L = luaL_newstate();
  State() { luaL_openlibs(L); }
  ~State() { lua_close(L); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  operator lua_State*() const { return L; }
};

// Runs `code` as chunk "@job.lua" and leaves its results on the stack; returns their count.
int run(lua_State* L, const char* code) {
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, code, std::strlen(code), "@job.lua") != LUA_OK ||
      lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
    FAIL(lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

std::string encode_top(lua_State* L, int n) {
  wire::Writer w;
  int top = lua_gettop(L);
  codec::encode_values(L, top - n + 1, n, w);
  REQUIRE(lua_gettop(L) == top);
  return w.take();
}

std::string encode_chunk(lua_State* L, const char* code) {
  int n = run(L, code);
  std::string bytes = encode_top(L, n);
  lua_pop(L, n);
  return bytes;
}

int decode(lua_State* L, const std::string& bytes) {
  wire::Reader r(bytes);
  int top = lua_gettop(L);
  int n = codec::decode_values(L, r);
  REQUIRE(r.empty());
  REQUIRE(lua_gettop(L) == top + n);
  return n;
}

// Calls `code` with the n values on top of the stack as `...`; it asserts what it expects.
void check(lua_State* L, int n, const char* code) {
  if (luaL_loadbuffer(L, code, std::strlen(code), "=check") != LUA_OK) FAIL(lua_tostring(L, -1));
  lua_insert(L, -(n + 1));
  if (lua_pcall(L, n, 0, 0) != LUA_OK) FAIL(lua_tostring(L, -1));
}

// What `code` returns in one state, sent to a fresh one and checked there.
void transfer(const char* code, const char* checker) {
  State a, b;
  std::string bytes = encode_chunk(a, code);
  check(b, decode(b, bytes), checker);
  CHECK(lua_gettop(b) == 0);
}

std::string encode_error(lua_State* L, const char* code) {
  int n = run(L, code);
  int top = lua_gettop(L);
  wire::Writer w;
  w.put_string("prefix");
  std::string msg;
  try {
    codec::encode_values(L, top - n + 1, n, w);
  } catch (const codec::EncodeError& e) {
    msg = e.what();
    CHECK(w.size() == 7);  // nothing of the failed value stays in the buffer
  }
  CHECK(lua_gettop(L) == top);
  lua_pop(L, n);
  return msg;  // empty when the values could be sent
}

int c_function(lua_State*) {
  return 0;
}

// A value using every tag, for the malformed-input tests.
const char* kRich = R"(
  local shared = {1, 2, 3}
  local t = {shared, shared, name = "x\0y", [2.5] = true, [false] = -7, inf = 1/0}
  t.self = t
  setmetatable(t, {__index = shared})
  local n = 0
  local function fact(k) return k <= 1 and 1 or k * fact(k - 1) end
  local function inc() n = n + 1; return n end
  return t, function() return fact(5) + inc() + #string.format("%d", 1) end, _G, math.floor
)";

}  // namespace

TEST_CASE("codec: scalars round-trip with their exact types", "[codec]") {
  transfer(R"(return nil, true, false, 0, -1, math.mininteger, math.maxinteger, 1.5, 2.0,
                     1/0, -1/0, 0/0, -0.0, "", "a\0b\0", 0x7fffffff + 1)",
           R"(local a = table.pack(...)
              assert(a.n == 16)
              assert(a[1] == nil and a[2] == true and a[3] == false)
              assert(math.type(a[4]) == "integer" and a[4] == 0 and a[5] == -1)
              assert(a[6] == math.mininteger and a[7] == math.maxinteger)
              assert(a[8] == 1.5 and math.type(a[9]) == "float" and a[9] == 2.0)
              assert(a[10] == 1/0 and a[11] == -1/0 and a[12] ~= a[12])
              assert(a[13] == 0 and 1/a[13] == -1/0)
              assert(a[14] == "" and a[15] == "a\0b\0" and #a[15] == 4)
              assert(a[16] == 2147483648))");
}

TEST_CASE("codec: NaN payloads and small encodings are exact", "[codec]") {
  State a, b;
  uint64_t bits = 0x7ff8000000012345ull;
  double nan;
  std::memcpy(&nan, &bits, sizeof nan);
  lua_pushnumber(a, nan);
  std::string bytes = encode_top(a, 1);
  REQUIRE(decode(b, bytes) == 1);
  double got = lua_tonumber(b, -1);
  CHECK(std::memcmp(&got, &nan, sizeof got) == 0);

  lua_pushinteger(a, 5);
  CHECK(encode_top(a, 1) == std::string("\x01\x03\x0a", 3));  // count, int tag, zigzag 5
}

TEST_CASE("codec: a 64 MiB binary string round-trips", "[codec]") {
  State a, b;
  std::string big(64u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
  lua_pushlstring(a, big.data(), big.size());
  std::string bytes = encode_top(a, 1);
  REQUIRE(decode(b, bytes) == 1);
  size_t n;
  const char* s = lua_tolstring(b, -1, &n);
  REQUIRE(n == big.size());
  CHECK(std::memcmp(s, big.data(), n) == 0);
}

TEST_CASE("codec: nested tables with array and hash parts", "[codec]") {
  transfer(R"(local t = {1, 2, {3, {4}}, a = {b = {c = "d"}}, [-1] = "neg", [0] = "zero"}
              t[1000] = "far"; t[1.5] = "float"; t[true] = "yes"; t[{}] = "table key"
              return t, {1, nil, 3}, {}, {[1] = "a", [3] = "c"})",
           R"(local t, holes, empty, sparse = ...
              assert(t[1] == 1 and t[3][1] == 3 and t[3][2][1] == 4 and t.a.b.c == "d")
              assert(t[-1] == "neg" and t[0] == "zero" and t[1000] == "far")
              assert(t[1.5] == "float" and t[true] == "yes")
              local found
              for k, v in pairs(t) do if type(k) == "table" then found = v end end
              assert(found == "table key")
              assert(#holes == 3 and holes[2] == nil and holes[3] == 3)
              assert(next(empty) == nil)
              assert(sparse[1] == "a" and sparse[3] == "c" and sparse[2] == nil))");
}

TEST_CASE("codec: sparse integer keys far past the border stay sparse", "[codec]") {
  transfer(R"(local t = {1}
              for k = 1, 60 do t[1 << k] = k end
              t[math.maxinteger] = "max"
              return t)",
           R"(local t = ...
              assert(t[1] == 1 and t[1 << 60] == 60 and t[math.maxinteger] == "max")
              local n = 0
              for _ in pairs(t) do n = n + 1 end
              assert(n == 62, n))");
}

TEST_CASE("codec: large tables patch their counts", "[codec]") {
  transfer(R"(local t = {}
              for i = 1, 100000 do t[i] = i * 2 end
              for i = 1, 300 do t["k" .. i] = {i} end
              return t)",
           R"(local t = ...
              assert(#t == 100000 and t[100000] == 200000)
              for i = 1, 300 do assert(t["k" .. i][1] == i) end)");
}

TEST_CASE("codec: shared references keep their identity", "[codec]") {
  transfer(R"(local s = {}
              local f = function() return s end
              return {a = s, b = s, [s] = s, f = f, g = f}, s, f)",
           R"(local t, s, f = ...
              assert(t.a == t.b and t.a == s and t[s] == s)
              assert(t.f == t.g and t.f == f and f() == s))");
}

TEST_CASE("codec: cycles", "[codec]") {
  transfer(R"(local t = {}; t.self = t
              local a, b = {}, {}; a.b = b; b.a = a
              return t, a)",
           R"(local t, a = ...
              assert(t.self == t and a.b.a == a))");
}

TEST_CASE("codec: metatables travel as values", "[codec]") {
  transfer(R"(local mt = {__index = function(_, k) return k .. "!" end, __metatable = "locked"}
              local x, y = setmetatable({}, mt), setmetatable({}, mt)
              local self_mt = {}; setmetatable(self_mt, self_mt); self_mt.__index = {v = 9}
              return x, y, self_mt)",
           R"(local x, y, s = ...
              assert(x.foo == "foo!" and getmetatable(x) == "locked")
              assert(debug.getmetatable(x) == debug.getmetatable(y))
              assert(getmetatable(s) == s and s.v == 9))");
}

TEST_CASE("codec: the global table is resolved on the receiving side", "[codec]") {
  State a, b;
  std::string bytes = encode_chunk(a, "return _G, {env = _G}");
  REQUIRE(decode(b, bytes) == 2);
  lua_pushglobaltable(b);
  CHECK(lua_rawequal(b, -1, -3));
  CHECK(lua_getfield(b, -2, "env") == LUA_TTABLE);
  CHECK(lua_rawequal(b, -1, -2));
}

TEST_CASE("codec: functions carry bytecode and upvalues of every kind", "[codec]") {
  transfer(R"(local n, b, i, f, s, t = nil, true, 42, 0.5, "str", {k = "v"}
              local inner = function(x) return x + i end
              return function()
                return n, b, i, f, s, t.k, inner(1)
              end)",
           R"(local fn = ...
              local n, b, i, f, s, k, r = fn()
              assert(n == nil and b == true and i == 42 and f == 0.5 and s == "str")
              assert(k == "v" and r == 43))");
}

TEST_CASE("codec: recursive and mutually recursive local functions", "[codec]") {
  transfer(R"(local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end
              local is_even, is_odd
              function is_even(n) if n == 0 then return true end return is_odd(n - 1) end
              function is_odd(n) if n == 0 then return false end return is_even(n - 1) end
              return fact, is_even)",
           R"(local fact, is_even = ...
              assert(fact(10) == 3628800)
              assert(is_even(10) and not is_even(7)))");
}

TEST_CASE("codec: closures sharing a variable still share it", "[codec]") {
  transfer(R"(local n = 0
              local function inc() n = n + 1 end
              local function get() return n end
              return function() inc(); inc(); return get() end, get)",
           R"(local run, get = ...
              assert(run() == 2 and get() == 2 and run() == 4))");
}

TEST_CASE("codec: functions use the receiver's globals and library names", "[codec]") {
  State a, b;
  std::string bytes = encode_chunk(a, R"(
    local fmt, pairs = string.format, pairs
    return function(x)
      local keys = 0
      for _ in pairs({1, 2}) do keys = keys + 1 end
      return string.rep("x", 3) .. math.floor(x) .. fmt("%03d", keys)
    end, string, sky_missing)");
  CHECK(bytes.find("string.format") != std::string::npos);
  CHECK(bytes.find("_G.pairs") != std::string::npos);
  REQUIRE(decode(b, bytes) == 3);
  lua_getglobal(b, "string");
  CHECK(lua_rawequal(b, -1, -3));  // the receiver's own string table
  lua_pop(b, 3);
  check(b, 1, R"(local f = ... assert(f(2.5) == "xxx2002"))");
}

TEST_CASE("codec: a custom _ENV travels as a table", "[codec]") {
  transfer(R"(local _ENV = {x = 5}
              return function() return x end)",
           R"(local f = ... assert(f() == 5 and x == nil))");
}

TEST_CASE("codec: decoded functions keep their debug info", "[codec]") {
  transfer(R"(return function()
                error("boom")
              end)",
           R"(local f = ...
              local ok, err = pcall(f)
              assert(not ok and err:find("job.lua:2: boom", 1, true), err))");
}

TEST_CASE("codec: the sky module travels by name", "[codec]") {
  State a, b;
  const char* sky = R"(package.loaded.sky = {shard = function() return "shard" end,
                                                pool = {create = function() return "pool" end}})";
  // Encode once before sky exists so the cached name map must notice it appearing.
  encode_chunk(a, "return string.format");
  run(a, sky);
  run(b, sky);
  std::string bytes = encode_chunk(
      a, "return package.loaded.sky.shard, package.loaded.sky.pool, package.loaded.sky");
  CHECK(bytes.find("sky.shard") != std::string::npos);
  REQUIRE(decode(b, bytes) == 3);
  check(b, 3, R"(local shard, pool, sky = ...
                 assert(shard == package.loaded.sky.shard and shard() == "shard")
                 assert(pool == sky.pool and sky == package.loaded.sky))");

  State c;  // a receiver without sky
  wire::Reader r(bytes);
  CHECK_THROWS_WITH(codec::decode_values(c, r),
                    Catch::Contains("cannot resolve 'sky.shard' on the receiving side"));
  CHECK(lua_gettop(c) == 0);
}

TEST_CASE("codec: user globals are sent by value, not by name", "[codec]") {
  State a, b;
  std::string bytes = encode_chunk(a, R"(config = {size = 3}
                                         function helper() return config.size end
                                         return config, helper)");
  REQUIRE(decode(b, bytes) == 2);
  check(b, 2, R"(local cfg, helper = ...
                 assert(cfg.size == 3 and config == nil)
                 config = cfg
                 assert(helper() == 3))");
}

TEST_CASE("codec: unsendable values name where they were found", "[codec]") {
  State a;
  CHECK(encode_error(a, R"(local out = io.stdout
                           return function() out:write("x") end)") ==
        "cannot send userdata (upvalue 'out' of function defined at job.lua:2)");
  CHECK(encode_error(a, "return 1, {co = coroutine.create(print)}") ==
        "cannot send thread (field 'co' of argument 2)");
  CHECK(encode_error(a, "return {{}, {[3] = io.stderr}}") ==
        "cannot send userdata (index 3 of index 2 of argument 1)");
  CHECK(encode_error(a, "return {[io.stdout] = 1}") ==
        "cannot send userdata (a key of argument 1)");
  CHECK(encode_error(a, "return setmetatable({}, {__gc = io.stdout})") ==
        "cannot send userdata (field '__gc' of metatable of argument 1)");
  CHECK(encode_error(a, "return {cfg = {f = function() return io.stdout end, u = io.stdin}}") ==
        "cannot send userdata (field 'u' of field 'cfg' of argument 1)");
  CHECK(encode_error(a, "return io") == "");  // the io library itself travels by name
  CHECK(encode_error(a, "return io.stdout") == "cannot send userdata (argument 1)");

  lua_pushcfunction(a, c_function);
  lua_setglobal(a, "cfn");
  CHECK(encode_error(a, R"(local f = cfn
                           return function() return f() end)") ==
        "cannot send C function (upvalue 'f' of function defined at job.lua:2)");
  lua_pushlightuserdata(a, &a);
  CHECK_THROWS_WITH(encode_top(a, 1), "cannot send light userdata (argument 1)");
  lua_pop(a, 1);
  CHECK(lua_gettop(a) == 0);
}

TEST_CASE("codec: nesting is limited in both directions", "[codec]") {
  State a, b;
  CHECK(encode_error(a, "local t = {} for i = 1, 199 do t = {t} end return t") == "");
  CHECK_THAT(encode_error(a, "local t = {} for i = 1, 300 do t = {t} end return t"),
             Catch::StartsWith("cannot send value nested more than 200 levels (index 1 of"));

  auto chain = [](int depth) {
    wire::Writer w;
    w.put_varint(1);
    for (int i = 0; i < depth; ++i) w.put_raw("\x06\x01\x00", 3);  // table, narr 1, nhash 0
    w.put_u8(0);                                                   // innermost element: nil
    for (int i = 0; i < depth; ++i) w.put_u8(0);                   // no metatables
    return w.take();
  };
  CHECK(decode(b, chain(200)) == 1);
  lua_pop(b, 1);
  std::string deep = chain(1000);
  wire::Reader r(deep);
  CHECK_THROWS_WITH(codec::decode_values(b, r), Catch::Contains("nested more than 200"));
  CHECK(lua_gettop(b) == 0);
}

TEST_CASE("codec: values share references across the list and append to a frame", "[codec]") {
  State a, b;
  run(a, "local t = {} return t, t, 'tail'");
  wire::Writer w;
  size_t mark = w.begin_frame(wire::Msg::kTask);
  w.put_u64(99);
  codec::encode_values(a, 1, 3, w);
  w.end_frame(mark);
  CHECK(lua_gettop(a) == 3);

  wire::FrameDecoder d;
  d.feed(w.data().data(), w.size());
  wire::Frame f;
  REQUIRE(d.next(f));
  wire::Reader r(f.body);
  CHECK(r.get_u64() == 99);
  REQUIRE(codec::decode_values(b, r) == 3);
  CHECK(r.empty());
  check(b, 3, "local x, y, s = ... assert(x == y and s == 'tail')");
}

TEST_CASE("codec: every truncation of a valid message throws", "[codec]") {
  State a, b;
  std::string bytes = encode_chunk(a, kRich);
  REQUIRE(decode(b, bytes) == 4);
  check(b, 4, R"(local t, f, g, floor = ...
                 assert(t.self == t and t[1] == t[2] and t[3] == 3 and f() == 122)
                 assert(g == _G and floor == math.floor))");
  for (size_t n = 0; n < bytes.size(); ++n) {
    wire::Reader r(bytes.data(), n);
    CHECK_THROWS_AS(codec::decode_values(b, r), codec::DecodeError);
    REQUIRE(lua_gettop(b) == 0);
  }
}

TEST_CASE("codec: random corruption never crashes", "[codec]") {
  State a, b;
  std::string good = encode_chunk(a, kRich);
  std::mt19937 rng(12345);
  int decoded = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      size_t at = rng() % bytes.size();
      bytes[at] = static_cast<char>(rng() % 2 ? bytes[at] ^ (1 << (rng() % 8)) : rng());
    }
    wire::Reader r(bytes);
    try {
      int n = codec::decode_values(b, r);
      REQUIRE(lua_gettop(b) == n);
      lua_settop(b, 0);
      ++decoded;
    } catch (const codec::DecodeError&) {
      REQUIRE(lua_gettop(b) == 0);
    }
  }
  CHECK(decoded > 0);  // some flips only change data (string bytes, numbers)
}

TEST_CASE("codec: malformed input is refused", "[codec]") {
  State b;
  auto refused = [&](std::string bytes, const char* what) {
    wire::Reader r(bytes);
    CHECK_THROWS_WITH(codec::decode_values(b, r), Catch::Contains(what));
    CHECK(lua_gettop(b) == 0);
  };
  using S = std::string;
  refused(S("\x01\xee", 2), "bad value tag");
  refused(S("\x01\x07\x00", 3), "reference 0 out of range");
  refused(S("\x01\x06\x00\x01\x07\x05\x01\x00", 8), "reference 5 out of range");
  refused(S("\x05\x00", 2), "value count");
  refused(S("\x01\x05\x80\x80\x80\x80\x80\x20xyz", 11), "string of");
  refused(S("\x01\x06\xff\xff\xff\xff\x0f\x00", 8), "table sizes");
  refused(S("\x01\x06\x00\x10\x00", 5), "table sizes");
  refused(S("\x01\x06\x00\x01\x00\x01\x00", 7), "key is nil");
  std::string nan_key("\x01\x06\x00\x01\x04", 5);
  nan_key += S("\x00\x00\x00\x00\x00\x00\xf8\x7f\x01\x00", 10);
  refused(nan_key, "key is NaN");
  refused(S("\x01\x06\x00\x00\x03\x02", 6), "metatable is not a table");
  refused(S("\x01\x08\x08\x00\x00\x00return 1", 14), "not a binary Lua chunk");
  refused(S("\x01\x08\x08\x00\x00\x00\x1bLuaXXXX", 14), "malformed function bytecode");
  auto named = [](std::string name) { return S("\x01\x0a", 2) + char(name.size()) + name; };
  refused(named("string.nope"), "cannot resolve 'string.nope' on the receiving side");
  refused(named("string.rep.bad"), "cannot resolve");
  refused(named("_G._VERSION"), "cannot resolve");
  refused(named(""), "cannot resolve");

  // A real function with its upvalue count, modes and shared-upvalue targets tampered with.
  State a;
  std::string fn = encode_chunk(a, "local x = 1 return function() return x end");
  REQUIRE(fn.size() > 10);
  size_t nups_at = fn.size() - 4;  // ... u8 nups, u8 mode 0, int tag, zigzag(1)
  REQUIRE(fn.substr(nups_at) == S("\x01\x00\x03\x02", 4));
  refused(fn.substr(0, nups_at) + S("\x02\x00\x03\x02\x00\x00", 6), "upvalues but 2 were sent");
  refused(fn.substr(0, nups_at) + S("\x01\x07\x03\x02", 4), "bad upvalue mode");
  refused(fn.substr(0, nups_at) + S("\x01\x01\x00\x05", 4), "missing upvalue");
  // Bytecode starts after count, tag and u32 length; the closure's upvalue count follows the
  // 31-byte header and must match the prototype's.
  std::string bad = fn;
  bad[6 + 31] = 2;
  refused(bad, "malformed function bytecode");
  bad = fn;
  bad[6 + 4] = 0x53;  // Lua version byte: a sound layout that lua_load itself refuses
  refused(bad, "cannot load function");
}
