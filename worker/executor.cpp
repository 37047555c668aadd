#include "worker/executor.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <lua.hpp>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>

#include "bindings/codec.hpp"
#include "bindings/embedded.hpp"
#include "bindings/preload.hpp"
#include "worker/capture.hpp"
#include "worker/node.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/plugin_task.hpp"
#include "worker/shell.hpp"
#include "worker/supervisor.hpp"

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
  // One Log event per line; a line too long for a frame is cut, not a reason to fail the task.
  size_t room = t_shared->max_frame - skyhost::wire::kFrameOverhead - 32;
  std::string_view text(s, len);
  for (;;) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    send_log(t_shared->out, t_task, kStdout, line.substr(0, room));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
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

/// Sets up a new executor state (in a protected call: a memory error fails the setup, it
/// does not panic). The Init it reads was checked when it arrived (worker/inbox.cpp).
int l_setup(lua_State* L) {
  auto* shared = static_cast<Shared*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  luaL_openlibs(L);
  bind_lua_stdio(L);
  preload_shell(L);
  skyhost::preload_embedded(L, skyhost::worker_modules());
  lua_pushcfunction(L, l_worker_print);
  lua_setglobal(L, "print");
  // The node's identity, for sky.instance_info().
  try {
    Reader r(shared->init);
    skyhost::codec::decode_data(L, r);  // [info]
  } catch (const std::exception& e) {
    lua_pushstring(L, e.what());
    return 1;
  }
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  lua_pushstring(L, host);
  lua_setfield(L, -2, "hostname");
  lua_pushinteger(L, getpid());
  lua_setfield(L, -2, "pid");
  push_facts(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "skyworker.info");  // []
  plugins::attach(*shared, L);
  lua_getglobal(L, "require");
  lua_pushstring(L, "sky");
  lua_call(L, 1, 1);  // [sky]
  lua_setglobal(L, "sky");
  return 0;
}

lua_State* new_state(Shared& shared) {
  lua_State* L = luaL_newstate();
  if (L == nullptr) fatal(shared, "no memory for an executor's Lua state");
  lua_pushcfunction(L, l_setup);
  lua_pushlightuserdata(L, &shared);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isnil(L, -1)) {
    const char* why = lua_tostring(L, -1);
    fatal(shared, std::string("cannot set up an executor: ") + (why ? why : "?"));
  }
  lua_settop(L, 0);
  return L;
}

/// A failure's body: message and traceback as plain wire strings, so the host can also build
/// one itself (a lost node) without a Lua state.
void put_error(Writer& w, const std::string& message, const std::string& trace) {
  w.put_string(message);
  w.put_string(trace);
}

struct Job {
  Shared* shared;
  TaskMsg* task;
  Writer body;
  bool ok = false;
};

// Runs a task: its function and arguments decoded, the call, its results encoded as data.
// Called in a protected call, so a Lua error anywhere (no memory for a large argument, say)
// fails the task instead of the worker; C++ exceptions are caught here, before they reach Lua.
int l_run(lua_State* L) {
  auto* job = static_cast<Job*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  Writer& body = job->body;
  try {
    auto fn = job->shared->closures.get(job->task->fn);
    if (!fn) throw skyhost::wire::Error("task refers to an unknown function");
    lua_pushcfunction(L, l_traceback);  // [msgh]
    Reader fr(*fn);
    if (skyhost::codec::decode_values(L, fr) != 1 || !lua_isfunction(L, -1)) {
      throw skyhost::wire::Error("task function did not decode to a function");
    }
    Reader ar(job->task->args);
    int nargs = skyhost::codec::decode_values(L, ar);  // [msgh, fn, args...]
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 1);
    if (rc == LUA_OK) {
      int nres = lua_gettop(L) - 1;
      try {
        // Large strings are sent from the Lua strings themselves (refs): l_run returns the
        // results so that they stay on the stack until the frame is written.
        body.set_refs(true);
        body.set_blobs(true);  // 1 MiB or more: a frame of its own, received into its Lua string
        skyhost::codec::encode_values(L, 2, nres, body, skyhost::codec::Mode::kData);
        body.set_refs(false);
        body.set_blobs(false);
        job->ok = true;
        return nres;
      } catch (const skyhost::codec::EncodeError& e) {
        body.set_refs(false);
        body.set_blobs(false);
        body.clear();
        put_error(body, e.what(), "");
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
          skyhost::codec::encode_values(L, lua_gettop(L), 1, value, skyhost::codec::Mode::kData);
          body.put_raw(value.data().data(), value.size());
        } catch (const skyhost::codec::EncodeError&) {
        }
      }
    }
  } catch (const std::bad_alloc&) {
    job->ok = false;
    body.clear();
    put_error(body, "out of memory on the worker", "");
  } catch (const std::exception& e) {
    job->ok = false;
    body.clear();
    put_error(body, e.what(), "");
  }
  lua_settop(L, 0);
  return 0;
}

void run_task(Shared& shared, Supervisor& sup, Slot& slot, lua_State* L, TaskMsg& task) {
  auto start = std::chrono::steady_clock::now();
  bool restart = false;
  {
    std::lock_guard lock(slot.mu);
    restart = std::exchange(slot.killed_children, false);
  }
  if (restart) plugins::restart_host();  // the supervisor killed it along with a task's commands
  t_task = task.id;
  if (auto fn = shared.closures.get(task.fn); fn && is_plugin_def(*fn)) {  // native: no Lua
    plugins::run_task(shared, task, *fn);
    t_task = 0;
    sup.end(slot);
    return;
  }
  Job job{&shared, &task, {}, false};
  lua_pushcfunction(L, l_run);
  lua_pushlightuserdata(L, &job);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    const char* m = lua_tostring(L, -1);
    job.ok = false;
    job.body.clear();
    put_error(job.body, m ? m : "error", "");
    lua_settop(L, 0);
  }
  // The results stay on the stack (the body's refs point into their strings) until sent.
  std::fflush(stdout);  // what io.write left without a newline
  t_task = 0;
  if (!sup.end(slot)) {  // stopped: the supervisor has answered for it
    lua_settop(L, 0);
    return;
  }
  // A result too large for a frame fails the task: the host gets a message, not a broken
  // stream, and the node stays.
  // Its large strings go apart (blobs) but are held to the same limit, all together.
  size_t size = job.body.size() + job.body.blob_bytes();
  if (size + skyhost::wire::kFrameOverhead > shared.max_frame) {
    std::string why = std::string(job.ok ? "the result" : "the error") + " takes " +
                      skyhost::wire::size_text(size) + ", more than the frame limit of " +
                      skyhost::wire::size_text(shared.max_frame) + " (max_frame)";
    job.ok = false;
    job.body = Writer();
    put_error(job.body, why, "");
  }
  auto status = job.ok ? skyhost::wire::Status::kOk : skyhost::wire::Status::kFailed;
  uint64_t ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count());
  bool refs = !job.body.refs().empty() || !job.body.blobs().empty();
  std::vector<std::string_view> blobs = job.body.blobs();
  uint64_t batch = shared.out.frame(
      Msg::kResult,
      [&](Writer& w) {
        w.put_u64(task.id);
        w.put_u8(static_cast<uint8_t>(status));
        w.put_u64(ns);
        w.append(std::move(job.body));
      },
      blobs);
  if (refs) shared.out.wait_written(batch);
  lua_settop(L, 0);
}

}  // namespace

Shared* current_shared() {
  return t_shared;
}

uint64_t current_task() {
  return t_task;
}

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
