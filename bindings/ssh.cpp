// skyhost.ssh: SSH sessions (host/ssh) as Lua userdata for the bootstrap in
// stdlib/sky/pool/connect.lua. Each operation returns a wait id; after sched.await(id),
// s:result(id) gives its outcome.
#include <lua.hpp>
#include <memory>
#include <optional>

#include "bindings/context.hpp"
#include "bindings/object.hpp"
#include "host/ssh/keygen.hpp"
#include "host/ssh/operations.hpp"
#include "host/ssh/session.hpp"
#include "host/transfer/transfer_util.hpp"

namespace skyhost {

namespace {

constexpr char kSessionMeta[] = "skyhost.ssh.session";

using ssh::Operations;

Operations& check_ops(lua_State* L) {
  return bind::check_object<Operations>(L, 1, kSessionMeta, "ssh session");
}

ssh::Session& check_session(lua_State* L) {
  ssh::Session* s = check_ops(L).session();
  if (s == nullptr) luaL_error(L, "ssh session is closed or handed to a pool");
  return *s;
}

/// ssh.session{host=, port=, user=, label=, private_key= | identity_file=, known_hosts=,
/// host_keys="strict"|"accept-new", pinned={...}, connect_timeout=, keepalive_interval=,
/// keepalive_count=, pool=, node=} → session (not yet connected)
int l_ssh_session(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ssh::SessionOptions o;
  o.host = bind::opt_string(L, 1, "host");
  o.port = static_cast<uint16_t>(bind::opt_number(L, 1, "port", 22));
  o.user = bind::opt_string(L, 1, "user", "root");
  o.label = bind::opt_string(L, 1, "label");
  o.private_key = bind::opt_string(L, 1, "private_key");
  o.identity_file = bind::opt_string(L, 1, "identity_file");
  o.known_hosts_file = bind::opt_string(L, 1, "known_hosts");
  std::string mode = bind::opt_string(L, 1, "host_keys", "strict");
  if (mode == "accept-new") {
    o.host_key_check = ssh::HostKeyCheck::accept_new;
  } else if (mode != "strict") {
    return luaL_error(L, "host_keys must be \"strict\" or \"accept-new\", got \"%s\"",
                      mode.c_str());
  }
  lua_getfield(L, 1, "pinned");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
      o.pinned_host_keys.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  o.connect_timeout = bind::opt_number(L, 1, "connect_timeout", o.connect_timeout);
  o.keepalive_interval = bind::opt_number(L, 1, "keepalive_interval", o.keepalive_interval);
  o.keepalive_count =
      static_cast<int>(bind::opt_number(L, 1, "keepalive_count", o.keepalive_count));
  Context& ctx = context(L);
  int pool = static_cast<int>(bind::opt_integer(L, 1, "pool", 0));
  int node = static_cast<int>(bind::opt_integer(L, 1, "node", -1));
  Context* c = &ctx;
  auto on_line = [c, pool, node](const std::string& phase, std::string line) {
    Event e("BootstrapConsole", pool, node);
    e.text = std::move(line);
    e.phase = phase;
    c->events.push_back(std::move(e));
  };
  bind::push_object(L, kSessionMeta,
                    std::make_unique<Operations>(
                        ctx.loop, std::make_unique<ssh::Session>(ctx.loop.uv(), std::move(o)),
                        std::move(on_line)));
  return 1;
}

/// s:connect() → wait id
int l_session_connect(lua_State* L) {
  check_session(L);
  lua_pushinteger(L, static_cast<lua_Integer>(check_ops(L).connect()));
  return 1;
}

/// s:step(command, phase, timeout) → wait id. Output lines stream as BootstrapConsole events.
int l_session_step(lua_State* L) {
  check_session(L);
  std::string cmd = luaL_checkstring(L, 2);
  std::string phase = luaL_checkstring(L, 3);
  double timeout = luaL_optnumber(L, 4, 0);
  WaitId id = check_ops(L).step(std::move(cmd), std::move(phase), timeout);
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return 1;
}

/// s:upload(local_path, remote_path, mode) → wait id
int l_session_upload(lua_State* L) {
  check_session(L);
  std::string src = luaL_checkstring(L, 2);
  std::string dst = luaL_checkstring(L, 3);
  int mode = static_cast<int>(luaL_optinteger(L, 4, 0644));
  WaitId id = check_ops(L).upload(std::move(src), std::move(dst), mode);
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return 1;
}

/// s:result(id) → {ok, error, code, signal, tail}
int l_session_result(lua_State* L) {
  auto id = static_cast<WaitId>(luaL_checkinteger(L, 2));
  std::optional<ssh::StepResult> taken = check_ops(L).take(id);
  if (!taken) return luaL_error(L, "no result for operation %d", int(id));
  const ssh::StepResult& r = *taken;
  lua_createtable(L, 0, 5);
  lua_pushboolean(L, r.ok);
  lua_setfield(L, -2, "ok");
  if (!r.error.empty()) {
    lua_pushstring(L, r.error.c_str());
    lua_setfield(L, -2, "error");
  }
  lua_pushinteger(L, r.code);
  lua_setfield(L, -2, "code");
  if (!r.signal.empty()) {
    lua_pushstring(L, r.signal.c_str());
    lua_setfield(L, -2, "signal");
  }
  lua_pushlstring(L, r.tail.data(), r.tail.size());
  lua_setfield(L, -2, "tail");
  return 1;
}

int l_session_describe(lua_State* L) {
  lua_pushstring(L, check_session(L).describe().c_str());
  return 1;
}

/// s:close() (also __close, __gc): ends what is in flight and the session. Idempotent.
constexpr lua_CFunction l_session_close = bind::close_object<Operations, kSessionMeta>;

/// ssh.keygen(comment) → public_key, private_key, fingerprint
int l_ssh_keygen(lua_State* L) {
  std::string comment = luaL_optstring(L, 1, "skyhost");
  return guarded(L, [&] {
    ssh::KeyPair k = ssh::generate_ed25519(comment);
    lua_pushstring(L, k.public_key.c_str());
    lua_pushstring(L, k.private_key.c_str());
    lua_pushstring(L, k.fingerprint.c_str());
    return 3;
  });
}

/// ssh.file_sha256(path) → hex digest, or nil, error. Names uploads by content, so an unchanged
/// worker is not sent again.
int l_ssh_file_sha256(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  std::string hex;
  std::string err = transfer_detail::sha256_file(path, hex);
  if (!err.empty()) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read %s: %s", path, err.c_str());
    return 2;
  }
  lua_pushlstring(L, hex.data(), hex.size());
  return 1;
}

const luaL_Reg kSessionMethods[] = {
    {"connect", l_session_connect},
    {"step", l_session_step},
    {"upload", l_session_upload},
    {"result", l_session_result},
    {"describe", l_session_describe},
    {"close", l_session_close},
    {nullptr, nullptr},
};

const luaL_Reg kSshModule[] = {
    {"session", l_ssh_session},
    {"keygen", l_ssh_keygen},
    {"file_sha256", l_ssh_file_sha256},
    {nullptr, nullptr},
};

}  // namespace

/// Takes the session out of a Lua session userdata (for the pool to own); null if gone.
std::unique_ptr<ssh::Session> take_ssh_session(lua_State* L, int idx) {
  Operations* ops = bind::test_object<Operations>(L, idx, kSessionMeta);
  if (ops == nullptr) return nullptr;
  return ops->release();
}

}  // namespace skyhost

extern "C" int luaopen_skyhost_ssh(lua_State* L) {
  using namespace skyhost;
  bind::register_type(L, kSessionMeta, kSessionMethods, l_session_close);
  luaL_newlib(L, kSshModule);
  return 1;
}
