// skyworker: runs the host's tasks on one node. Frames arrive on stdin (a pipe from a local
// host, or an SSH exec channel) and leave on stdout. Stray output of user code or of commands it
// starts must not corrupt that stream, so the protocol moves to private descriptors and fd 1
// becomes a copy of stderr, fd 0 /dev/null.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "worker/executor.hpp"
#include "worker/shared.hpp"

namespace {

using skyhost::wire::Msg;

void die(const char* what) {
  std::fprintf(stderr, "skyworker: %s\n", what);
  std::_Exit(2);
}

/// Ends the worker and every process its tasks started (a local worker leads its own process
/// group). Async-signal-safe.
[[noreturn]] void end_group(int = 0) {
  if (getpgrp() == getpid()) kill(0, SIGKILL);
  std::_Exit(0);
}

/// A local worker dies with its host, even on kill -9 of the host.
void follow_parent() {
  const char* parent = std::getenv("SKYWORKER_PARENT");
  if (parent == nullptr) return;
  std::signal(SIGTERM, end_group);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (std::to_string(getppid()) != parent) end_group();  // it died before prctl
}

int settings_concurrency(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i++) {
    if (std::strcmp(argv[i], "--concurrency") == 0) return std::max(1, std::atoi(argv[i + 1]));
  }
  return 4;
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

  skyworker::Shared shared(out_fd);
  std::thread writer([&] { shared.out.run(); });
  std::vector<std::thread> executors;
  int concurrency = settings_concurrency(argc, argv);

  skyhost::wire::FrameDecoder decoder;
  std::vector<char> buf(256 * 1024);
  bool started = false;
  for (;;) {
    ssize_t n = read(in_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the host is gone or closed the stream: stop
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
              for (int i = 0; i < concurrency; i++) {
                executors.emplace_back([&shared, i] { skyworker::run_executor(shared, i); });
              }
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
            t.args.assign(r.position(), r.remaining());
            shared.tasks.push(std::move(t));
            break;
          }
          case Msg::kShutdown:
            end_group();
          default:
            break;  // lease and cancel: later
        }
      }
    } catch (const skyhost::wire::Error& e) {
      std::fprintf(stderr, "skyworker: bad frame from host: %s\n", e.what());
      std::_Exit(3);
    }
  }
  // The stream ended: nobody is left to receive results, so running tasks are abandoned.
  end_group();
}
