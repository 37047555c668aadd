// skyhost.pool: a pool's nodes and tasks (host/links/scheduler) as a Lua userdata. The lifecycle —
// providers, events, teardown order — is stdlib/sky/pool/init.lua; this is check, call, push.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <lua.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/blob_store.hpp"
#include "bindings/codec.hpp"
#include "bindings/context.hpp"
#include "bindings/object.hpp"
#include "host/links/local_link.hpp"
#include "host/links/ssh_link.hpp"
#include "host/transfer/sync.hpp"
#include "host/transfer/transfer.hpp"

namespace skyhost {

std::unique_ptr<ssh::Session> take_ssh_session(lua_State* L, int idx);  // bindings/ssh.cpp

namespace {

constexpr char kPoolMeta[] = "skyhost.pool";

/// A pool's scheduler, known to the runtime's context while it lives (so that the runtime can
/// end every pool's workers however the script ends).
struct PoolHandle {
  PoolHandle(Context& c, const Scheduler::Options& o)
      : ctx(&c), sched(std::make_unique<Scheduler>(c.loop, o)) {
    ctx->pools.insert(sched.get());
  }
  ~PoolHandle() { ctx->pools.erase(sched.get()); }  // then sched goes: kills any worker left
  PoolHandle(const PoolHandle&) = delete;
  PoolHandle& operator=(const PoolHandle&) = delete;

  Context* ctx;
  std::unique_ptr<Scheduler> sched;
};

Scheduler& check_pool(lua_State* L) {
  return *bind::check_object<PoolHandle>(L, 1, kPoolMeta, "pool").sched;
}

/// pool.new{id=, concurrency=, prefetch=, retries=, max_frame=} → pool; concurrency 0: as each
/// node reports
int l_pool_new(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  Scheduler::Options o;
  o.pool_id = static_cast<int>(bind::opt_integer(L, 1, "id", 0));
  o.concurrency = static_cast<int>(bind::opt_integer(L, 1, "concurrency", o.concurrency));
  o.prefetch = static_cast<int>(bind::opt_integer(L, 1, "prefetch", o.prefetch));
  o.retries = static_cast<int>(bind::opt_integer(L, 1, "retries", o.retries));
  lua_Integer max = bind::opt_integer(L, 1, "max_frame", wire::kMaxFrame);
  luaL_argcheck(L, max >= 1024 && max <= wire::kMaxFrame, 1, "max_frame out of range");
  o.max_frame = static_cast<uint32_t>(max);
  auto handle = std::make_unique<PoolHandle>(context(L), o);
  // Large strings of results are received into the Lua strings themselves (blob_store.cpp).
  handle->sched->set_blob_store(codec::make_blob_store(L));
  bind::push_object(L, kPoolMeta, std::move(handle));  // [opts, pool]
  return 1;
}

/// pool:add_local_node(worker_path, init_values_table, concurrency [, deadline]) → node index.
/// deadline: seconds after which the worker ends by itself (the pool's timeout and a grace).
int l_pool_add_local_node(lua_State* L) {
  Scheduler& s = check_pool(L);
  const char* worker = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int concurrency = static_cast<int>(luaL_checkinteger(L, 4));
  double deadline = luaL_optnumber(L, 5, 0);
  return guarded(L, [&] {
    wire::Writer init;
    codec::encode_values(L, 3, 1, init, codec::Mode::kData);  // the worker checks it as data
    std::vector<std::string> argv{worker, "--concurrency", std::to_string(concurrency),
                                  "--max-frame", std::to_string(s.max_frame())};
    if (deadline > 0) {
      argv.insert(argv.end(), {"--deadline", std::to_string(deadline)});
    }
    auto link = LocalLink::spawn(context(L).loop.uv(), argv);
    lua_pushinteger(L, s.add_node(std::move(link), init.take()));
    return 1;
  });
}

/// pool:add_command_node({argv...}, init_values_table) → node index. A worker reached through
/// any command's stdin/stdout (a Slurm job step: `srun ... skyworker ...`); `--max-frame` is
/// appended. The command runs in its own process group, killed with it.
int l_pool_add_command_node(lua_State* L) {
  Scheduler& s = check_pool(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  std::vector<std::string> argv;
  const lua_Integer n = luaL_len(L, 2);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_geti(L, 2, i);  // [.., arg]
    size_t len = 0;
    const char* a = lua_tolstring(L, -1, &len);
    if (a == nullptr) return luaL_error(L, "add_command_node: argv[%d] is not a string", int(i));
    argv.emplace_back(a, len);
    lua_pop(L, 1);  // [..]
  }
  if (argv.empty()) return luaL_error(L, "add_command_node: argv is empty");
  argv.insert(argv.end(), {"--max-frame", std::to_string(s.max_frame())});
  return guarded(L, [&] {
    wire::Writer init;
    codec::encode_values(L, 3, 1, init, codec::Mode::kData);
    auto link = LocalLink::spawn(context(L).loop.uv(), argv);
    lua_pushinteger(L, s.add_node(std::move(link), init.take()));
    return 1;
  });
}

/// pool:add_ssh_node(session, command, init_values_table) → node index. The pool takes the
/// connected session over; the worker runs as `command` on an exec channel.
int l_pool_add_ssh_node(lua_State* L) {
  Scheduler& s = check_pool(L);
  std::string cmd = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  auto session = take_ssh_session(L, 2);
  if (!session) return luaL_error(L, "ssh session is closed or already in a pool");
  cmd += " --max-frame " + std::to_string(s.max_frame());
  return guarded(L, [&] {
    wire::Writer init;
    codec::encode_values(L, 4, 1, init, codec::Mode::kData);
    auto link = std::make_unique<SshLink>(std::move(session), std::move(cmd));
    lua_pushinteger(L, s.add_node(std::move(link), init.take()));
    return 1;
  });
}

/// pool:ready_wait() → wait id; pool:start_error() → message or nil
int l_pool_ready_wait(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_pool(L).ready_wait()));
  return 1;
}

int l_pool_start_error(lua_State* L) {
  const std::string& e = check_pool(L).start_error();
  if (e.empty()) return 0;
  lua_pushlstring(L, e.data(), e.size());
  return 1;
}

/// pool:node(i) → {hostname, pid, executors, alive, lost = reason}
int l_pool_node(lua_State* L) {
  Scheduler& s = check_pool(L);
  int i = static_cast<int>(luaL_checkinteger(L, 2));
  luaL_argcheck(L, i >= 0 && i < s.node_count(), 2, "no such node");
  lua_createtable(L, 0, 4);  // [.., node]
  lua_pushboolean(L, s.node_alive(i));
  lua_setfield(L, -2, "alive");
  if (!s.node_alive(i)) {
    lua_pushstring(L, s.lost_reason(i).c_str());
    lua_setfield(L, -2, "lost");
  }
  lua_pushinteger(L, s.pid(i));
  lua_setfield(L, -2, "pid");
  const NodeInfo& info = s.node_info(i);
  if (info.ready) {
    lua_pushlstring(L, info.hostname.data(), info.hostname.size());
    lua_setfield(L, -2, "hostname");
    lua_pushinteger(L, static_cast<lua_Integer>(info.worker_pid));
    lua_setfield(L, -2, "worker_pid");
    lua_pushinteger(L, info.executors);
    lua_setfield(L, -2, "executors");
  }
  return 1;
}

/// pool:define(bytes) → closure id for a function captured by core.capture.
int l_pool_define(lua_State* L) {
  Scheduler& s = check_pool(L);
  size_t len = 0;
  const char* p = luaL_checklstring(L, 2, &len);
  return guarded(L, [&] {
    lua_pushinteger(L, static_cast<lua_Integer>(s.define(std::string(p, len))));
    return 1;
  });
}

/// pool:new_batch([limit [, collect_all]]) → batch id, wait id
int l_pool_new_batch(lua_State* L) {
  Scheduler& s = check_pool(L);
  lua_Integer limit = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, limit >= 0, 2, "limit must be 0 or more");
  BatchId b = s.new_batch(static_cast<size_t>(limit), lua_toboolean(L, 3));
  lua_pushinteger(L, static_cast<lua_Integer>(b));
  lua_pushinteger(L, static_cast<lua_Integer>(s.batch(b).wait));
  return 2;
}

/// pool:submit(batch, closure, pin_node_or_nil, args_table [, timeout_seconds]) — args_table
/// is {n=, ...}
int l_pool_submit(lua_State* L) {
  Scheduler& s = check_pool(L);
  auto batch = static_cast<BatchId>(luaL_checkinteger(L, 2));
  auto fn = static_cast<ClosureId>(luaL_checkinteger(L, 3));
  int pin = static_cast<int>(luaL_optinteger(L, 4, -1));
  luaL_checktype(L, 5, LUA_TTABLE);
  double timeout = luaL_optnumber(L, 6, 0);
  luaL_argcheck(L, timeout >= 0 && timeout < 4e6, 6, "timeout out of range");
  // At least 1 ms: 0 on the wire means no limit.
  auto timeout_ms = timeout > 0 ? std::max<uint32_t>(1, static_cast<uint32_t>(timeout * 1000)) : 0;
  lua_settop(L, 5);
  lua_getfield(L, 5, "n");
  int n = static_cast<int>(luaL_optinteger(L, -1, 0));
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many arguments");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, 5, i);  // [.., args...]
  return guarded(L, [&] {
    wire::Writer w;
    codec::encode_values(L, lua_gettop(L) - n + 1, n, w);
    lua_settop(L, 5);
    s.submit(batch, fn, w.take(), pin, timeout_ms);
    return 0;
  });
}

const char* kind_name(wire::Status s) {
  switch (s) {
    case wire::Status::kTimedOut:
      return "timeout";
    case wire::Status::kCancelled:
      return "cancelled";
    default:
      return "error";
  }
}

/// Pushes a task's values, decoded as data: a node's bytes never load code or set a metatable
/// here (bindings/codec_data.cpp). Returns how many, or -1 with the stack as it was and `why`
/// set if the host refuses them.
int push_values(lua_State* L, wire::Reader& r, std::string& why,
                const std::vector<wire::Blob>* blobs = nullptr) {
  int top = lua_gettop(L);
  try {
    int n = codec::decode_data(L, r, blobs);
    if (r.empty()) return n;
    why = "the host refused its result: codec: " + std::to_string(r.remaining()) +
          " bytes after the values";
  } catch (const codec::DecodeError& e) {
    why = std::string("the host refused its result: ") + e.what();
  }
  lua_settop(L, top);
  return -1;
}

/// Pushes a failed task's error as {message=, traceback=, node=, task=, index=, kind=, value=}:
/// kind is "error", "timeout" or "cancelled"; value the table the task raised, if it raised one
/// and it decodes as data. `refused` replaces the message of a task whose result the host
/// refused.
void push_failure(lua_State* L, const Outcome& o, TaskId task, size_t index,
                  const std::string& refused = {}) {
  wire::Reader r(o.payload);  // the value the task raised, if any
  std::string_view msg = refused.empty() ? std::string_view(o.message) : refused;
  std::string_view trace = refused.empty() ? std::string_view(o.traceback) : std::string_view();
  lua_createtable(L, 0, 7);  // [.., failure]
  lua_pushlstring(L, msg.data(), msg.size());
  lua_setfield(L, -2, "message");
  lua_pushlstring(L, trace.data(), trace.size());
  lua_setfield(L, -2, "traceback");
  lua_pushinteger(L, o.node);
  lua_setfield(L, -2, "node");
  lua_pushinteger(L, static_cast<lua_Integer>(task));
  lua_setfield(L, -2, "task");
  lua_pushinteger(L, static_cast<lua_Integer>(index));
  lua_setfield(L, -2, "index");
  lua_pushstring(L, kind_name(refused.empty() ? o.status : wire::Status::kFailed));
  lua_setfield(L, -2, "kind");
  std::string ignored;
  if (refused.empty() && r.remaining() > 0) {
    int n = push_values(L, r, ignored);  // [.., failure, value...]; none if refused
    if (n > 1) lua_pop(L, n - 1);
    if (n >= 1) lua_setfield(L, -2, "value");
  }
}

/// Pushes a successful task's first value (nil if it returned none); returns false, pushing
/// nothing, with `why` set if the host refuses its values.
bool push_first_value(lua_State* L, const Outcome& o, std::string& why) {
  wire::Reader r(o.payload);
  int n = push_values(L, r, why, &o.blobs);  // [.., v1..vn]
  if (n < 0) return false;
  if (n == 0) {
    lua_pushnil(L);
  } else if (n > 1) {
    lua_pop(L, n - 1);
  }
  return true;
}

/// pool:results(batch, mode) → releases the batch and returns, by mode:
///   "all":  true, every value of its one task | false, failure
///   "list": true, {each task's first value} | false, the first failure in task order
///   "collect": {first values, nil where a task failed}, {failures in task order}
/// A result the host refuses to decode counts as that task's failure.
int l_pool_results(lua_State* L) {
  Scheduler& s = check_pool(L);
  auto id = static_cast<BatchId>(luaL_checkinteger(L, 2));
  const char* mode = luaL_checkstring(L, 3);
  bool all = std::strcmp(mode, "all") == 0;
  int base = lua_gettop(L);
  return guarded(L, [&] {
    const Batch& b = s.batch(id);
    std::string why;
    if (std::strcmp(mode, "collect") == 0) {
      lua_createtable(L, static_cast<int>(b.tasks.size()), 0);  // [results]
      lua_createtable(L, static_cast<int>(b.failures), 0);      // [results, failures]
      lua_Integer nf = 0;
      for (size_t i = 0; i < b.tasks.size(); i++) {
        const Outcome* o = s.outcome(b.tasks[i]);
        if (o == nullptr) continue;
        if (o->ok && push_first_value(L, *o, why)) {  // [results, failures, v]
          lua_rawseti(L, -3, static_cast<lua_Integer>(i + 1));
        } else {
          push_failure(L, *o, b.tasks[i], i + 1, o->ok ? why : std::string());
          lua_rawseti(L, -2, ++nf);  // [results, failures]
        }
      }
      s.release(id);
      return 2;
    }
    auto fail = [&](const Outcome& o, size_t i, const std::string& refused) {
      lua_settop(L, base);
      lua_pushboolean(L, 0);
      push_failure(L, o, b.tasks[i], i + 1, refused);
      s.release(id);
      return 2;
    };
    for (size_t i = 0; i < b.tasks.size(); i++) {
      const Outcome* o = s.outcome(b.tasks[i]);
      if (o != nullptr && !o->ok) return fail(*o, i, {});
    }
    int nret = 0;
    lua_pushboolean(L, 1);
    if (all) {
      const Outcome* o = s.outcome(b.tasks.at(0));
      wire::Reader r(o->payload);
      int n = push_values(L, r, why, &o->blobs);
      if (n < 0) return fail(*o, 0, why);
      nret = 1 + n;
    } else {
      lua_createtable(L, static_cast<int>(b.tasks.size()), 0);  // [true, list]
      for (size_t i = 0; i < b.tasks.size(); i++) {
        const Outcome* o = s.outcome(b.tasks[i]);
        if (!push_first_value(L, *o, why)) return fail(*o, i, why);  // [true, list, v]
        lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
      }
      nret = 2;
    }
    s.release(id);
    return nret;
  });
}

/// pool:transfer(node, "put"|"put_once"|"get"|"put_dir"|"get_dir", local, remote [, lanes]) →
/// wait id (lanes: SSH sessions for one large file, 0 = automatic);
/// after it completes, pool:transfer_result(id) → nil or the error message, then for a tree
/// what it did: {sent, sent_bytes, copied, removed, entries, hashed, hashed_bytes}. put_once keeps
/// a file already there.
int l_pool_transfer(lua_State* L) {
  Scheduler& s = check_pool(L);
  int node = static_cast<int>(luaL_checkinteger(L, 2));
  luaL_argcheck(L, node >= 0 && node < s.node_count(), 2, "no such node");
  std::string dir = luaL_checkstring(L, 3);
  std::string local = luaL_checkstring(L, 4);
  std::string remote = luaL_checkstring(L, 5);
  int lanes = static_cast<int>(luaL_optinteger(L, 6, 0));
  luaL_argcheck(L, lanes >= 0, 6, "lanes must be 0 (automatic) or more");
  if (!s.node_alive(node)) return luaL_error(L, "node %d is gone", node);
  Transfers& t = context(L).transfers;
  WaitId id;
  if (dir == "put" || dir == "put_once") {
    id = t.put(s.link(node), local, remote, dir == "put_once", lanes);
  } else if (dir == "get") {
    id = t.get(s.link(node), remote, local, lanes);
  } else if (dir == "put_dir") {
    id = t.put_dir(s.link(node), local, remote);
  } else if (dir == "get_dir") {
    id = t.get_dir(s.link(node), remote, local);
  } else {
    return luaL_argerror(L, 3, "'put', 'put_once', 'get', 'put_dir' or 'get_dir'");
  }
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return 1;
}

int l_pool_transfer_result(lua_State* L) {
  auto id = static_cast<WaitId>(luaL_checkinteger(L, 2));
  std::optional<TransferResult> r = context(L).transfers.take(id);
  if (!r) return luaL_error(L, "no transfer %d", int(id));
  if (r->error.empty()) {
    lua_pushnil(L);
  } else {
    lua_pushlstring(L, r->error.data(), r->error.size());
  }
  if (!r->sync) return 1;
  lua_createtable(L, 0, 7);
  auto field = [L](const char* k, uint64_t v) {
    lua_pushinteger(L, static_cast<lua_Integer>(v));
    lua_setfield(L, -2, k);
  };
  field("sent", r->sync->sent);
  field("sent_bytes", r->sync->sent_bytes);
  field("copied", r->sync->copied);
  field("removed", r->sync->removed);
  field("entries", r->sync->entries);
  field("hashed", r->sync->hashed);
  field("hashed_bytes", r->sync->hashed_bytes);
  return 2;
}

/// pool:set_lease_interval(seconds)
int l_pool_set_lease_interval(lua_State* L) {
  double s = luaL_checknumber(L, 2);
  check_pool(L).set_lease_interval(static_cast<uint64_t>(s * 1000));
  return 0;
}

int l_pool_set_task_events(lua_State* L) {
  check_pool(L).set_task_events(lua_toboolean(L, 2));
  return 0;
}

int l_pool_node_count(lua_State* L) {
  lua_pushinteger(L, check_pool(L).node_count());
  return 1;
}

int l_pool_alive_count(lua_State* L) {
  lua_pushinteger(L, check_pool(L).alive_count());
  return 1;
}

/// pool:progress(batch) → tasks, finished, failed (for progress displays)
int l_pool_progress(lua_State* L) {
  Scheduler& s = check_pool(L);
  auto id = static_cast<BatchId>(luaL_checkinteger(L, 2));
  return guarded(L, [&] {
    const Batch& b = s.batch(id);
    lua_pushinteger(L, static_cast<lua_Integer>(b.tasks.size()));
    lua_pushinteger(L, static_cast<lua_Integer>(b.tasks.size() - b.remaining));
    lua_pushinteger(L, static_cast<lua_Integer>(b.failures));
    return 3;
  });
}

/// pool:shutdown(grace_seconds) → wait id that completes when every worker is gone
int l_pool_shutdown(lua_State* L) {
  Scheduler& s = check_pool(L);
  double grace = luaL_optnumber(L, 2, 5.0);
  lua_pushinteger(L, static_cast<lua_Integer>(s.shutdown(static_cast<uint64_t>(grace * 1000))));
  return 1;
}

/// pool:release(batch) — forgets a batch nobody waits for: its queued tasks never run, its
/// running ones are cancelled on their nodes.
int l_pool_release(lua_State* L) {
  Scheduler& s = check_pool(L);
  s.release(static_cast<BatchId>(luaL_checkinteger(L, 2)));
  return 0;
}

/// pool:destroy() (also __close, __gc) — frees the pool, killing any worker still running.
/// Idempotent.
constexpr lua_CFunction l_pool_destroy = bind::close_object<PoolHandle, kPoolMeta>;

const luaL_Reg kPoolMethods[] = {
    {"add_local_node", l_pool_add_local_node},
    {"add_ssh_node", l_pool_add_ssh_node},
    {"add_command_node", l_pool_add_command_node},
    {"ready_wait", l_pool_ready_wait},
    {"start_error", l_pool_start_error},
    {"node", l_pool_node},
    {"node_count", l_pool_node_count},
    {"alive_count", l_pool_alive_count},
    {"progress", l_pool_progress},
    {"define", l_pool_define},
    {"new_batch", l_pool_new_batch},
    {"submit", l_pool_submit},
    {"results", l_pool_results},
    {"release", l_pool_release},
    {"set_task_events", l_pool_set_task_events},
    {"set_lease_interval", l_pool_set_lease_interval},
    {"transfer", l_pool_transfer},
    {"transfer_result", l_pool_transfer_result},
    {"shutdown", l_pool_shutdown},
    {"destroy", l_pool_destroy},
    {nullptr, nullptr},
};

const luaL_Reg kPoolModule[] = {
    {"new", l_pool_new},
    {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_pool(lua_State* L) {
  using namespace skyhost;
  bind::register_type(L, kPoolMeta, kPoolMethods, l_pool_destroy);
  luaL_newlib(L, kPoolModule);
  return 1;
}
