// skyhost.core: the loop as the Lua driver (stdlib/sky/internal/sched.lua) sees it — poll for
// completed waits, timers, events, signals.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <lua.hpp>
#include <string>

#include "bindings/codec.hpp"
#include "bindings/context.hpp"

namespace skyhost {

namespace {

const char* kContextKey = "skyhost.context";

/// core.poll(block) → list of wait ids that completed, and true when blocking was asked for
/// but nothing left in the loop could complete a wait (the driver must not spin).
int l_core_poll(lua_State* L) {
  bool block = lua_toboolean(L, 1);
  Context& ctx = context(L);
  std::vector<WaitId> done;
  bool alive = ctx.loop.poll(block, done);
  lua_createtable(L, static_cast<int>(done.size()), 0);  // [ids]
  for (size_t i = 0; i < done.size(); i++) {
    lua_pushinteger(L, static_cast<lua_Integer>(done[i]));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_pushboolean(L, !alive);  // [ids, stalled]
  return 2;
}

/// core.sleep(seconds) → wait id completing after that long.
int l_core_sleep(lua_State* L) {
  double s = luaL_checknumber(L, 1);
  if (s < 0) s = 0;
  lua_pushinteger(L,
                  static_cast<lua_Integer>(context(L).loop.sleep(static_cast<uint64_t>(s * 1000))));
  return 1;
}

/// core.cancel(id) → true if `id` was a pending core.sleep timer, now stopped.
int l_core_cancel(lua_State* L) {
  auto id = static_cast<WaitId>(luaL_checkinteger(L, 1));
  lua_pushboolean(L, id > 0 && context(L).loop.cancel(id));
  return 1;
}

/// core.now() → seconds on a monotonic clock.
int l_core_now(lua_State* L) {
  auto t = std::chrono::steady_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(t).count());
  return 1;
}

/// core.time() → seconds since the epoch, with sub-second precision (timestamps to show).
int l_core_time(lua_State* L) {
  auto t = std::chrono::system_clock::now().time_since_epoch();
  lua_pushnumber(L, std::chrono::duration<double>(t).count());
  return 1;
}

/// core.interrupts() → SIGINT/SIGTERM received so far, and the first signal's number (0: none).
int l_core_interrupts(lua_State* L) {
  lua_pushinteger(L, context(L).loop.interrupts());
  lua_pushinteger(L, context(L).loop.first_signal());
  return 2;
}

/// core.resume(co, ...) → like coroutine.resume, recording which coroutine runs so that a
/// signal interrupts the code actually executing.
int l_core_resume(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co != nullptr, 1, "coroutine");
  int nargs = lua_gettop(L) - 1;
  if (!lua_checkstack(co, nargs)) return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, nargs);
  Context& ctx = context(L);
  lua_State* prev = ctx.running;
  ctx.running = co;
  int nres = 0;
  int rc = lua_resume(co, L, nargs, &nres);
  ctx.running = prev;
  if (rc == LUA_OK || rc == LUA_YIELD) {
    lua_pushboolean(L, 1);
    if (!lua_checkstack(L, nres + 1)) return luaL_error(L, "too many results to resume");
    lua_xmove(co, L, nres);
    return nres + 1;
  }
  lua_pushboolean(L, 0);
  lua_xmove(co, L, 1);  // [false, err]
  return 2;
}

void push_event(lua_State* L, const Event& e) {
  lua_createtable(L, 0, 6);  // [.., ev]
  lua_pushstring(L, e.type.c_str());
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, e.pool);
  lua_setfield(L, -2, "pool");
  if (e.node >= 0) {
    lua_pushinteger(L, e.node);
    lua_setfield(L, -2, "node");
  }
  if (e.task != 0) {
    lua_pushinteger(L, static_cast<lua_Integer>(e.task));
    lua_setfield(L, -2, "task");
  }
  if (e.type == "TaskCompleted") {
    lua_pushnumber(L, e.duration);
    lua_setfield(L, -2, "duration");
    lua_pushboolean(L, e.ok);
    lua_setfield(L, -2, "ok");
  }
  if (e.type == "SpotNotice") {  // action and time of the notice (AWS's names)
    lua_pushlstring(L, e.name.data(), e.name.size());
    lua_setfield(L, -2, "action");
    lua_pushlstring(L, e.text.data(), e.text.size());
    lua_setfield(L, -2, "notice_time");
  } else if (!e.text.empty()) {
    lua_pushlstring(L, e.text.data(), e.text.size());
    lua_setfield(L, -2, e.type == "InstanceLost" ? "reason" : "text");
  }
  if (!e.phase.empty()) {
    lua_pushstring(L, e.phase.c_str());
    lua_setfield(L, -2, "phase");
  }
  if (!e.stream.empty()) {
    lua_pushstring(L, e.stream.c_str());
    lua_setfield(L, -2, "stream");
  }
  if (e.type == "Metric") {
    lua_pushstring(L, e.name.c_str());
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, e.value);
    lua_setfield(L, -2, "value");
    lua_pushstring(L, e.unit.c_str());
    lua_setfield(L, -2, "unit");
  }
}

/// core.take_events() → list of events raised since the last call, by every pool and by the
/// SSH bootstrap.
int l_core_take_events(lua_State* L) {
  Context& ctx = context(L);
  lua_newtable(L);  // [events]
  int n = 0;
  for (Event& e : ctx.events) {
    push_event(L, e);
    lua_rawseti(L, -2, ++n);
  }
  ctx.events.clear();
  for (Scheduler* s : ctx.pools) {
    for (Event& e : s->take_events()) {
      push_event(L, e);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

/// core.capture(fn) → bytes: the function and its upvalues, by value, as they are now.
int l_core_capture(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return guarded(L, [&] {
    wire::Writer w;
    codec::encode_values(L, 1, 1, w);
    lua_pushlstring(L, w.data().data(), w.size());
    return 1;
  });
}

/// core.set_teardown(on): while on, a signal no longer interrupts Lua code (teardown must
/// finish however often Ctrl-C is pressed).
int l_core_set_teardown(lua_State* L) {
  context(L).tearing_down.store(lua_toboolean(L, 1));
  return 0;
}

/// core.worker_path() → the skyworker binary: $SKYHOST_WORKER, else next to this program.
int l_core_worker_path(lua_State* L) {
  lua_pushstring(L, context(L).worker_path.c_str());
  return 1;
}

int l_core_hostname(lua_State* L) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  lua_pushstring(L, host);
  return 1;
}

/// core.isatty(fd) → whether the descriptor is a terminal (display modes).
int l_core_isatty(lua_State* L) {
  lua_pushboolean(L, isatty(static_cast<int>(luaL_checkinteger(L, 1))));
  return 1;
}

/// core.cores() → the cores this process may use.
int l_core_cores(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(uv_available_parallelism()));
  return 1;
}

int l_core_pid(lua_State* L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/// core.signal(pid, "TERM"|"KILL"|0) → true | nil, why: sends a signal (0: only checks that the
/// process exists and may be signalled), for `skyhost down --force`.
int l_core_signal(lua_State* L) {
  auto pid = static_cast<pid_t>(luaL_checkinteger(L, 1));
  luaL_argcheck(L, pid > 0, 1, "a process id");
  int sig = 0;
  if (lua_type(L, 2) == LUA_TSTRING) {
    std::string name = lua_tostring(L, 2);
    sig = name == "TERM" ? SIGTERM : name == "KILL" ? SIGKILL : name == "INT" ? SIGINT : -1;
    luaL_argcheck(L, sig > 0, 2, "TERM, KILL or INT");
  }
  if (kill(pid, sig) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, std::strerror(errno));
  return 2;
}

/// core.live_handles() → libuv handles still open (a leak check for tests).
int l_core_live_handles(lua_State* L) {
  lua_pushinteger(L, context(L).loop.live_handles());
  return 1;
}

const luaL_Reg kCore[] = {
    {"poll", l_core_poll},
    {"sleep", l_core_sleep},
    {"cancel", l_core_cancel},
    {"now", l_core_now},
    {"time", l_core_time},
    {"interrupts", l_core_interrupts},
    {"resume", l_core_resume},
    {"take_events", l_core_take_events},
    {"live_handles", l_core_live_handles},
    {"capture", l_core_capture},
    {"set_teardown", l_core_set_teardown},
    {"worker_path", l_core_worker_path},
    {"hostname", l_core_hostname},
    {"pid", l_core_pid},
    {"signal", l_core_signal},
    {"cores", l_core_cores},
    {"isatty", l_core_isatty},
    {nullptr, nullptr},
};

}  // namespace

Context& context(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kContextKey);
  auto* ctx = static_cast<Context*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (ctx == nullptr) luaL_error(L, "skyhost runtime is not initialised");
  return *ctx;
}

void set_context(lua_State* L, Context* ctx) {
  lua_pushlightuserdata(L, ctx);
  lua_setfield(L, LUA_REGISTRYINDEX, kContextKey);
}

}  // namespace skyhost

extern "C" int luaopen_skyhost_core(lua_State* L) {
  luaL_newlib(L, skyhost::kCore);
  lua_pushstring(L, SKYHOST_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
