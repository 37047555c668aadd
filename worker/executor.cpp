#include "worker/executor.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <lua.hpp>
#include <string>
#include <unordered_map>

#include "bindings/codec.hpp"
#include "bindings/embedded.hpp"
#include "bindings/preload.hpp"
#include "worker/capture.hpp"
#include "worker/node.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/plugin_task.hpp"
#include "worker/shell.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Msg;
using skyhost::wire::Reader;
using skyhost::wire::Writer;

thread_local Shared* t_shared = nullptr;
thread_local uint64_t t_task = 0;

/// print() on a worker: the text goes back to the host as Log events of the running task, one
/// per line.
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
  for (;;) {
    size_t nl = text.find('\n');
    send_log(t_shared->out, t_task, kStdout, text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return 0;
}

/// Message handler: the error becomes {message, traceback} while the failing stack still exists.
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
  return 1;
}

lua_State* new_state(Shared& shared) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  bind_lua_stdio(L);
  preload_shell(L);
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
  push_facts(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "skyworker.info");  // []
  plugins::attach(shared, L);
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

void run_task(Shared& shared, lua_State* L, TaskMsg& task) {
  auto start = std::chrono::steady_clock::now();
  Writer body;
  bool ok = false;
  int base = lua_gettop(L);
  t_task = task.id;
  try {
    auto fn = shared.closures.get(task.fn);
    if (!fn) throw skyhost::wire::Error("task refers to an unknown function");
    if (is_plugin_def(*fn)) {  // native: no Lua involved
      plugins::run_task(shared, task, *fn);
      t_task = 0;
      return;
    }
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
      std::string msg = "error", trace;
      if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);  // [.., err, msg, trace]
        if (const char* m = lua_tostring(L, -2)) msg = m;
        if (const char* t = lua_tostring(L, -1)) trace = t;
      } else if (const char* m = lua_tostring(L, -1)) {
        msg = m;  // a memory error skips the handler
      }
      put_error(body, msg, trace);
    }
  } catch (const std::exception& e) {
    body.clear();
    put_error(body, e.what(), "");
  }
  lua_settop(L, base);
  std::fflush(stdout);  // what io.write left without a newline
  t_task = 0;
  uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  shared.out.frame(Msg::kResult, [&](Writer& w) {
    w.put_u64(task.id);
    w.put_u8(ok ? 1 : 0);
    w.put_u64(ns);
    w.put_raw(body.data().data(), body.size());
  });
}

}  // namespace

Shared* current_shared() {
  return t_shared;
}

uint64_t current_task() {
  return t_task;
}

void run_executor(Shared& shared, int /*index*/) {
  t_shared = &shared;
  lua_State* L = new_state(shared);
  while (auto task = shared.tasks.pop()) {
    run_task(shared, L, *task);
  }
  lua_close(L);
}

}  // namespace skyworker
