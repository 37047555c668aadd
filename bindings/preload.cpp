#include "bindings/preload.hpp"

#include <string>

namespace skyhost {

namespace {

// upvalues: source, chunk name
int l_load_embedded(lua_State* L) {
  size_t len = 0;
  const char* src = lua_tolstring(L, lua_upvalueindex(1), &len);
  const char* chunk = lua_tostring(L, lua_upvalueindex(2));
  if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);  // [chunk, modname]
  lua_call(L, 1, 1);
  return 1;
}

}  // namespace

void preload_embedded(lua_State* L, const std::vector<EmbeddedModule>& modules) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");  // [package, preload]
  for (const auto& m : modules) {
    lua_pushlstring(L, m.source.data(), m.source.size());
    lua_pushlstring(L, m.chunk.data(), m.chunk.size());
    lua_pushcclosure(L, l_load_embedded, 2);  // [package, preload, loader]
    lua_setfield(L, -2, std::string(m.name).c_str());
  }
  lua_pop(L, 2);
}

}  // namespace skyhost
