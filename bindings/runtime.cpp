#include "bindings/runtime.hpp"

#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <lua.hpp>

#include "bindings/context.hpp"
#include "bindings/embedded.hpp"
#include "bindings/preload.hpp"

extern "C" int luaopen_skyhost_core(lua_State* L);
extern "C" int luaopen_skyhost_pool(lua_State* L);
extern "C" int luaopen_skyhost_ssh(lua_State* L);
extern "C" int luaopen_skyhost_http(lua_State* L);
extern "C" int luaopen_skyhost_json(lua_State* L);
extern "C" int luaopen_skyhost_state(lua_State* L);
extern "C" int luaopen_skyhost_encoding(lua_State* L);
extern "C" int luaopen_skyhost_crypto(lua_State* L);

namespace skyhost {

namespace {

// Read inside the signal handler, which may run on another thread than the one clearing it.
std::atomic<Context*> g_signal_ctx{nullptr};

/// Stops the running script code with the same structured error an interrupted wait raises
/// (sky.errors: code "Interrupted", blamed on the user's line), so that there is one shape to
/// recognise. Taken from package.loaded rather than through `require`, which a script may replace.
void interrupt_hook(lua_State* L, lua_Debug*) {
  lua_sethook(L, nullptr, 0, 0);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "sky.errors") == LUA_TTABLE &&
      lua_getfield(L, -1, "interrupted") == LUA_TFUNCTION && lua_pcall(L, 0, 1, 0) == LUA_OK) {
    lua_error(L);
  }
  luaL_error(L, "interrupted");  // sky.errors not loaded: nothing of sky is running either
}

/// Runs inside the signal handler: only async-signal-safe work. Like the `lua` program, it sets
/// a hook so that Lua code running right now stops at its next instruction.
void on_signal(int) {
  Context* ctx = g_signal_ctx.load();
  if (ctx == nullptr) return;
  if (ctx->tearing_down.load()) {
    static const char msg[] = "\nskyhost: tearing down the pools, please wait\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    return;
  }
  int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT;
  // The driver itself (main thread) notices interrupts when its poll wakes; only script code
  // running in a coroutine needs the hook.
  if (ctx->running != nullptr && ctx->running != ctx->main) {
    lua_sethook(ctx->running, interrupt_hook, mask, 1);
  }
}

std::string default_worker_path() {
  if (const char* env = std::getenv("SKYHOST_WORKER")) return env;
  char buf[4096];
  size_t len = sizeof buf;
  if (uv_exepath(buf, &len) != 0) return "skyworker";
  std::string exe(buf, len);
  auto slash = exe.rfind('/');
  return (slash == std::string::npos ? std::string(".") : exe.substr(0, slash)) + "/skyworker";
}

/// SKYHOST_STDLIB=<repo>: load stdlib/ and providers/ from disk, to edit Lua without a rebuild.
/// Searcher upvalue: the repo directory.
int l_disk_searcher(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  std::string root = lua_tostring(L, lua_upvalueindex(1));
  std::string rel = name;
  for (char& c : rel) c = c == '.' ? '/' : c;
  bool provider = rel == "providers" || rel.rfind("providers/", 0) == 0;
  std::string dir = provider ? "" : "stdlib/";
  for (const std::string& cand : {dir + rel + ".lua", dir + rel + "/init.lua"}) {
    std::string path = root + "/" + cand;
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) continue;
    std::fclose(f);
    std::string chunk = "@" + cand;
    // Load under the same chunk name as the embedded copy, so errors read the same.
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "open");
    lua_pushstring(L, path.c_str());
    lua_call(L, 1, 1);  // [io, file]
    lua_getfield(L, -1, "read");
    lua_pushvalue(L, -2);
    lua_pushstring(L, "a");
    lua_call(L, 2, 1);  // [io, file, src]
    size_t len = 0;
    const char* src = lua_tolstring(L, -1, &len);
    if (luaL_loadbufferx(L, src, len, chunk.c_str(), "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, path.c_str());
    return 2;
  }
  lua_pushfstring(L, "no file in SKYHOST_STDLIB for '%s'", name.c_str());
  return 1;
}

void install_stdlib(lua_State* L) {
  preload_embedded(L, host_modules());
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");  // [package, preload]
  lua_pushcfunction(L, luaopen_skyhost_core);
  lua_setfield(L, -2, "skyhost.core");
  lua_pushcfunction(L, luaopen_skyhost_pool);
  lua_setfield(L, -2, "skyhost.pool");
  lua_pushcfunction(L, luaopen_skyhost_ssh);
  lua_setfield(L, -2, "skyhost.ssh");
  lua_pushcfunction(L, luaopen_skyhost_http);
  lua_setfield(L, -2, "skyhost.http");
  lua_pushcfunction(L, luaopen_skyhost_json);
  lua_setfield(L, -2, "skyhost.json");
  lua_pushcfunction(L, luaopen_skyhost_state);
  lua_setfield(L, -2, "skyhost.state");
  lua_pushcfunction(L, luaopen_skyhost_encoding);
  lua_setfield(L, -2, "skyhost.encoding");
  lua_pushcfunction(L, luaopen_skyhost_crypto);
  lua_setfield(L, -2, "skyhost.crypto");
  lua_pop(L, 1);  // [package]
  if (const char* dir = std::getenv("SKYHOST_STDLIB")) {
    lua_getfield(L, -1, "searchers");  // [package, searchers]
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = n; i >= 1; i--) {  // shift up, then insert first
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, dir);
    lua_pushcclosure(L, l_disk_searcher, 1);
    lua_rawseti(L, -2, 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  // []
}

/// Calls require(name)[fn] with the values above it on the stack, protected; leaves results.
int call_module(lua_State* L, const char* module, const char* fn, int nargs, int nres) {
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, fn);  // [args..., mod, fn]
  lua_remove(L, -2);
  lua_insert(L, -(nargs + 1));  // [fn, args...]
  return lua_pcall(L, nargs, nres, 0);
}

}  // namespace

Runtime::Runtime(Options opts) : opts_(std::move(opts)), ctx_(std::make_unique<Context>()) {
  L_ = luaL_newstate();
  if (L_ == nullptr) throw std::runtime_error("cannot create a Lua state");
  luaL_openlibs(L_);
  ctx_->main = L_;
  ctx_->running = L_;
  ctx_->worker_path = default_worker_path();
  set_context(L_, ctx_.get());
  Context* ctx = ctx_.get();
  ctx_->loop.on_before_poll([ctx] {
    for (Scheduler* s : ctx->pools) s->flush();
  });
  // Local workers end with this process, even on kill -9 (see worker/main.cpp).
  setenv("SKYWORKER_PARENT", std::to_string(getpid()).c_str(), 1);
  install_stdlib(L_);

  lua_getglobal(L_, "require");
  lua_pushstring(L_, "sky");
  if (lua_pcall(L_, 1, 1, 0) != LUA_OK) {
    std::string err = lua_tostring(L_, -1);
    lua_close(L_);
    L_ = nullptr;
    throw std::runtime_error("cannot load the sky stdlib: " + err);
  }
  lua_setglobal(L_, "sky");
  lua_getglobal(L_, "require");
  lua_pushstring(L_, "sky.commands.cli");
  lua_call(L_, 1, 1);
  lua_pushboolean(L_, opts_.verbose);
  lua_setfield(L_, -2, "verbose");
  lua_pop(L_, 1);
  lua_pushglobaltable(L_);
  call_module(L_, "sky.internal.sched", "install_globals", 1, 0);

  g_signal_ctx.store(ctx_.get());
  ctx_->loop.watch_signals(on_signal);
}

Runtime::~Runtime() {
  teardown();
  g_signal_ctx.store(nullptr);
  if (L_ != nullptr) lua_close(L_);  // frees any pool left, killing its workers
}

void Runtime::teardown() {
  if (L_ == nullptr) return;
  if (call_module(L_, "sky.internal.sched", "teardown", 0, 0) != LUA_OK) {
    std::fprintf(stderr, "skyhost: teardown: %s\n", lua_tostring(L_, -1));
    lua_pop(L_, 1);
  }
}

int Runtime::interrupts() const {
  return ctx_->loop.interrupts();
}

int Runtime::run_loaded(int status, const std::string& script,
                        const std::vector<std::string>& args) {
  if (status != LUA_OK) {
    std::fprintf(stderr, "%s\n", lua_tostring(L_, -1));  // file:line: message
    lua_pop(L_, 1);
    return 1;
  }
  // arg, as the `lua` program sets it: arg[0] the script, arg[1..] its arguments.
  lua_createtable(L_, static_cast<int>(args.size()), 2);
  lua_pushstring(L_, opts_.program.c_str());
  lua_rawseti(L_, -2, -1);
  lua_pushstring(L_, script.c_str());
  lua_rawseti(L_, -2, 0);
  for (size_t i = 0; i < args.size(); i++) {
    lua_pushstring(L_, args[i].c_str());
    lua_rawseti(L_, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setglobal(L_, "arg");
  for (const auto& a : args) lua_pushstring(L_, a.c_str());  // [chunk, args...]
  int nargs = 1 + static_cast<int>(args.size());
  if (call_module(L_, "sky.commands.cli", "run_script", nargs, 1) != LUA_OK) {
    std::fprintf(stderr, "skyhost: %s\n", lua_tostring(L_, -1));
    lua_pop(L_, 1);
    return 1;
  }
  int code = static_cast<int>(lua_tointeger(L_, -1));
  lua_pop(L_, 1);
  return code;
}

int Runtime::run_file(const std::string& path, const std::vector<std::string>& args) {
  int status =
      path == "-" ? luaL_loadfilex(L_, nullptr, "t") : luaL_loadfilex(L_, path.c_str(), "t");
  return run_loaded(status, path, args);
}

int Runtime::run_code(const std::string& code, const std::vector<std::string>& args) {
  int status = luaL_loadbufferx(L_, code.data(), code.size(), "=(command line)", "t");
  return run_loaded(status, "-e", args);
}

int Runtime::run_command(const std::string& name, const std::vector<std::string>& args) {
  lua_pushstring(L_, name.c_str());
  for (const auto& a : args) lua_pushstring(L_, a.c_str());  // [name, args...]
  if (call_module(L_, "sky.commands", "run", 1 + static_cast<int>(args.size()), 1) != LUA_OK) {
    std::fprintf(stderr, "skyhost %s: %s\n", name.c_str(), lua_tostring(L_, -1));
    lua_pop(L_, 1);
    return 1;
  }
  int code = static_cast<int>(lua_tointeger(L_, -1));  // [code]
  lua_pop(L_, 1);
  return code;
}

bool Runtime::is_command(const std::string& word) {
  lua_pushstring(L_, word.c_str());
  if (call_module(L_, "sky.commands", "is_command", 1, 1) != LUA_OK) {
    std::fprintf(stderr, "skyhost: %s\n", lua_tostring(L_, -1));
    lua_pop(L_, 1);
    return false;
  }
  bool yes = lua_toboolean(L_, -1) != 0;
  lua_pop(L_, 1);
  return yes;
}

std::string Runtime::commands_usage() {
  std::string text;
  if (call_module(L_, "sky.commands", "usage", 0, 1) == LUA_OK && lua_isstring(L_, -1)) {
    text = lua_tostring(L_, -1);
  }
  lua_pop(L_, 1);
  return text;
}

Runtime::Eval Runtime::eval(const std::string& code, std::string& out) {
  lua_pushlstring(L_, code.data(), code.size());
  if (call_module(L_, "sky.commands.cli", "eval", 1, 2) != LUA_OK) {
    out = lua_tostring(L_, -1);
    lua_pop(L_, 1);
    return Eval::kError;
  }
  std::string status = lua_tostring(L_, -2);
  const char* text = lua_tostring(L_, -1);
  out = text != nullptr ? text : "";
  lua_pop(L_, 2);
  if (status == "incomplete") return Eval::kIncomplete;
  return status == "ok" ? Eval::kOk : Eval::kError;
}

}  // namespace skyhost
