// skyhost.encoding: the formats cloud APIs speak that JSON does not cover — XML documents (AWS
// Query API responses) as Lua tables, parsed by expat, and base64 (OpenSSL's encoder).
//
//   encoding.xml_decode(text) → element | nil, err
//   encoding.base64_encode(bytes) → text
//   element = { name = "tag", attrs = { name = value }, text = "joined character data",
//               [1] = child element, [2] = ... }
//
// Namespaces are not resolved: names are as written (EC2 answers in one default namespace).
// Entities beyond the predefined ones are refused (no DTD expansion), so a hostile document
// cannot make memory grow beyond a small multiple of its size.
#include <expat.h>
#include <openssl/evp.h>

#include <climits>
#include <lua.hpp>
#include <string>
#include <vector>

namespace skyhost {

namespace {

/// What the parser callbacks build: the Lua stack holds the open elements, innermost on top;
/// texts[i] gathers the character data of the element at depth i.
struct Builder {
  lua_State* L;
  std::vector<std::string> texts;
  int depth = 0;
  bool too_deep = false;
};

constexpr int kMaxDepth = 100;

void XMLCALL on_start(void* ud, const XML_Char* name, const XML_Char** attrs) {
  auto* b = static_cast<Builder*>(ud);
  lua_State* L = b->L;
  if (b->depth >= kMaxDepth || !lua_checkstack(L, 4)) {
    b->too_deep = true;
    return;
  }
  lua_createtable(L, 0, 3);  // [..., parent, el]
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_createtable(L, 0, 0);  // [..., parent, el, attrs]
  for (int i = 0; attrs[i] != nullptr; i += 2) {
    lua_pushstring(L, attrs[i + 1]);
    lua_setfield(L, -2, attrs[i]);
  }
  lua_setfield(L, -2, "attrs");  // [..., parent, el]
  b->texts.emplace_back();
  b->depth++;
}

void XMLCALL on_end(void* ud, const XML_Char* /*name*/) {
  auto* b = static_cast<Builder*>(ud);
  if (b->too_deep) return;
  lua_State* L = b->L;
  const std::string& text = b->texts.back();
  lua_pushlstring(L, text.data(), text.size());
  lua_setfield(L, -2, "text");  // [..., parent, el]
  b->texts.pop_back();
  b->depth--;
  if (b->depth > 0) {
    lua_rawseti(L, -2, static_cast<lua_Integer>(lua_rawlen(L, -2)) + 1);  // [..., parent]
  }
  // The root stays on the stack: it is the result.
}

void XMLCALL on_text(void* ud, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(ud);
  if (b->too_deep || b->texts.empty()) return;
  b->texts.back().append(s, static_cast<size_t>(len));
}

void XMLCALL on_entity_decl(void* ud, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                            const XML_Char*, const XML_Char*, const XML_Char*) {
  // A document that declares entities is not an API response: stop (billion laughs).
  auto* b = static_cast<Builder*>(ud);
  b->too_deep = true;
}

/// encoding.xml_decode(text) → root element table, or nil, "line L, column C: reason".
int l_xml_decode(lua_State* L) {
  size_t len = 0;
  const char* text = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len <= INT_MAX, 1, "document larger than 2 GiB");
  lua_settop(L, 1);  // [text]
  XML_Parser p = XML_ParserCreate("UTF-8");
  if (p == nullptr) return luaL_error(L, "xml_decode: out of memory");
  Builder b{L, {}, 0, false};
  XML_SetUserData(p, &b);
  XML_SetElementHandler(p, on_start, on_end);
  XML_SetCharacterDataHandler(p, on_text);
  XML_SetEntityDeclHandler(p, on_entity_decl);
  int top = lua_gettop(L);
  XML_Status st = XML_Parse(p, text, static_cast<int>(len), XML_TRUE);
  std::string err;
  if (b.too_deep) {
    err = "document nested too deeply or declares entities";
  } else if (st != XML_STATUS_OK) {
    err = "line " + std::to_string(XML_GetCurrentLineNumber(p)) + ", column " +
          std::to_string(XML_GetCurrentColumnNumber(p)) + ": " +
          XML_ErrorString(XML_GetErrorCode(p));
  }
  XML_ParserFree(p);
  if (!err.empty() || lua_gettop(L) != top + 1) {
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, err.empty() ? "no document element" : err.c_str());  // [text, nil, err]
    return 2;
  }
  return 1;  // [text, root]
}

/// encoding.base64_encode(bytes) → standard base64 with padding, no line breaks.
int l_base64_encode(lua_State* L) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len <= INT_MAX / 2, 1, "too long to encode");
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s), static_cast<int>(len));
  lua_pushlstring(L, out.data(), static_cast<size_t>(n));
  return 1;
}

const luaL_Reg kEncoding[] = {
    {"xml_decode", l_xml_decode},
    {"base64_encode", l_base64_encode},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_encoding(lua_State* L) {
  luaL_newlib(L, skyhost::kEncoding);
  return 1;
}
