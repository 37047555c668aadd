// bindings/encoding.cpp: skyhost.encoding in a bare Lua state — XML as EC2 answers it, refused
// documents, and base64.
#include <catch2/catch.hpp>
#include <cstring>
#include <lua.hpp>
#include <string>

extern "C" int luaopen_skyhost_encoding(lua_State* L);

namespace {

struct State {
  lua_State* L = luaL_newstate();
  State() {
    luaL_openlibs(L);
    luaL_requiref(L, "enc", luaopen_skyhost_encoding, 1);
    lua_pop(L, 1);
  }
  ~State() { lua_close(L); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

/// Runs `code`; it fails the test by raising.
void run(lua_State* L, const char* code) {
  if (luaL_loadbuffer(L, code, std::strlen(code), "=check") != LUA_OK ||
      lua_pcall(L, 0, 0, 0) != LUA_OK) {
    FAIL(lua_tostring(L, -1));
  }
}

}  // namespace

TEST_CASE("xml_decode: elements, attributes, text and order as EC2 answers") {
  State s;
  run(s.L, R"(
    local d = assert(enc.xml_decode([[<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <instancesSet><item><instanceId>i-1</instanceId></item><item><instanceId>i-2</instanceId></item></instancesSet>
  <note a="1" b="x &amp; y">caf&#233; &lt;ok&gt;</note>
</RunInstancesResponse>]]))
    assert(d.name == "RunInstancesResponse", d.name)
    assert(d.attrs.xmlns == "http://ec2.amazonaws.com/doc/2016-11-15/")
    assert(#d == 2 and d[1].name == "instancesSet" and #d[1] == 2)
    assert(d[1][2][1].text == "i-2")
    assert(d[2].attrs.b == "x & y" and d[2].text == "caf\u{e9} <ok>", d[2].text)
  )");
}

TEST_CASE("xml_decode: malformed, empty, entity-declaring and too deep documents are refused") {
  State s;
  run(s.L, R"(
    local d, err = enc.xml_decode("<a><b></a>")
    assert(d == nil and err:find("line 1, column 8: mismatched tag"), err)
    d, err = enc.xml_decode("")
    assert(d == nil and err, err)
    d, err = enc.xml_decode('<!DOCTYPE l [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]><l>&y;</l>')
    assert(d == nil and err:find("entities"), err)
    d, err = enc.xml_decode(string.rep("<a>", 200) .. string.rep("</a>", 200))
    assert(d == nil and err:find("too deeply"), err)
    assert(enc.xml_decode(string.rep("<a>", 90) .. string.rep("</a>", 90)))
  )");
}

TEST_CASE("base64_encode: RFC 4648 vectors, binary bytes, no line breaks") {
  State s;
  run(s.L, R"(
    local v = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
      fooba = "Zm9vYmE=", foobar = "Zm9vYmFy", ["\0\255"] = "AP8=" }
    for k, want in pairs(v) do assert(enc.base64_encode(k) == want, k) end
    local long = enc.base64_encode(string.rep("x", 3000))
    assert(#long == 4000 and not long:find("\n"))
  )");
}
