#include "worker/capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <lua.hpp>
#include <mutex>
#include <thread>

#include "worker/lines.hpp"

namespace skyworker {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kQuiet = std::chrono::milliseconds(200);  // then a line without newline goes out

struct Capture {
  Shared* shared = nullptr;
  int fd[2] = {-1, -1};  // read ends: stdout, stderr
  LineSplitter split[2];
  Clock::time_point last[2];
  int wake[2] = {-1, -1};  // drain requests
  FILE* task_stderr = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t drains_done = 0;
};

Capture* g_cap = nullptr;

void emit(Capture& c, int i, std::string_view line) {
  send_log(c.shared->out, 0, i == 0 ? kStdout : kStderr, line);
}

/// Reads what stream i holds now; false once it is closed.
bool read_stream(Capture& c, int i) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(c.fd[i], buf, sizeof buf);
    if (n > 0) {
      c.last[i] = Clock::now();
      c.split[i].feed(std::string_view(buf, static_cast<size_t>(n)),
                      [&](std::string_view line) { emit(c, i, line); });
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    c.split[i].flush([&](std::string_view line) { emit(c, i, line); });
    close(c.fd[i]);
    c.fd[i] = -1;
    return false;
  }
}

void run(Capture& c) {
  for (;;) {
    pollfd p[3] = {{c.fd[0], POLLIN, 0}, {c.fd[1], POLLIN, 0}, {c.wake[0], POLLIN, 0}};
    int timeout = -1;
    auto now = Clock::now();
    for (int i = 0; i < 2; i++) {
      if (c.fd[i] < 0 || !c.split[i].pending()) continue;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.last[i] + kQuiet - now);
      int ms = static_cast<int>(std::max<int64_t>(left.count(), 0)) + 1;
      timeout = timeout < 0 ? ms : std::min(timeout, ms);
    }
    int rc = poll(p, 3, timeout);
    if (rc < 0 && errno != EINTR) return;
    for (int i = 0; i < 2; i++) {
      if (c.fd[i] >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) read_stream(c, i);
    }
    now = Clock::now();
    for (int i = 0; i < 2; i++) {
      if (c.fd[i] >= 0 && c.split[i].pending() && now - c.last[i] >= kQuiet) {
        c.split[i].flush([&](std::string_view line) { emit(c, i, line); });
      }
    }
    if (p[2].revents & POLLIN) {
      char b[64];
      ssize_t n = read(c.wake[0], b, sizeof b);
      (void)n;
      // Everything written before the request is in the pipes: take it, with unfinished lines.
      for (int i = 0; i < 2; i++) {
        if (c.fd[i] >= 0 && read_stream(c, i)) {
          c.split[i].flush([&](std::string_view line) { emit(c, i, line); });
        }
      }
      std::lock_guard lock(c.mu);
      c.drains_done++;
      c.cv.notify_all();
    }
  }
}

int pipe_pair(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return 0;
}

}  // namespace

void send_log(Output& out, uint64_t task, Stream stream, std::string_view line) {
  out.frame(skyhost::wire::Msg::kLog, [&](skyhost::wire::Writer& w) {
    w.put_u64(task);
    w.put_string(line);
    w.put_u8(stream);
  });
}

void start_capture(Shared& shared) {
  auto* c = new Capture();  // lives as long as the process
  c->shared = &shared;
  int out[2], err[2];
  int diag = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (pipe_pair(out) != 0 || pipe_pair(err) != 0 || pipe_pair(c->wake) != 0 || diag < 0) {
    std::fprintf(stderr, "skyworker: cannot capture output; it goes to stderr\n");
    return;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  dup2(out[1], 1);  // the copies on 1 and 2 are inherited by commands; the originals are not
  dup2(err[1], 2);
  close(out[1]);
  close(err[1]);
  c->fd[0] = out[0];
  c->fd[1] = err[0];
  // A task's io.write reaches the host line by line; what is left is flushed after each task.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  c->task_stderr = fdopen(2, "w");
  if (c->task_stderr != nullptr) std::setvbuf(c->task_stderr, nullptr, _IONBF, 0);
  // The worker's own messages (fprintf(stderr, ...)) keep the real stderr.
  if (FILE* f = fdopen(diag, "w")) {
    std::setvbuf(f, nullptr, _IONBF, 0);
    stderr = f;
  }
  g_cap = c;
  std::thread([c] { run(*c); }).detach();
}

void bind_lua_stdio(lua_State* L) {
  if (g_cap == nullptr || g_cap->task_stderr == nullptr) return;
  lua_getglobal(L, "io");
  if (lua_getfield(L, -1, "stderr") == LUA_TUSERDATA) {
    auto* s = static_cast<luaL_Stream*>(luaL_testudata(L, -1, LUA_FILEHANDLE));
    if (s != nullptr && s->f != nullptr) s->f = g_cap->task_stderr;
  }
  lua_pop(L, 2);
}

void drain_output(Shared& shared) {
  std::fflush(nullptr);
  if (Capture* c = g_cap) {
    std::unique_lock lock(c->mu);
    uint64_t want = c->drains_done + 1;
    char b = 1;
    if (write(c->wake[1], &b, 1) == 1) {
      c->cv.wait_for(lock, std::chrono::seconds(1), [&] { return c->drains_done >= want; });
    }
  }
  shared.out.wait_idle(std::chrono::seconds(2));
}

}  // namespace skyworker
