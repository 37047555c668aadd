#include "worker/node.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <lua.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bindings/codec.hpp"
#include "worker/gpu.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Msg;
using skyhost::wire::Writer;

constexpr double kGiB = 1024.0 * 1024 * 1024;

struct Facts {
  int cpu_count = 0;
  double memory_gb = 0;
  std::vector<Gpu> gpus;
};

Facts g_facts;

/// The number a text starts with; 0 if it does not start with one.
double number(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  return end == s.c_str() ? 0 : v;
}

/// A field of /proc/meminfo, in bytes.
double meminfo(const std::string& text, const char* key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  return number(text.substr(at + std::string(key).size())) * 1024;
}

std::string slurp(const char* path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct CpuTimes {
  double busy = 0, total = 0;
};

CpuTimes cpu_times() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  double v[8] = {0};
  f >> cpu;
  for (double& x : v) f >> x;
  CpuTimes t;
  for (double x : v) t.total += x;
  t.busy = t.total - v[3] - v[4];  // all but idle and iowait
  return t;
}

void read_facts() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  g_facts.cpu_count = n > 0 ? static_cast<int>(n) : 1;
  g_facts.memory_gb = meminfo(slurp("/proc/meminfo"), "MemTotal:") / kGiB;
  g_facts.gpus = query_gpus();
}

struct Metric {
  std::string name;
  double value;
  const char* unit;
};

void sample_forever(Shared* shared, double interval) {
  CpuTimes prev = cpu_times();
  auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(interval));
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    // One sample per period; after a stall (a stopped process) one at once, not the missed ones.
    next = std::max(next + period, std::chrono::steady_clock::now());
    std::this_thread::sleep_until(next);
    std::vector<Metric> m;
    CpuTimes now = cpu_times();
    double dt = now.total - prev.total;
    m.push_back({"cpu", dt > 0 ? 100.0 * (now.busy - prev.busy) / dt : 0.0, "%"});
    prev = now;
    std::string mi = slurp("/proc/meminfo");
    m.push_back({"memory", (meminfo(mi, "MemTotal:") - meminfo(mi, "MemAvailable:")) / kGiB, "GB"});
    m.push_back({"load", number(slurp("/proc/loadavg")), ""});
    if (!g_facts.gpus.empty()) {
      auto gpus = query_gpus();
      for (size_t i = 0; i < gpus.size(); i++) {
        std::string g = "gpu" + std::to_string(i);
        m.push_back({g + ".util", gpus[i].util, "%"});
        m.push_back({g + ".memory", gpus[i].used_gb, "GB"});
      }
    }
    shared->out.frame(Msg::kMetric, [&](Writer& w) {
      w.put_varint(m.size());
      for (auto& x : m) {
        w.put_string(x.name);
        w.put_f64(x.value);
        w.put_string(x.unit);
      }
    });
  }
}

}  // namespace

void start_node(Shared& shared) {
  double interval = 0;
  lua_State* L = luaL_newstate();
  try {
    skyhost::wire::Reader r(shared.init);
    if (skyhost::codec::decode_values(L, r) >= 1 && lua_istable(L, 1)) {
      auto field = [&](const char* key) -> std::string {
        lua_getfield(L, 1, key);
        std::string v = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                            ? lua_tostring(L, -1)
                            : "";
        lua_pop(L, 1);
        return v;
      };
      // Every command a task runs sees who it is, with torch's names for a multi-node launch.
      const std::pair<const char*, const char*> names[] = {
          {"node", "SKYHOST_NODE"},           {"node", "NODE_RANK"},
          {"total_nodes", "SKYHOST_NODES"},   {"total_nodes", "NNODES"},
          {"head_addr", "SKYHOST_HEAD_ADDR"}, {"head_addr", "MASTER_ADDR"},
          {"pool", "SKYHOST_POOL"},           {"master_port", "MASTER_PORT"},
      };
      for (auto& [key, var] : names) {
        std::string v = field(key);
        if (!v.empty()) setenv(var, v.c_str(), 1);
      }
      interval = number(field("metrics_interval"));
    }
  } catch (const std::exception&) {
    // A malformed identity: the executors report it when they decode it.
  }
  lua_close(L);
  read_facts();
  if (interval > 0) std::thread(sample_forever, &shared, interval).detach();
}

void push_facts(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushinteger(L, static_cast<lua_Integer>(g_facts.gpus.size()));
  lua_setfield(L, idx, "gpu_count");
  if (!g_facts.gpus.empty()) {
    lua_pushstring(L, g_facts.gpus[0].name.c_str());
    lua_setfield(L, idx, "gpu_model");
  }
  lua_pushnumber(L, g_facts.gpus.empty() ? 0.0 : g_facts.gpus[0].memory_gb);
  lua_setfield(L, idx, "gpu_memory_gb");
  lua_pushinteger(L, g_facts.cpu_count);
  lua_setfield(L, idx, "cpu_count");
  lua_pushnumber(L, g_facts.memory_gb);
  lua_setfield(L, idx, "memory_gb");
}

int free_port() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(s);
  return port;
}

int print_free_port() {
  int port = free_port();
  if (port == 0) {
    std::perror("skyworker: no free port");
    return 1;
  }
  std::printf("%d\n", port);
  return 0;
}

}  // namespace skyworker
