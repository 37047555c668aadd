#include "worker/executor.hpp"

#include <unistd.h>

#include <chrono>
#include <lua.hpp>
#include <string>
#include <unordered_map>

#include "bindings/codec.hpp"
#include "bindings/embedded.hpp"
#include "bindings/preload.hpp"
#include "worker/supervisor.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Msg;
using skyhost::wire::Reader;
using skyhost::wire::Writer;

thread_local Shared* t_shared = nullptr;
thread_local uint64_t t_task = 0;

/// print() on a worker: the text goes back to the host as a Log event of the running task.
int l_worker_print(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::string_view text(s, len);
  t_shared->out.frame(Msg::kLog, [&](Writer& w) {
    w.put_u64(t_task);
    w.put_string(text);
  });
  return 0;
}

/// Message handler: the error becomes {message, traceback[, value]} while the failing stack
/// still exists; value is the error object itself when it is a table, to send as it is.
int l_traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  }
  lua_createtable(L, 2, 0);  // [.., err]
  lua_pushstring(L, msg);
  lua_rawseti(L, -2, 1);
  luaL_traceback(L, L, nullptr, 1);
  lua_rawseti(L, -2, 2);
  if (lua_istable(L, 1)) {
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 3);
  }
  return 1;
}

lua_State* new_state(Shared& shared) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  skyhost::preload_embedded(L, skyhost::worker_modules());
  lua_pushcfunction(L, l_worker_print);
  lua_setglobal(L, "print");
  // The node's identity, for sky.instance_info().
  Reader r(shared.init);
  int n = skyhost::codec::decode_values(L, r);  // [info...]
  lua_settop(L, lua_gettop(L) - n + 1);         // [info]
  if (!lua_istable(L, -1)) luaL_error(L, "the host sent no node identity");
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  lua_pushstring(L, host);
  lua_setfield(L, -2, "hostname");
  lua_pushinteger(L, getpid());
  lua_setfield(L, -2, "pid");
  lua_setfield(L, LUA_REGISTRYINDEX, "skyworker.info");  // []
  lua_getglobal(L, "require");
  lua_pushstring(L, "sky");
  lua_call(L, 1, 1);  // [sky]
  lua_setglobal(L, "sky");
  return L;
}

/// A failure's body: message and traceback as plain wire strings, so the host can also build
/// one itself (a lost node) without a Lua state.
void put_error(Writer& w, const std::string& message, const std::string& trace) {
  w.put_string(message);
  w.put_string(trace);
}

void run_task(Shared& shared, Supervisor& sup, Slot& slot, lua_State* L, TaskMsg& task) {
  auto start = std::chrono::steady_clock::now();
  Writer body;
  bool ok = false;
  int base = lua_gettop(L);
  t_task = task.id;
  try {
    auto fn = shared.closures.get(task.fn);
    if (!fn) throw skyhost::wire::Error("task refers to an unknown function");
    lua_pushcfunction(L, l_traceback);  // [msgh]
    Reader fr(*fn);
    if (skyhost::codec::decode_values(L, fr) != 1 || !lua_isfunction(L, -1)) {
      throw skyhost::wire::Error("task function did not decode to a function");
    }
    Reader ar(task.args);
    int nargs = skyhost::codec::decode_values(L, ar);  // [msgh, fn, args...]
    int rc = lua_pcall(L, nargs, LUA_MULTRET, base + 1);
    if (rc == LUA_OK) {
      int nres = lua_gettop(L) - base - 1;
      try {
        skyhost::codec::encode_values(L, base + 2, nres, body);
        ok = true;
      } catch (const skyhost::codec::EncodeError& e) {
        body.clear();
        put_error(body, std::string("cannot return the result: ") + e.what(), "");
      }
    } else {
      int err = lua_gettop(L);
      bool handled = lua_istable(L, err);  // a memory error skips the handler
      std::string msg = "error", trace;
      if (handled) {
        lua_rawgeti(L, err, 1);
        lua_rawgeti(L, err, 2);  // [.., err, msg, trace]
        if (const char* m = lua_tostring(L, -2)) msg = m;
        if (const char* t = lua_tostring(L, -1)) trace = t;
      } else if (const char* m = lua_tostring(L, err)) {
        msg = m;
      }
      put_error(body, msg, trace);
      if (handled && lua_rawgeti(L, err, 3) == LUA_TTABLE) {
        // The table the task raised, for the script to inspect; left out if it cannot travel.
        Writer value;
        try {
          skyhost::codec::encode_values(L, lua_gettop(L), 1, value);
          body.put_raw(value.data().data(), value.size());
        } catch (const skyhost::codec::EncodeError&) {
        }
      }
    }
  } catch (const std::exception& e) {
    body.clear();
    put_error(body, e.what(), "");
  }
  lua_settop(L, base);
  t_task = 0;
  if (!sup.end(slot)) return;  // stopped: the supervisor has answered for it
  auto status = ok ? skyhost::wire::Status::kOk : skyhost::wire::Status::kFailed;
  uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  shared.out.frame(Msg::kResult, [&](Writer& w) {
    w.put_u64(task.id);
    w.put_u8(static_cast<uint8_t>(status));
    w.put_u64(ns);
    w.put_raw(body.data().data(), body.size());
  });
}

}  // namespace

void run_executor(Shared& shared, Supervisor& supervisor, Slot& slot) {
  t_shared = &shared;
  lua_State* L = new_state(shared);
  *static_cast<Slot**>(lua_getextraspace(L)) = &slot;  // for the supervisor's stop hook
  {
    std::lock_guard lock(slot.mu);
    slot.L = L;
  }
  while (auto task = supervisor.next(slot)) {
    run_task(shared, supervisor, slot, L, *task);
  }
  {
    std::lock_guard lock(slot.mu);
    slot.L = nullptr;
  }
  lua_close(L);
}

}  // namespace skyworker
