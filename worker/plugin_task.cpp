#include "worker/plugin_task.hpp"

#include <unistd.h>

#include <chrono>
#include <string>

#include "bindings/codec.hpp"
#include "worker/executor.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_values.hpp"

namespace skyworker::plugins {

namespace {

using skyhost::wire::Msg;
using skyhost::wire::Writer;
using Status = PluginClient::Status;

// One plugin host per executor thread.
thread_local PluginClient t_client;
thread_local Shared* t_shared = nullptr;
thread_local std::string t_node;

/// "node 2 (hostname)", from the identity the host sent.
const std::string& node_label() {
  if (!t_node.empty()) return t_node;
  std::string node = "?";
  if (t_shared != nullptr) {
    try {
      ArgViews v;
      v.parse(t_shared->init);
      if (v.size() > 0 && v.data()[0].type == SKY_MAP) {
        const sky_value& m = v.data()[0];
        for (size_t i = 0; i < m.as.map.size; ++i) {
          const sky_value& k = m.as.map.kv[2 * i];
          const sky_value& x = m.as.map.kv[2 * i + 1];
          if (k.type == SKY_STRING &&
              std::string_view(k.as.string.data, k.as.string.size) == "node" && x.type == SKY_INT)
            node = std::to_string(x.as.integer);
        }
      }
    } catch (const std::exception&) {
    }
  }
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  t_node = "node " + node + " (" + host + ")";
  return t_node;
}

std::string failure(const PluginDef& d, const PluginClient::Reply& r, uint64_t task) {
  switch (r.status) {
    case Status::kLoadError:
      return "cannot load plugin '" + d.name + "' on " + node_label() + ": " + r.text;
    case Status::kDied:
      return "plugin '" + d.name + "' (" + d.path + ") " + r.text + " on " + node_label() +
             ", task " + std::to_string(task) + "; the node goes on with a new plugin host";
    default:
      return "plugin '" + d.name + "': " + r.text;
  }
}

/// plugin.call(handle, ...) → the plugin's results; raises its failure.
int l_plugin_call(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  PluginDef def;
  const char* keys[] = {"name", "path", "symbol", "hash"};
  std::string* fields[] = {&def.name, &def.path, &def.symbol, &def.hash};
  for (int i = 0; i < 4; ++i) {
    lua_getfield(L, 1, keys[i]);  // [handle, args..., v]
    size_t n = 0;
    const char* s = lua_tolstring(L, -1, &n);
    if (s == nullptr) return luaL_error(L, "not a plugin handle (no %s)", keys[i]);
    fields[i]->assign(s, n);
    lua_pop(L, 1);  // [handle, args...]
  }
  std::string err;
  PluginClient::Reply rep;
  try {
    Writer args;
    skyhost::codec::encode_values(L, 2, lua_gettop(L) - 1, args);
    rep = t_client.call(def, args.data(), nullptr);
    if (rep.status == Status::kOk) {
      lua_settop(L, 0);  // []
      skyhost::wire::Reader r(rep.body());
      return skyhost::codec::decode_values(L, r);  // [results...]
    }
    err = failure(def, rep, current_task());
  } catch (const std::exception& e) {
    err = "plugin '" + def.name + "': " + e.what();
  }
  lua_pushlstring(L, err.data(), err.size());
  return lua_error(L);
}

const luaL_Reg kFunctions[] = {
    {"call", l_plugin_call},
    {nullptr, nullptr},
};

int luaopen_skyworker_plugin(lua_State* L) {
  luaL_newlib(L, kFunctions);
  return 1;
}

}  // namespace

void attach(Shared& shared, lua_State* L) {
  t_shared = &shared;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);  // [preload]
  lua_pushcfunction(L, luaopen_skyworker_plugin);
  lua_setfield(L, -2, "skyworker.plugin");
  lua_pop(L, 1);  // []
}

void run_task(Shared& shared, const TaskMsg& task, std::string_view closure) {
  t_shared = &shared;
  auto start = std::chrono::steady_clock::now();
  PluginDef def;
  PluginClient::Reply rep;
  std::string err;
  try {
    def = parse_plugin_def(closure);
    rep = t_client.call(def, task.args, task.args.region());
    if (rep.status != Status::kOk) err = failure(def, rep, task.id);
  } catch (const std::exception& e) {
    err = std::string("plugin task: ") + e.what();
  }
  auto ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  auto head = [&](Writer& w, bool ok) {
    w.put_u64(task.id);
    w.put_u8(ok ? 1 : 0);
    w.put_u64(ns);
  };
  if (!err.empty()) {
    shared.out.frame(Msg::kResult, [&](Writer& w) {
      head(w, false);
      w.put_string(err);
      w.put_string("");  // no Lua traceback: the message says where
    });
  } else if (rep.region) {
    // The result is in shared memory the plugin wrote: sent from there.
    try {
      shared.out.frame(
          Msg::kResult, [&](Writer& w) { head(w, true); }, rep.region);
    } catch (const std::exception& e) {
      std::string msg = "plugin '" + def.name + "': cannot return the result: " + e.what();
      shared.out.frame(Msg::kResult, [&](Writer& w) {
        head(w, false);
        w.put_string(msg);
        w.put_string("");
      });
    }
  } else {
    shared.out.frame(Msg::kResult, [&](Writer& w) {
      head(w, true);
      w.put_raw(rep.text.data(), rep.text.size());
    });
  }
}

}  // namespace skyworker::plugins
