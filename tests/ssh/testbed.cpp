#include "tests/ssh/testbed.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#ifndef SKYT_SCRIPT
#error "SKYT_SCRIPT must name tests/support/netns-hosts.sh"
#endif

namespace skyhost::ssh::test {

std::string state_dir() {
  const char* s = std::getenv("SKYT_STATE");
  return s && *s ? s : "/run/skyhost-test";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

static std::string nth_line(const std::string& file, int i) {
  std::istringstream in(read_file(file));
  std::string line;
  for (int k = 1; std::getline(in, line); ++k) {
    if (k == i) return line;
  }
  return {};
}

int bed(const std::string& args) {
  std::string cmd = std::string("'") + SKYT_SCRIPT + "' " + args + " >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string host_ip(int i) {
  std::string ip = nth_line(state_dir() + "/hosts.txt", i);
  if (ip.empty()) {
    FAIL("test host h" << i
                       << " is not up: run the tests through ctest (fixture ssh_hosts) or "
                          "tests/support/netns-hosts.sh up 3 as root");
  }
  // never send anything to an address that is not behind our bridge
  REQUIRE(bed("assert-local " + ip) == 0);
  return ip;
}

std::string host_ip6(int i) {
  host_ip(i);  // bed is up
  std::string ip = nth_line(state_dir() + "/hosts6.txt", i);
  if (!ip.empty()) REQUIRE(bed("assert-local " + ip) == 0);
  return ip;
}

std::string client_key() {
  return read_file(state_dir() + "/id_ed25519");
}

std::string known_hosts() {
  return state_dir() + "/known_hosts";
}

SessionOptions options_for(int i) {
  SessionOptions o;
  o.host = host_ip(i);
  o.label = "h" + std::to_string(i);
  o.private_key = client_key();
  o.known_hosts_file = known_hosts();
  o.host_key_check = HostKeyCheck::strict;
  o.connect_timeout = 20;
  return o;
}

std::string sh(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string temp_path(const std::string& stem) {
  static std::atomic<int> counter{0};
  return state_dir() + "/test-" + stem + "-" + std::to_string(getpid()) + "-" +
         std::to_string(counter++);
}

Loop::Loop() {
  uv_loop_init(&loop_);
}

Loop::~Loop() {
  // let the uv_close callbacks of destroyed sessions run, then close the loop (bounded)
  int rc = uv_loop_close(&loop_);
  for (int i = 0; i < 100 && rc == UV_EBUSY; ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    rc = uv_loop_close(&loop_);
  }
  if (rc == UV_EBUSY) {
    // a handle outlived its owner: a bug in the code under test. Say so, then clean up.
    std::fprintf(stderr, "ssh_tests: libuv handles still open at loop end:\n");
    uv_print_all_handles(&loop_, stderr);
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
}

double Loop::now() const {
  return static_cast<double>(uv_hrtime()) / 1e9;
}

bool Loop::run_until(const std::function<bool()>& done, double timeout_s) {
  uv_timer_t tick;  // wakes uv_run regularly so that the deadline is checked
  uv_timer_init(&loop_, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 10, 10);
  double end = now() + timeout_s;
  bool ok = done();
  while (!ok && now() < end) {
    uv_run(&loop_, UV_RUN_ONCE);
    ok = done();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // complete the close of `tick`
  return ok;
}

void Loop::run_for(double seconds) {
  run_until([] { return false; }, seconds);
}

}  // namespace skyhost::ssh::test
