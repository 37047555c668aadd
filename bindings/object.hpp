// The bindings' one toolkit: C++ objects owned by Lua userdata, and optional fields of an options
// table.
//
// An object is a userdata holding a std::unique_ptr<T> under a metatable named `meta`, whose
// __index is the type's methods and whose __close and __gc run the same close: the object is
// destroyed once, when the script closes it (obj:close(), a <close> variable) or when it is
// collected, whichever comes first. A method called after that raises "<what> is closed".
#pragma once

#include <lua.hpp>
#include <memory>
#include <new>
#include <string>
#include <utility>

namespace skyhost::bind {

template <typename T>
struct Box {
  std::unique_ptr<T> obj;
};

/// Pushes a new userdata owning `obj`, with the type's metatable.
template <typename T>
T& push_object(lua_State* L, const char* meta, std::unique_ptr<T> obj) {
  auto* box = static_cast<Box<T>*>(lua_newuserdatauv(L, sizeof(Box<T>), 0));
  new (box) Box<T>{};  // empty first: if the metatable raised, __gc would find nothing to free
  luaL_setmetatable(L, meta);
  box->obj = std::move(obj);
  return *box->obj;
}

/// The object at `idx`, or null once closed; raises if `idx` is not one of this type.
template <typename T>
T* test_object(lua_State* L, int idx, const char* meta) {
  return static_cast<Box<T>*>(luaL_checkudata(L, idx, meta))->obj.get();
}

/// The object at `idx`; raises "<what> is closed" once it was closed.
template <typename T>
T& check_object(lua_State* L, int idx, const char* meta, const char* what) {
  T* obj = test_object<T>(L, idx, meta);
  if (obj == nullptr) luaL_error(L, "%s is closed", what);
  return *obj;
}

/// Takes the object out of the userdata at `idx` (for C++ to own); the userdata is closed.
template <typename T>
std::unique_ptr<T> take_object(lua_State* L, int idx, const char* meta) {
  return std::move(static_cast<Box<T>*>(luaL_checkudata(L, idx, meta))->obj);
}

/// obj:close(), __close and __gc: destroys the object (idempotent), then the box.
template <typename T, const char* Meta>
int close_object(lua_State* L) {
  auto* box = static_cast<Box<T>*>(luaL_checkudata(L, 1, Meta));
  box->obj.reset();
  return 0;
}

/// Creates the metatable `meta` with the type's methods (its close among them, or not) and
/// `close` as __close and __gc. Leaves the stack as it was.
inline void register_type(lua_State* L, const char* meta, const luaL_Reg* methods,
                          lua_CFunction close) {
  luaL_newmetatable(L, meta);  // [mt]; also sets __name, which error messages use
  lua_newtable(L);             // [mt, methods]
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

/// Optional fields of the options table at `idx`: the default when absent (nil), else the
/// value, which must have the right type (a Lua error names the field otherwise).
inline lua_Integer opt_integer(lua_State* L, int idx, const char* key, lua_Integer dflt) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

inline double opt_number(lua_State* L, int idx, const char* key, double dflt) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  if (lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

inline std::string opt_string(lua_State* L, int idx, const char* key, const char* dflt = "") {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  if (!lua_isstring(L, -1))  // a number is taken as its text (instance ids may be integers)
    luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::string v(s, len);
  lua_pop(L, 1);
  return v;
}

}  // namespace skyhost::bind
