// Test helpers for ssh_tests: the namespace hosts made by tests/support/netns-hosts.sh, and a
// bounded way to run the libuv loop until something happened.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "host/ssh/types.hpp"

namespace skyhost::ssh::test {

/// State directory of the test hosts (SKYT_STATE, default /run/skyhost-test).
std::string state_dir();
/// IPv4 address of host i (1-based), after checking that the test bed is up and that the
/// address routes via our bridge (never towards any other network).
std::string host_ip(int i);
/// IPv6 address of host i, or "" when the hosts have no IPv6.
std::string host_ip6(int i);
/// The test client key (OpenSSH form) and the bed's known_hosts file.
std::string client_key();
std::string known_hosts();
/// Session options for host i: client key in memory, strict checking against the bed's file.
SessionOptions options_for(int i);
/// Runs tests/support/netns-hosts.sh with `args`; returns its exit status.
int bed(const std::string& args);
/// Shell command output (trailing newline kept); fails the test if it cannot run.
std::string sh(const std::string& command);
/// A fresh temporary file path under the state dir (removed by the caller or with the bed).
std::string temp_path(const std::string& stem);
std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view data);

/// Owns a uv loop; run_until pumps it until `done()` or `timeout_s` (bounded), returns done().
class Loop {
 public:
  Loop();
  ~Loop();  // runs the loop until every handle is closed, then closes it
  uv_loop_t* get() { return &loop_; }
  bool run_until(const std::function<bool()>& done, double timeout_s);
  /// Runs the loop for about `seconds`.
  void run_for(double seconds);
  double now() const;  // seconds, monotonic

 private:
  uv_loop_t loop_;
};

/// 64-bit FNV-1a, incremental: cheap checksum for streamed data.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(std::string_view d) {
    for (unsigned char c : d) h = (h ^ c) * 1099511628211ull;
  }
};

}  // namespace skyhost::ssh::test
