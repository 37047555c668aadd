// bindings/json.cpp and json_decode.cpp: skyhost.json in a bare Lua state. The module's
// primitives return nil, err; the structured errors of sky.json are tested in Lua.
#include <catch2/catch.hpp>
#include <cstring>
#include <lua.hpp>
#include <string>

extern "C" int luaopen_skyhost_json(lua_State* L);

namespace {

struct State {
  lua_State* L = luaL_newstate();
  State() {
    luaL_openlibs(L);
    luaL_requiref(L, "json", luaopen_skyhost_json, 1);
    lua_pop(L, 1);
  }
  ~State() { lua_close(L); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

/// Runs `code`; it fails the test by raising.
void run(lua_State* L, const char* code) {
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, code, std::strlen(code), "=check") != LUA_OK ||
      lua_pcall(L, 0, 0, 0) != LUA_OK) {
    FAIL(lua_tostring(L, -1));
  }
  REQUIRE(lua_gettop(L) == top);
}

/// json.encode(<expr>) as a string, or "ERR: message".
std::string encode(lua_State* L, const std::string& expr, const std::string& opts = "nil") {
  std::string code =
      "local t, e = json.encode(" + expr + ", " + opts + ") return t or 'ERR: ' .. e";
  if (luaL_loadstring(L, code.c_str()) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    FAIL(lua_tostring(L, -1));
  }
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::string out(s, len);
  lua_pop(L, 1);
  return out;
}

}  // namespace

TEST_CASE("json: encode maps Lua values to JSON", "[json]") {
  State s;
  CHECK(encode(s.L, "nil") == "null");
  CHECK(encode(s.L, "json.null") == "null");
  CHECK(encode(s.L, "{1, 2.5, 'x', true, json.null}") == R"([1,2.5,"x",true,null])");
  CHECK(encode(s.L, "{z = 1, a = {}, m = json.array()}") == R"({"a":{},"m":[],"z":1})");
  CHECK(encode(s.L, "3.0") == "3.0");
  CHECK(encode(s.L, "math.mininteger") == "-9223372036854775808");
  CHECK(encode(s.L, "'a\\0b\\1'") == R"("a\u0000b\u0001")");
  CHECK(encode(s.L, "'é'") == "\"é\"");
  CHECK(encode(s.L, "{a = {1}}", "{pretty = true}") == "{\n  \"a\": [\n    1\n  ]\n}");
}

TEST_CASE("json: encode refuses what has no JSON form, saying where", "[json]") {
  State s;
  CHECK(encode(s.L, "{x = {'ok', '\\xff'}}") ==
        "ERR: invalid UTF-8 at byte 1 of a string at $.x[2]");
  CHECK(encode(s.L, "{[{}] = 1}") == "ERR: table has the non-string key (a table) at $");
  CHECK(encode(s.L, "{a = {[2.5] = 1}}") == "ERR: table has the non-string key 2.5 at $.a");
  CHECK(encode(s.L, "{1, nil, 3}") ==
        "ERR: array has a hole: key 3 but 2 elements (use sky.json.null for missing values) at $");
  CHECK(encode(s.L, "{f = print}") == "ERR: cannot encode a function value at $.f");
  CHECK(encode(s.L, "0/0").rfind("ERR: cannot encode ", 0) == 0);
  run(s.L, "c = {} c.c = c");
  CHECK(encode(s.L, "c") == "ERR: cycle: a table contains itself at $.c");
  run(s.L, "deep = {} local t = deep for i = 1, 10 do t[1] = {} t = t[1] end");
  CHECK(encode(s.L, "deep", "{max_depth = 5}") == "ERR: nesting deeper than 5 at $[1][1][1][1][1]");
  CHECK(encode(s.L, "deep", "{max_depth = 11}").size() == 22);
}

TEST_CASE("json: decode builds tables, marks arrays, keeps null and number kinds", "[json]") {
  State s;
  run(s.L, R"(
    local v = json.decode('{"a":[1,null,2.0,"s"],"o":{},"e":[],"big":9223372036854775807,'
                          .. '"huge":18446744073709551616,"neg":-5,"esc":"\\u00e9\\u0000"}')
    assert(#v.a == 4 and v.a[2] == json.null)
    assert(math.type(v.a[1]) == "integer" and math.type(v.a[3]) == "float")
    assert(json.is_array(v.a) and json.is_array(v.e) and not json.is_array(v.o))
    assert(next(v.o) == nil and next(v.e) == nil)
    assert(v.big == math.maxinteger and math.type(v.huge) == "float" and v.neg == -5)
    assert(v.esc == "\xc3\xa9\0")
    assert(json.encode(v.e) == "[]" and json.encode(v.o) == "{}")
    assert(json.decode("null") == json.null)
    assert(select("#", json.decode("false")) == 1 and json.decode("false") == false)
  )");
}

TEST_CASE("json: decode errors give the byte position and the reason", "[json]") {
  State s;
  run(s.L, R"(
    local v, err, pos, reason = json.decode('[1, 2,\n  oops]')
    assert(v == nil)
    assert(pos == 10, pos)
    assert(err:find("^line 2, column 3 %(byte 10%): "), err)
    assert(reason:find("invalid literal"), reason)
    v, err, pos = json.decode(string.rep("[", 50) .. string.rep("]", 50), { max_depth = 10 })
    assert(v == nil and pos == 11 and err:find("nesting deeper than 10"), err)
    v, err = json.decode('"\xff"')
    assert(v == nil and err:find("UTF%-8"), err)
    v, err = json.decode('{"a" 1}')
    assert(v == nil and err:find("byte 6"), err)
    v, err = json.decode('1 2')
    assert(v == nil and err:find("end of input"), err)
  )");
}

TEST_CASE("json: large binary-safe strings round trip", "[json]") {
  State s;
  run(s.L, R"(
    local parts = {}
    for i = 0, 0x7f do parts[#parts + 1] = string.char(i) end
    local ascii = table.concat(parts)
    local big = string.rep(ascii .. "€", 20000)
    local text = json.encode({ big })
    assert(json.decode(text)[1] == big)
  )");
}

TEST_CASE("json: a deeply nested input cannot exhaust the stack", "[json]") {
  State s;
  std::string deep(100000, '[');
  lua_getglobal(s.L, "json");
  lua_getfield(s.L, -1, "decode");
  lua_pushlstring(s.L, deep.data(), deep.size());
  REQUIRE(lua_pcall(s.L, 1, 3, 0) == LUA_OK);
  CHECK(lua_isnil(s.L, -3));
  CHECK_THAT(lua_tostring(s.L, -2), Catch::Contains("nesting deeper than 500"));
  CHECK(lua_tointeger(s.L, -1) == 501);
}
