// skyworker: runs the host's tasks on one node. Frames arrive on stdin (a pipe from a local
// host, or an SSH exec channel) and leave on stdout. Stray output of user code or of commands it
// starts must not corrupt that stream, so the protocol moves to private descriptors, fd 0 becomes
// /dev/null, and fds 1 and 2 pipes whose lines reach the host as Log events (worker/capture.cpp).
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "worker/capture.hpp"
#include "worker/executor.hpp"
#include "worker/inbox.hpp"
#include "worker/node.hpp"
#include "worker/plugin_host.hpp"
#include "worker/plugin_loader.hpp"
#include "worker/shared.hpp"
#include "worker/shell.hpp"
#include "worker/spot_notice.hpp"
#include "worker/supervisor.hpp"

namespace {

using skyhost::wire::Msg;

void die(const char* what) {
  std::fprintf(stderr, "skyworker: %s\n", what);
  std::_Exit(2);
}

struct Settings {
  int concurrency = 0;                            // executors; 0: one per core
  uint32_t max_frame = skyhost::wire::kMaxFrame;  // largest frame either way
  double ttl = 0;           // seconds of host silence before the lease expires; 0: no lease
  std::string pool_dir;     // scratch directory of the pool on this node, removed at the end
  std::string on_expiry;    // command run when the lease expires (a provider's self-termination)
  double deadline = 0;      // seconds after the start when the worker ends whatever the host says
                            // (the pool's timeout plus a grace period); 0: none
  std::string spot_notice;  // the instance metadata service to watch for a spot interruption
                            // notice (sky.aws's spot nodes); "": none
};

Settings g_settings;

/// Ends the worker and every process its tasks started (the worker leads its process group:
/// a local one by the host's choice, a remote one as the session leader sshd made).
/// Async-signal-safe.
[[noreturn]] void end_group(int = 0) {
  skyworker::kill_all_commands();  // sky.sh commands lead process groups of their own
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

/// The provider's self-termination (a node that powers itself off): run when the lease expires
/// or the host's stream ends without a shutdown (kill -9 of the host: nobody will end this node).
void run_on_expiry() {
  if (g_settings.on_expiry.empty()) return;
  std::fprintf(stderr, "skyworker: running the node's end command: %s\n",
               g_settings.on_expiry.c_str());
  int rc = std::system(g_settings.on_expiry.c_str());
  (void)rc;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<int64_t> g_last_word{0};

/// The dead-man lease: a host that says nothing for `ttl` seconds is presumed dead (killed,
/// frozen, cut off), and a worker without a host only costs money. The deadline: a pool's
/// lifetime has passed, and its host, alive or stuck, did not end this node in time.
void watch_lease() {
  const auto ttl_ms = static_cast<int64_t>(g_settings.ttl * 1000);
  const auto end_ms = g_settings.deadline > 0
                          ? now_ms() + static_cast<int64_t>(g_settings.deadline * 1000)
                          : INT64_MAX;
  for (;;) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(ttl_ms > 0 ? std::min<int64_t>(ttl_ms / 4 + 1, 1000) : 1000));
    if (now_ms() >= end_ms) {
      std::fprintf(stderr, "skyworker: the pool's timeout has passed (deadline %.0f s): stopping\n",
                   g_settings.deadline);
    } else if (ttl_ms > 0 && now_ms() - g_last_word.load() > ttl_ms) {
      std::fprintf(stderr, "skyworker: no word from the host for %.0f s: lease expired, stopping\n",
                   g_settings.ttl);
    } else {
      continue;
    }
    run_on_expiry();
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
    } else if (key == "--max-frame") {
      char* end = nullptr;
      unsigned long long v = std::strtoull(val, &end, 10);
      if (end == val || *end != '\0' || v < 1024 || v > skyhost::wire::kMaxFrame) {
        std::fprintf(stderr, "skyworker: --max-frame must be 1024 to %u bytes\n",
                     skyhost::wire::kMaxFrame);
        std::_Exit(2);
      }
      st.max_frame = static_cast<uint32_t>(v);
    } else if (key == "--ttl") {
      st.ttl = std::atof(val);
    } else if (key == "--pool-dir") {
      st.pool_dir = val;
    } else if (key == "--deadline") {
      st.deadline = std::atof(val);
    } else if (key == "--on-expiry") {
      st.on_expiry = val;
    } else if (key == "--spot-notice") {
      st.spot_notice = val;
    } else {
      std::fprintf(stderr, "skyworker: unknown option %s\n", key.c_str());
      std::_Exit(2);
    }
  }
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  // The same binary hosts plugins for an executor (worker/plugin_host.hpp).
  if (argc > 1 && std::strcmp(argv[1], "--plugin-host") == 0)
    return skyworker::plugin_host_main(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "--version") == 0) {
    std::puts("skyworker " SKYHOST_VERSION);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--free-port") == 0) return skyworker::print_free_port();
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);  // Ctrl-C belongs to the host, which tears the pool down
  follow_parent();
  int in_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
  int out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (in_fd < 0 || out_fd < 0) die("cannot set up the protocol stream");
  // Larger pipes (where the stream is a pipe; 1 MiB is the unprivileged limit): a large result
  // or argument moves in fewer, larger reads and writes. Not fatal where it cannot be had.
  for (int fd : {in_fd, out_fd}) (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
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
  if (g_settings.ttl > 0 || g_settings.deadline > 0) std::thread(watch_lease).detach();

  skyworker::Shared shared(out_fd, g_settings.max_frame);
  skyworker::start_capture(shared);
  std::thread writer([&] { shared.out.run(); });
  writer.detach();  // runs until the process ends
  if (!g_settings.spot_notice.empty()) skyworker::start_spot_watch(shared, g_settings.spot_notice);

  skyworker::Supervisor supervisor(shared);

  // What the host asks, as the inbox hands it over.
  struct Requests : skyworker::Inbox::Handler {
    skyworker::Shared& shared;
    skyworker::Supervisor& supervisor;
    int concurrency;
    Requests(skyworker::Shared& s, skyworker::Supervisor& v, int c)
        : shared(s), supervisor(v), concurrency(c) {}
    void init(std::string init) override {
      shared.init = std::move(init);
      skyworker::start_node(shared);
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
    void define(uint64_t id, std::string bytes) override {
      shared.closures.define(id, std::move(bytes));
    }
    void task(skyworker::TaskMsg t) override { shared.tasks.push(std::move(t)); }
    bool shared_args(uint64_t fn) override {
      auto def = shared.closures.get(fn);
      return def && skyworker::is_plugin_def(*def);
    }
    void cancel(uint64_t task) override {
      supervisor.cancel(task);
      skyworker::kill_task_commands(task);
    }
    void shutdown() override {
      skyworker::drain_output(shared);  // what tasks wrote reaches the host first
      finish();
    }
  } requests(shared, supervisor, concurrency);

  skyworker::Inbox inbox(g_settings.max_frame, requests);
  for (;;) {
    std::string_view room;
    try {
      room = inbox.space(256 * 1024);  // read where the frame stays: a large one is not copied
    } catch (const skyworker::Fatal& e) {
      skyworker::fatal(shared, e.what());
    }
    ssize_t n = read(in_fd, const_cast<char*>(room.data()), room.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the host is gone or closed the stream: stop
    g_last_word = now_ms();
    try {
      inbox.received(static_cast<size_t>(n));
    } catch (const skyworker::Fatal& e) {
      skyworker::fatal(shared, e.what());
    } catch (const std::bad_alloc&) {  // a request that arrived whole, with no memory to keep
      skyworker::fatal(shared, "out of memory for a request from the host");
    } catch (const std::exception& e) {  // no thread for an executor, say
      skyworker::fatal(shared, std::string("cannot serve the host: ") + e.what());
    }
  }
  // The stream ended: nobody is left to receive results, so running tasks are abandoned. The host
  // sends a shutdown before it ends a node, so a stream that just ends means the host is gone.
  if (inbox.pending() > 0) {
    std::fprintf(stderr, "skyworker: the stream from the host ended inside a frame (%s of it)\n",
                 skyhost::wire::size_text(inbox.pending()).c_str());
  }
  run_on_expiry();
  finish();
}
