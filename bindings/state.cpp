// skyhost.state: the intent journal (host/state) as a Lua userdata. Check, call, push: the
// JSON in `info` and the cache, and the structured errors, are stdlib/sky/state.lua's.
#include "host/state/state.hpp"

#include <lua.hpp>

#include "bindings/context.hpp"
#include "bindings/object.hpp"

namespace skyhost {

namespace {

constexpr char kStateMeta[] = "skyhost.state";

StateStore& check_store(lua_State* L) {
  return bind::check_object<StateStore>(L, 1, kStateMeta, "state store");
}

std::string check_string(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, idx, &len);
  return std::string(s, len);
}

/// Argument `idx` if given, as a string.
std::optional<std::string> opt_arg(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return std::nullopt;
  return check_string(L, idx);
}

std::string field(lua_State* L, int idx, const char* key, bool required) {
  lua_getfield(L, idx, key);  // [.., v]
  std::string v;
  if (lua_type(L, -1) == LUA_TSTRING) {
    v = lua_tostring(L, -1);
  } else if (required || !lua_isnil(L, -1)) {
    luaL_error(L, "field '%s' must be a string", key);
  }
  lua_pop(L, 1);
  return v;
}

void push_pool(lua_State* L, const PoolRecord& p) {
  lua_createtable(L, 0, 7);  // [.., pool]
  lua_pushstring(L, p.id.c_str());
  lua_setfield(L, -2, "id");
  lua_pushstring(L, p.name.c_str());
  lua_setfield(L, -2, "name");
  lua_pushstring(L, p.provider.c_str());
  lua_setfield(L, -2, "provider");
  lua_pushnumber(L, p.created);
  lua_setfield(L, -2, "created");
  lua_pushstring(L, p.state.c_str());
  lua_setfield(L, -2, "state");
  lua_pushlstring(L, p.info.data(), p.info.size());
  lua_setfield(L, -2, "info");
  lua_pushinteger(L, p.live_instances);
  lua_setfield(L, -2, "live_instances");
}

void push_instance(lua_State* L, const InstanceRecord& i) {
  lua_createtable(L, 0, 8);  // [.., inst]
  lua_pushinteger(L, i.key);
  lua_setfield(L, -2, "key");
  lua_pushstring(L, i.pool_id.c_str());
  lua_setfield(L, -2, "pool_id");
  lua_pushstring(L, i.provider.c_str());
  lua_setfield(L, -2, "provider");
  if (!i.instance_id.empty()) {
    lua_pushstring(L, i.instance_id.c_str());
    lua_setfield(L, -2, "instance_id");
  }
  lua_pushstring(L, i.state.c_str());
  lua_setfield(L, -2, "state");
  lua_pushnumber(L, i.created);
  lua_setfield(L, -2, "created");
  if (i.terminated) {
    lua_pushnumber(L, *i.terminated);
    lua_setfield(L, -2, "terminated");
  }
  lua_pushlstring(L, i.info.data(), i.info.size());
  lua_setfield(L, -2, "info");
}

template <typename T, typename Push>
void push_list(lua_State* L, const std::vector<T>& items, Push push) {
  lua_createtable(L, static_cast<int>(items.size()), 0);  // [.., list]
  for (size_t i = 0; i < items.size(); i++) {
    push(L, items[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

/// state.open([path]) → store; without a path, $SKYHOST_STATE_DIR/state.db or ~/.skyhost/.
int l_state_open(lua_State* L) {
  std::string path = lua_isnoneornil(L, 1) ? StateStore::default_path() : check_string(L, 1);
  return guarded(L, [&] {
    bind::push_object(L, kStateMeta, std::make_unique<StateStore>(path));  // [.., store]
    return 1;
  });
}

int l_state_default_path(lua_State* L) {
  lua_pushstring(L, StateStore::default_path().c_str());
  return 1;
}

int l_state_path(lua_State* L) {
  lua_pushstring(L, check_store(L).path().c_str());
  return 1;
}

/// store:record_pool{id=, name=, provider=, info=} → id
int l_state_record_pool(lua_State* L) {
  StateStore& s = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  PoolRecord p;
  p.id = field(L, 2, "id", false);
  p.name = field(L, 2, "name", true);
  p.provider = field(L, 2, "provider", true);
  p.info = field(L, 2, "info", false);
  return guarded(L, [&] {
    std::string id = s.record_pool(p);
    lua_pushstring(L, id.c_str());
    return 1;
  });
}

/// store:mark_pool(id, state)
int l_state_mark_pool(lua_State* L) {
  StateStore& s = check_store(L);
  std::string id = check_string(L, 2), state = check_string(L, 3);
  return guarded(L, [&] { return s.mark_pool(id, state), 0; });
}

/// store:record_instance_intent(pool_id, provider[, info]) → key
int l_state_record_instance_intent(lua_State* L) {
  StateStore& s = check_store(L);
  std::string pool = check_string(L, 2), provider = check_string(L, 3);
  std::string info = opt_arg(L, 4).value_or("");
  return guarded(L, [&] {
    lua_pushinteger(L, s.record_instance_intent(pool, provider, info));
    return 1;
  });
}

/// store:mark_instance(key, state[, instance_id[, info]])
int l_state_mark_instance(lua_State* L) {
  StateStore& s = check_store(L);
  lua_Integer key = luaL_checkinteger(L, 2);
  std::string state = check_string(L, 3);
  auto instance_id = opt_arg(L, 4);
  auto info = opt_arg(L, 5);
  return guarded(L, [&] { return s.mark_instance(key, state, instance_id, info), 0; });
}

/// store:finish_pool(id) → list of instances not confirmed terminated
int l_state_finish_pool(lua_State* L) {
  StateStore& s = check_store(L);
  std::string id = check_string(L, 2);
  return guarded(L, [&] { return push_list(L, s.finish_pool(id), push_instance), 1; });
}

int l_state_forget_pool(lua_State* L) {
  StateStore& s = check_store(L);
  std::string id = check_string(L, 2);
  return guarded(L, [&] { return s.forget_pool(id), 0; });
}

int l_state_live_pools(lua_State* L) {
  StateStore& s = check_store(L);
  return guarded(L, [&] { return push_list(L, s.live_pools(), push_pool), 1; });
}

/// store:pool(id) → pool | nil
int l_state_pool(lua_State* L) {
  StateStore& s = check_store(L);
  std::string id = check_string(L, 2);
  return guarded(L, [&] {
    auto p = s.pool(id);
    if (!p) return 0;
    return push_pool(L, *p), 1;
  });
}

int l_state_instances(lua_State* L) {
  StateStore& s = check_store(L);
  std::string id = check_string(L, 2);
  return guarded(L, [&] { return push_list(L, s.instances(id), push_instance), 1; });
}

/// store:cache_get(provider, key, ttl_seconds) → json text | nil
int l_state_cache_get(lua_State* L) {
  StateStore& s = check_store(L);
  std::string provider = check_string(L, 2), key = check_string(L, 3);
  double ttl = luaL_checknumber(L, 4);
  return guarded(L, [&] {
    auto v = s.cache_get(provider, key, ttl);
    if (!v) return 0;
    return lua_pushlstring(L, v->data(), v->size()), 1;
  });
}

int l_state_cache_put(lua_State* L) {
  StateStore& s = check_store(L);
  std::string provider = check_string(L, 2), key = check_string(L, 3);
  std::string json = check_string(L, 4);
  return guarded(L, [&] { return s.cache_put(provider, key, json), 0; });
}

int l_state_cache_prune(lua_State* L) {
  StateStore& s = check_store(L);
  double age = luaL_checknumber(L, 2);
  return guarded(L, [&] { return lua_pushinteger(L, s.cache_prune(age)), 1; });
}

int l_state_begin(lua_State* L) {
  StateStore& s = check_store(L);
  return guarded(L, [&] { return s.begin(), 0; });
}

int l_state_commit(lua_State* L) {
  StateStore& s = check_store(L);
  return guarded(L, [&] { return s.commit(), 0; });
}

int l_state_rollback(lua_State* L) {
  StateStore& s = check_store(L);
  return guarded(L, [&] { return s.rollback(), 0; });
}

/// store:close() (also __close, __gc) — idempotent; an open transaction is rolled back.
constexpr lua_CFunction l_state_close = bind::close_object<StateStore, kStateMeta>;

const luaL_Reg kStateMethods[] = {
    {"path", l_state_path},
    {"record_pool", l_state_record_pool},
    {"mark_pool", l_state_mark_pool},
    {"record_instance_intent", l_state_record_instance_intent},
    {"mark_instance", l_state_mark_instance},
    {"finish_pool", l_state_finish_pool},
    {"forget_pool", l_state_forget_pool},
    {"live_pools", l_state_live_pools},
    {"pool", l_state_pool},
    {"instances", l_state_instances},
    {"cache_get", l_state_cache_get},
    {"cache_put", l_state_cache_put},
    {"cache_prune", l_state_cache_prune},
    {"begin", l_state_begin},
    {"commit", l_state_commit},
    {"rollback", l_state_rollback},
    {"close", l_state_close},
    {nullptr, nullptr},
};

const luaL_Reg kStateModule[] = {
    {"open", l_state_open},
    {"default_path", l_state_default_path},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_state(lua_State* L) {
  using namespace skyhost;
  bind::register_type(L, kStateMeta, kStateMethods, l_state_close);
  luaL_newlib(L, kStateModule);
  return 1;
}
