// skyworker: runs the host's tasks on one node. Frames arrive on stdin (a pipe from a local
// host, or an SSH exec channel) and leave on stdout. Stray output of user code or of commands it
// starts must not corrupt that stream, so the protocol moves to private descriptors and fd 1
// becomes a copy of stderr, fd 0 /dev/null.
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "worker/shared.hpp"
#include "worker/supervisor.hpp"

namespace {

using skyhost::wire::Msg;

void die(const char* what) {
  std::fprintf(stderr, "skyworker: %s\n", what);
  std::_Exit(2);
}

struct Settings {
  int concurrency = 0;    // executors; 0: one per core
  double ttl = 0;         // seconds of host silence before the lease expires; 0: no lease
  std::string pool_dir;   // scratch directory of the pool on this node, removed at the end
  std::string on_expiry;  // command run when the lease expires (a provider's self-termination)
};

Settings g_settings;

/// Ends the worker and every process its tasks started (the worker leads its process group:
/// a local one by the host's choice, a remote one as the session leader sshd made).
/// Async-signal-safe.
[[noreturn]] void end_group(int = 0) {
  if (getpgrp() == getpid()) kill(0, SIGKILL);
  std::_Exit(0);
}

/// Orderly end: the pool's scratch directory goes, then the process group.
[[noreturn]] void finish() {
  if (!g_settings.pool_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_settings.pool_dir, ec);
  }
  end_group();
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<int64_t> g_last_word{0};

/// The dead-man lease: a host that says nothing for `ttl` seconds is presumed dead (killed,
/// frozen, cut off), and a worker without a host only costs money.
void watch_lease() {
  const auto ttl_ms = static_cast<int64_t>(g_settings.ttl * 1000);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ttl_ms / 4 + 1, 1000)));
    if (now_ms() - g_last_word.load() <= ttl_ms) continue;
    std::fprintf(stderr, "skyworker: no word from the host for %.0f s: lease expired, stopping\n",
                 g_settings.ttl);
    if (!g_settings.on_expiry.empty()) {
      int rc = std::system(g_settings.on_expiry.c_str());
      (void)rc;
    }
    finish();
  }
}

/// A local worker dies with its host, even on kill -9 of the host.
void follow_parent() {
  const char* parent = std::getenv("SKYWORKER_PARENT");
  if (parent == nullptr) return;
  std::signal(SIGTERM, end_group);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (std::to_string(getppid()) != parent) end_group();  // it died before prctl
}

/// Cores this process may run on (its CPU affinity, which containers and taskset narrow).
int cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

Settings parse_settings(int argc, char** argv) {
  Settings st;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    const char* val = argv[i + 1];
    if (key == "--concurrency") {
      st.concurrency = std::max(0, std::atoi(val));
    } else if (key == "--ttl") {
      st.ttl = std::atof(val);
    } else if (key == "--pool-dir") {
      st.pool_dir = val;
    } else if (key == "--on-expiry") {
      st.on_expiry = val;
    } else {
      std::fprintf(stderr, "skyworker: unknown option %s\n", key.c_str());
      std::_Exit(2);
    }
  }
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::puts("skyworker " SKYHOST_VERSION);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);  // Ctrl-C belongs to the host, which tears the pool down
  follow_parent();
  int in_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
  int out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (in_fd < 0 || out_fd < 0) die("cannot set up the protocol stream");
  int devnull = open("/dev/null", O_RDONLY);
  dup2(devnull, 0);
  dup2(2, 1);
  close(devnull);

  g_settings = parse_settings(argc, argv);
  int concurrency = g_settings.concurrency;
  if (concurrency == 0) concurrency = cores();
  if (!g_settings.pool_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(g_settings.pool_dir, ec);
    setenv("SKYHOST_POOL_DIR", g_settings.pool_dir.c_str(), 1);
  }
  g_last_word = now_ms();
  if (g_settings.ttl > 0) std::thread(watch_lease).detach();

  skyworker::Shared shared(out_fd);
  std::thread writer([&] { shared.out.run(); });
  skyworker::Supervisor supervisor(shared);

  skyhost::wire::FrameDecoder decoder;
  std::vector<char> buf(256 * 1024);
  bool started = false;
  for (;;) {
    ssize_t n = read(in_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the host is gone or closed the stream: stop
    g_last_word = now_ms();
    decoder.feed(buf.data(), static_cast<size_t>(n));
    try {
      skyhost::wire::Frame f;
      while (decoder.next(f)) {
        skyhost::wire::Reader r(f.body);
        switch (f.type) {
          case Msg::kInit:
            shared.init.assign(f.body);
            if (!started) {
              started = true;
              supervisor.start(concurrency);
              char host[256] = {0};
              gethostname(host, sizeof host - 1);
              std::string hostname(host);
              long pid = getpid();
              shared.out.frame(Msg::kReady, [&](skyhost::wire::Writer& w) {
                w.put_string(hostname);
                w.put_varint(static_cast<uint64_t>(pid));
                w.put_varint(static_cast<uint64_t>(concurrency));
              });
            }
            break;
          case Msg::kDef: {
            uint64_t id = r.get_u64();
            shared.closures.define(id, std::string(r.position(), r.remaining()));
            break;
          }
          case Msg::kTask: {
            skyworker::TaskMsg t;
            t.id = r.get_u64();
            t.fn = r.get_u64();
            t.timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(r.get_varint(), UINT32_MAX));
            t.args.assign(r.position(), r.remaining());
            shared.tasks.push(std::move(t));
            break;
          }
          case Msg::kCancel:
            supervisor.cancel(r.get_u64());
            break;
          case Msg::kShutdown:
            finish();
          default:
            break;  // kLease: any frame renews the lease
        }
      }
    } catch (const skyhost::wire::Error& e) {
      std::fprintf(stderr, "skyworker: bad frame from host: %s\n", e.what());
      std::_Exit(3);
    }
  }
  // The stream ended: nobody is left to receive results, so running tasks are abandoned.
  finish();
}
