// What the bindings share within one Lua state: the loop and the live pools. Kept in the
// registry as a light userdata; created by the runtime before any module is required.
#pragma once

#include <atomic>
#include <exception>
#include <lua.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "host/core/loop.hpp"
#include "host/http/http.hpp"
#include "host/links/scheduler.hpp"
#include "host/transfer/transfers.hpp"

namespace skyhost {

struct Context {
  Loop loop;
  std::set<Scheduler*> pools;
  /// Events raised outside any pool's scheduler (SSH bootstrap output), for the driver.
  std::vector<Event> events;
  /// pool:put/get of files and trees, each under a wait id until its result is taken.
  Transfers transfers{loop};
  /// The coroutine running now, so a signal can stop the Lua code that is actually executing.
  lua_State* running = nullptr;
  lua_State* main = nullptr;
  std::atomic<bool> tearing_down{false};
  std::string worker_path;
  /// Created by the first sky.http request (bindings/http.cpp); destroyed before `loop`.
  std::unique_ptr<HttpClient> http;
};

/// The context of the state `L` belongs to.
Context& context(lua_State* L);
void set_context(lua_State* L, Context* ctx);

/// Runs `fn`, turning a C++ exception into a Lua error: the one place exceptions cross into Lua.
template <typename Fn>
int guarded(lua_State* L, Fn&& fn) {
  const char* what = nullptr;
  try {
    return fn();
  } catch (const std::exception& e) {
    lua_pushstring(L, e.what());
    what = lua_tostring(L, -1);
  }
  return luaL_error(L, "%s", what);
}

}  // namespace skyhost
