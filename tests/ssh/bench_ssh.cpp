// ssh_bench: latency and throughput of the transport against OpenSSH's client on the same test
// hosts. Prints numbers; asserts only that things worked (no timing assertions).
//   tests/support/netns-hosts.sh up 3 && build/bin/ssh_bench [--size-mib N] [--runs N]
#define CATCH_CONFIG_RUNNER
#include <sys/resource.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "host/ssh/session.hpp"
#include "tests/ssh/testbed.hpp"

using namespace skyhost::ssh;
using namespace skyhost::ssh::test;

namespace {

int g_size_mib = 1024;
int g_runs = 3;
int g_latency_runs = 10;
int g_window_mib = 16;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// CPU seconds (user + system) of this process, or of its waited-for children
double cpu(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double wall(const std::string& cmd) {
  auto t0 = std::chrono::steady_clock::now();
  int rc = std::system(cmd.c_str());
  auto t1 = std::chrono::steady_clock::now();
  REQUIRE(rc == 0);
  return std::chrono::duration<double>(t1 - t0).count();
}

std::string ssh_cmd(const std::string& opts, const std::string& remote) {
  return "ssh -F '" + state_dir() + "/ssh_config' " + opts + " h1 '" + remote + "'";
}

}  // namespace

TEST_CASE("latency: connect + auth + exec true, new connection each time") {
  host_ip(1);
  std::vector<double> ours, theirs;
  std::string algos;
  for (int i = 0; i < g_latency_runs; ++i) {
    Loop loop;
    double t0 = loop.now();
    Session s(loop.get(), options_for(1));
    s.connect([](const Status&) {});
    bool done = false;
    RunResult r;
    s.run("true", {}, [&](RunResult x) {
      r = std::move(x);
      done = true;
    });
    REQUIRE(loop.run_until([&] { return done; }, 20));
    REQUIRE(r.exit.ok());
    ours.push_back(loop.now() - t0);
    algos = s.algorithms();
  }
  for (int i = 0; i < g_latency_runs; ++i) {
    theirs.push_back(wall(ssh_cmd("-o KexAlgorithms=curve25519-sha256", "true")));
  }
  std::printf(
      "latency (median of %d): skyhost %.1f ms   ssh -o KexAlgorithms=curve25519-sha256 "
      "%.1f ms\n  skyhost algorithms: %s\n",
      g_latency_runs, median(ours) * 1e3, median(theirs) * 1e3, algos.c_str());
}

TEST_CASE("throughput: head -c N /dev/zero read through an exec channel") {
  host_ip(1);
  std::string remote = "head -c " + std::to_string(g_size_mib) + "M /dev/zero";
  std::string same = "-o KexAlgorithms=curve25519-sha256 -c aes128-ctr -m hmac-sha2-256";
  uint64_t want = uint64_t(g_size_mib) << 20;
  std::vector<double> ours, same_cipher, default_cipher, setup, our_cpu, their_cpu;
  std::string algos;
  // interleaved, so that load from anything else on the machine hits all three alike
  for (int i = 0; i < g_runs; ++i) {
    Loop loop;
    Session s(loop.get(), options_for(1));
    bool ok = false;
    s.connect([&](const Status& st) { ok = st.ok(); });
    REQUIRE(loop.run_until([&] { return ok; }, 20));
    algos = s.algorithms();
    uint64_t got = 0;
    bool exited = false;
    double t0 = loop.now();
    double c0 = cpu(RUSAGE_SELF);
    ExecOptions eo;
    eo.window_size = static_cast<uint32_t>(g_window_mib) << 20;
    Channel ch = s.exec(remote, eo);
    ch.on_data([&](std::string_view d) { got += d.size(); });
    ch.on_exit([&](const ExitInfo& e) { exited = e.ok(); });
    REQUIRE(loop.run_until([&] { return exited; }, 300));
    ours.push_back(loop.now() - t0);
    our_cpu.push_back(cpu(RUSAGE_SELF) - c0);
    REQUIRE(got == want);
    // OpenSSH's numbers include its connection setup; measure that separately to subtract it
    double cc0 = cpu(RUSAGE_CHILDREN);
    same_cipher.push_back(wall(ssh_cmd(same, remote) + " > /dev/null"));
    their_cpu.push_back(cpu(RUSAGE_CHILDREN) - cc0);
    setup.push_back(wall(ssh_cmd(same, "true")));
    default_cipher.push_back(wall(ssh_cmd("", remote) + " > /dev/null"));
  }
  double mib = g_size_mib;
  double theirs = median(same_cipher) - median(setup);
  std::printf(
      "read %d MiB (median of %d, window %d MiB): skyhost %.2f s (%.0f MiB/s, channel only)\n"
      "  ssh %s: %.2f s incl. %.2f s setup (%.0f MiB/s excl. setup)\n"
      "  ssh default cipher: %.2f s incl. setup\n  skyhost algorithms: %s\n"
      "  ratio skyhost/ssh (same cipher, excl. setup): %.2f\n"
      "  client CPU for the transfer: skyhost %.2f s, ssh (same cipher, incl. setup) %.2f s\n",
      g_size_mib, g_runs, g_window_mib, median(ours), mib / median(ours), same.c_str(),
      median(same_cipher), median(setup), mib / theirs, median(default_cipher), algos.c_str(),
      theirs / median(ours), median(our_cpu), median(their_cpu));
}

TEST_CASE("throughput: N MiB written to cat > /dev/null") {
  host_ip(1);
  std::vector<double> ours, theirs;
  for (int i = 0; i < g_runs; ++i) {
    Loop loop;
    Session s(loop.get(), options_for(1));
    bool ok = false;
    s.connect([&](const Status& st) { ok = st.ok(); });
    REQUIRE(loop.run_until([&] { return ok; }, 20));
    bool exited = false;
    int sent = 0;
    double t0 = loop.now();
    Channel ch = s.exec("cat > /dev/null");
    ch.on_exit([&](const ExitInfo& e) { exited = e.ok(); });
    std::function<void()> feed = [&] {
      while (sent < g_size_mib && ch.pending_bytes() < (8u << 20)) {
        ++sent;
        ch.write(std::string(1u << 20, '\0'), [&](const Status&) { feed(); });
      }
      if (sent == g_size_mib) ch.send_eof();
    };
    feed();
    REQUIRE(loop.run_until([&] { return exited; }, 300));
    ours.push_back(loop.now() - t0);
  }
  for (int i = 0; i < g_runs; ++i) {
    theirs.push_back(wall("head -c " + std::to_string(g_size_mib) + "M /dev/zero | " +
                          ssh_cmd("-o KexAlgorithms=curve25519-sha256 -c aes128-ctr -m "
                                  "hmac-sha2-256",
                                  "cat > /dev/null")));
  }
  std::printf(
      "write %d MiB (median of %d): skyhost %.2f s (%.0f MiB/s)   ssh same cipher %.2f s "
      "incl. setup\n",
      g_size_mib, g_runs, median(ours), g_size_mib / median(ours), median(theirs));
}

int main(int argc, char** argv) {
  Catch::Session session;
  auto cli = session.cli() | Catch::clara::Opt(g_size_mib, "MiB")["--size-mib"]("bytes to move") |
             Catch::clara::Opt(g_runs, "N")["--runs"]("throughput runs") |
             Catch::clara::Opt(g_window_mib, "MiB")["--window-mib"]("SSH receive window");
  session.cli(cli);
  if (int rc = session.applyCommandLine(argc, argv)) return rc;
  return session.run();
}
