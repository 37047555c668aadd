// Plugins the tests call (tests/lua/test_plugin.lua, tests/e2e): values through every type,
// large binary data, failures of every kind, and a rendezvous that proves two calls overlap.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <skyhost/plugin.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

int64_t inc(int64_t x) {
  return x + 1;
}
SKY_PLUGIN(inc);

int64_t add(int64_t a, int64_t b) {
  return a + b;
}
SKY_PLUGIN(add);

/// Every argument back, deeply copied through the result API.
std::tuple<sky::Value> echo1(sky::Value v) {
  return {v};
}
SKY_PLUGIN(echo1);

/// A binary string back, written in place (push_bytes: no copy after the plugin's own).
int64_t bytes_back(sky::Call& call, std::string_view s) {
  char* out = call.push_bytes(s.size());
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return static_cast<int64_t>(s.size());
}
SKY_PLUGIN(bytes_back);

/// n bytes of a repeated letter, made in place.
void make_bytes(sky::Call& call, int64_t n, std::string_view fill) {
  if (n < 0 || fill.size() != 1) throw std::invalid_argument("make_bytes(n >= 0, one letter)");
  char* out = call.push_bytes(static_cast<size_t>(n));
  if (n > 0) std::memset(out, fill[0], static_cast<size_t>(n));
}
SKY_PLUGIN(make_bytes);

double sum(const std::vector<double>& xs) {
  double s = 0;
  for (double x : xs) s += x;
  return s;
}
SKY_PLUGIN(sum);

std::vector<std::string> keys(const std::map<std::string, int64_t>& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k + "=" + std::to_string(v));
  return out;
}
SKY_PLUGIN(keys);

std::tuple<int64_t, std::string, bool, std::optional<double>> several(std::optional<int64_t> x) {
  return {x.value_or(-1), "two", true, std::nullopt};
}
SKY_PLUGIN(several);

std::map<std::string, std::vector<int64_t>> nested(int64_t n) {
  std::map<std::string, std::vector<int64_t>> m;
  for (int64_t i = 0; i < n; ++i) m["k" + std::to_string(i)] = std::vector<int64_t>(i, i);
  return m;
}
SKY_PLUGIN(nested);

void nothing() {}
SKY_PLUGIN(nothing);

void fail(const std::string& why) {
  throw std::runtime_error(why);
}
SKY_PLUGIN(fail);

void crash() {
  volatile int* p = nullptr;
  *p = 1;
}
SKY_PLUGIN(crash);

/// x back, but crashes on 13: a crash in the middle of a batch of calls.
int64_t crash_on_13(int64_t x) {
  if (x == 13) crash();
  return x;
}
SKY_PLUGIN(crash_on_13);

void die_abort() {
  std::abort();
}
SKY_PLUGIN(die_abort);

void quit(int64_t status) {
  std::exit(static_cast<int>(status));
}
SKY_PLUGIN(quit);

/// The plugin host's process id: which host served the call.
int64_t host_pid() {
  return getpid();
}
SKY_PLUGIN(host_pid);

/// Peak resident memory of the plugin host, KiB (VmHWM).
int64_t peak_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}
SKY_PLUGIN(peak_kib);

/// Leaves a mark in `dir` and waits (at most a minute) until `n` marks are there: returns only
/// if n calls ran at the same time.
int64_t rendezvous(const std::string& dir, int64_t n) {
  std::string mark = dir + "/" + std::to_string(getpid());
  std::ofstream(mark).put('x');
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int64_t count = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++count;
    if (count >= n) return getpid();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  throw std::runtime_error("rendezvous: the other calls never came");
}
SKY_PLUGIN(rendezvous);

/// The C ABI by hand: counts its arguments' types, as {type name = count}.
static int count_types(const sky_api* api, sky_call* call, const sky_value* args, size_t n) {
  if (n == 0) return api->error(call, "count_types: no arguments");
  size_t counts[7] = {0};
  for (size_t i = 0; i < n; ++i) counts[args[i].type <= SKY_MAP ? args[i].type : 0]++;
  static const char* const names[] = {"nil", "bool", "int", "float", "string", "list", "map"};
  size_t kinds = 0;
  for (size_t c : counts) kinds += c > 0;
  api->begin_map(call, kinds);
  for (int t = 0; t < 7; ++t) {
    if (counts[t] == 0) continue;
    api->push_string(call, names[t], std::strlen(names[t]));
    api->push_int(call, static_cast<int64_t>(counts[t]));
  }
  return 0;
}
SKY_PLUGIN_EXPORT_C(count_types, count_types);

/// A result that breaks the rules: a list announced with 3 items and given 1.
static int short_list(const sky_api* api, sky_call* call, const sky_value*, size_t) {
  api->begin_list(call, 3);
  api->push_int(call, 1);
  return 0;
}
SKY_PLUGIN_EXPORT_C(short_list, short_list);
