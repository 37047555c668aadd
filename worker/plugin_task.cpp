#include "worker/plugin_task.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

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
PluginLoader g_loader;  // plugins with isolate = false, loaded into the worker itself
thread_local Shared* t_shared = nullptr;
thread_local std::string t_node;
std::atomic<int> g_executors{0};  // executors that attached: how many share the task queue
// Per plugin function (closure id): how long its calls took of late, on this executor.
thread_local std::unordered_map<uint64_t, uint64_t> t_call_ns;
constexpr uint64_t kCheapNs = 100'000;  // calls this short are batched beyond a fair share

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

/// One call, in this executor's plugin host or (isolate = false) right here.
PluginClient::Reply call_one(const PluginDef& def, std::string_view args,
                             const std::shared_ptr<Region>& region) {
  if (def.isolate) return t_client.call(def, args, region);
  PluginClient::Reply r;
  const sky_plugin* rec = g_loader.load(def, r.text);
  if (rec == nullptr) {
    r.status = Status::kLoadError;
    return r;
  }
  return call_plugin(rec, args);
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
  def.isolate = lua_getfield(L, 1, "isolate") == LUA_TNIL || lua_toboolean(L, -1);
  lua_pop(L, 1);  // [handle, args...]
  std::string err;
  PluginClient::Reply rep;
  try {
    Writer args;
    skyhost::codec::encode_values(L, 2, lua_gettop(L) - 1, args);
    rep = call_one(def, args.data(), nullptr);
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
  ++g_executors;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);  // [preload]
  lua_pushcfunction(L, luaopen_skyworker_plugin);
  lua_setfield(L, -2, "skyworker.plugin");
  lua_pop(L, 1);  // []
}

namespace {

// A plugin call costs two process switches; many small tasks of one plugin share them.
constexpr size_t kMaxBatch = 32;
constexpr size_t kBatchBytes = 48 * 1024;

/// Results of one exchange with the plugin host, handed to the writer together (one wake-up
/// of the writer thread for many), and at least every millisecond.
class Results {
 public:
  explicit Results(Shared& shared) : shared_(shared) {}
  ~Results() { flush(); }

  void add(const TaskMsg& task, const PluginDef& def, PluginClient::Reply&& rep, uint64_t ns) {
    std::string err;
    if (rep.status != Status::kOk) err = failure(def, rep, task.id);
    if (rep.region && err.empty()) {
      flush();  // keeps the order; this one is sent from the shared memory the plugin wrote
      try {
        shared_.out.frame(
            Msg::kResult, [&](Writer& w) { head(w, task, true, ns); }, rep.region);
        return;
      } catch (const std::exception& e) {
        err = "plugin '" + def.name + "': cannot return the result: " + e.what();
      }
    }
    size_t mark = frames_.begin_frame(Msg::kResult);
    head(frames_, task, err.empty(), ns);
    if (err.empty()) {
      frames_.put_raw(rep.text.data(), rep.text.size());
    } else {
      frames_.put_string(err);
      frames_.put_string("");  // no Lua traceback: the message says where
    }
    frames_.end_frame(mark);
    auto now = std::chrono::steady_clock::now();
    if (now - flushed_ > std::chrono::milliseconds(1) || frames_.size() > (1 << 20)) flush();
  }

  void flush() {
    if (frames_.size() > 0) shared_.out.frames(frames_.data());
    frames_.clear();
    flushed_ = std::chrono::steady_clock::now();
  }

 private:
  static void head(Writer& w, const TaskMsg& task, bool ok, uint64_t ns) {
    w.put_u64(task.id);
    w.put_u8(ok ? 1 : 0);
    w.put_u64(ns);
  }

  Shared& shared_;
  Writer frames_;
  std::chrono::steady_clock::time_point flushed_ = std::chrono::steady_clock::now();
};

}  // namespace

void restart_host() {
  t_client.restart();
}

void run_task(Shared& shared, const TaskMsg& task, std::string_view closure) {
  t_shared = &shared;
  auto last = std::chrono::steady_clock::now();
  PluginDef def;
  try {
    def = parse_plugin_def(closure);
  } catch (const std::exception& e) {
    PluginClient::Reply r;
    r.text = std::string("bad plugin reference: ") + e.what();
    Results(shared).add(task, def, std::move(r), 0);
    return;
  }
  if (!def.isolate) {
    PluginClient::Reply rep = call_one(def, task.args, task.args.region());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - last);
    Results(shared).add(task, def, std::move(rep), static_cast<uint64_t>(ns.count()));
    return;
  }
  // Small tasks of the same plugin queued behind this one join it, so that a map over a plugin
  // is not one process switch per item: cheap calls as many as fit, others up to this
  // executor's fair share of the queue (the other executors take the rest in parallel).
  std::vector<TaskMsg> more;
  // A task with a timeout runs alone: the supervisor watches one task per executor.
  if (!task.args.region() && task.timeout_ms == 0) {
    size_t bytes = task.args.size();
    size_t limit = SIZE_MAX;
    const size_t executors = static_cast<size_t>(std::max(1, g_executors.load()));
    auto seen = t_call_ns.find(task.fn);
    const bool cheap = seen != t_call_ns.end() && seen->second < kCheapNs;
    while (auto t = shared.tasks.pop_if([&](const TaskMsg& next, size_t queued) {
      if (limit == SIZE_MAX) limit = std::min(kMaxBatch - 1, cheap ? queued : queued / executors);
      return more.size() < limit && next.fn == task.fn && next.timeout_ms == 0 &&
             !next.args.region() && bytes + next.args.size() <= kBatchBytes;
    })) {
      bytes += t->args.size();
      more.push_back(std::move(*t));
    }
  }
  std::vector<PluginClient::Arg> args;
  args.reserve(1 + more.size());
  args.push_back({task.args, task.args.region()});
  for (const TaskMsg& t : more) args.push_back({t.args, nullptr});
  Results results(shared);
  t_client.call_all(def, std::move(args), [&](size_t i, PluginClient::Reply&& rep) {
    auto now = std::chrono::steady_clock::now();
    auto ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
    last = now;
    uint64_t& avg = t_call_ns.try_emplace(task.fn, ns).first->second;
    avg = (avg * 3 + ns) / 4;
    results.add(i == 0 ? task : more[i - 1], def, std::move(rep), ns);
  });
}

}  // namespace skyworker::plugins
