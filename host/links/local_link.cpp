#include "host/links/local_link.hpp"

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace skyhost {

struct LocalLink::State {
  LocalLink* owner = nullptr;
  uv_process_t proc{};
  uv_pipe_t in{};   // the worker's stdin: we write frames
  uv_pipe_t out{};  // the worker's stdout: we read frames
  int pid = 0;
  int open_handles = 3;
  bool exited = false;
  bool out_closed = false;
  bool in_closed = false;
  bool reported = false;
  std::string reason;
  char buf[256 * 1024];

  void handle_closed() {
    if (--open_handles == 0 && owner == nullptr) delete this;
  }
  void close_handle(uv_handle_t* h) {
    if (!uv_is_closing(h)) {
      uv_close(h, [](uv_handle_t* h) { static_cast<State*>(h->data)->handle_closed(); });
    }
  }
  void maybe_report() {
    if (reported || !exited || !out_closed || owner == nullptr) return;
    reported = true;
    if (owner->on_closed) owner->on_closed(reason);
  }
  void fail(const std::string& why) {
    if (reason.empty()) reason = why;
  }
};

namespace {

// A write in flight owns what it writes: the buffer and what the buffer's refs point into.
struct WriteReq {
  uv_write_t req;
  wire::Writer data;
  std::vector<std::shared_ptr<const void>> keep;
};

}  // namespace

std::unique_ptr<LocalLink> LocalLink::spawn(uv_loop_t* loop, const std::vector<std::string>& argv) {
  auto* s = new State();
  uv_pipe_init(loop, &s->in, 0);
  uv_pipe_init(loop, &s->out, 0);
  s->in.data = s->out.data = s->proc.data = s;

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
  stdio[0].data.stream = reinterpret_cast<uv_stream_t*>(&s->in);
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&s->out);
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;

  uv_process_options_t opts{};
  opts.file = args[0];
  opts.args = args.data();
  opts.stdio_count = 3;
  opts.stdio = stdio;
  // Its own process group: Ctrl-C in the terminal reaches only the host, which tears the pool
  // down in order, and killing the group also ends whatever the worker's tasks started.
  opts.flags = UV_PROCESS_DETACHED;
  opts.exit_cb = [](uv_process_t* p, int64_t status, int sig) {
    auto* s = static_cast<State*>(p->data);
    s->exited = true;
    uv_kill(-s->pid, SIGKILL);  // anything the worker's tasks left running
    if (sig != 0 && sig != SIGKILL && sig != SIGTERM) {
      s->fail("worker killed by signal " + std::to_string(sig));
    } else if (sig == 0 && status != 0) {
      s->fail("worker exited with status " + std::to_string(status));
    } else if (sig != 0) {
      s->fail("worker killed by signal " + std::to_string(sig));
    }
    s->close_handle(reinterpret_cast<uv_handle_t*>(p));
    s->maybe_report();
  };
  int rc = uv_spawn(loop, &s->proc, &opts);
  if (rc != 0) {
    // A failed spawn leaves the process handle initialised; close all three so nothing leaks.
    s->exited = s->out_closed = true;
    s->close_handle(reinterpret_cast<uv_handle_t*>(&s->proc));
    s->close_handle(reinterpret_cast<uv_handle_t*>(&s->in));
    s->close_handle(reinterpret_cast<uv_handle_t*>(&s->out));
    throw std::runtime_error("cannot start worker '" + argv[0] + "': " + uv_strerror(rc));
  }
  s->pid = s->proc.pid;
  auto link = std::unique_ptr<LocalLink>(new LocalLink(s));
  s->owner = link.get();

  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&s->out),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* s = static_cast<State*>(h->data);
        // Straight into the frame decoder's buffer: a large result is read where it stays.
        std::string_view room;
        if (s->owner != nullptr && !s->owner->broken_) room = s->owner->read_space(sizeof s->buf);
        if (room.empty()) {
          *b = uv_buf_init(s->buf, sizeof s->buf);
        } else {
          size_t n = std::min<size_t>(room.size(), UINT32_MAX);
          *b = uv_buf_init(const_cast<char*>(room.data()), static_cast<unsigned>(n));
        }
      },
      [](uv_stream_t* st, ssize_t n, const uv_buf_t* b) {
        auto* s = static_cast<State*>(st->data);
        if (n > 0) {
          if (s->owner == nullptr || s->owner->broken_) return;
          auto got = static_cast<size_t>(n);
          std::string why =
              b->base == s->buf ? s->owner->receive(b->base, got) : s->owner->receive_read(got);
          if (!why.empty()) {
            s->owner->broken_ = true;  // nothing more is read from a stream out of step
            s->fail(why);
            uv_process_kill(&s->proc, SIGKILL);
          }
          return;
        }
        if (n == 0) return;
        if (n != UV_EOF)
          s->fail(std::string("reading from worker: ") + uv_strerror(static_cast<int>(n)));
        s->out_closed = true;
        uv_read_stop(st);
        s->close_handle(reinterpret_cast<uv_handle_t*>(st));
        s->maybe_report();
      });
  return link;
}

LocalLink::~LocalLink() {
  State* s = state_;
  s->owner = nullptr;
  if (!s->exited) {
    uv_kill(-s->pid, SIGKILL);
    uv_process_kill(&s->proc, SIGKILL);
  }
  s->close_handle(reinterpret_cast<uv_handle_t*>(&s->in));
  s->close_handle(reinterpret_cast<uv_handle_t*>(&s->out));
  // The process handle closes in its exit callback, after the kill above is reaped.
  if (s->exited) s->close_handle(reinterpret_cast<uv_handle_t*>(&s->proc));
  if (s->open_handles == 0) delete s;  // everything closed while we still owned it
}

void LocalLink::flush() {
  if (out_.size() == 0) return;
  State* s = state_;
  if (s->in_closed || s->exited) {
    out_.clear();
    out_keep_.clear();
    return;
  }
  auto* w = new WriteReq{{}, {}, std::move(out_keep_)};
  w->data.append(std::move(out_));
  out_keep_.clear();
  // Large arguments go from where they are (libuv copies this array, not the bytes).
  std::vector<uv_buf_t> bufs;
  w->data.segments([&](const char* p, size_t n) {
    for (size_t at = 0; at < n; at += UINT32_MAX) {  // uv_buf_t lengths are unsigned
      size_t len = std::min<size_t>(n - at, UINT32_MAX);
      bufs.push_back(uv_buf_init(const_cast<char*>(p + at), static_cast<unsigned>(len)));
    }
  });
  w->req.data = s;
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&s->in), bufs.data(),
                    static_cast<unsigned>(bufs.size()),
                    [](uv_write_t* r, int) { delete reinterpret_cast<WriteReq*>(r); });
  if (rc != 0) delete w;
}

void LocalLink::close() {
  State* s = state_;
  if (s->in_closed) return;
  flush();
  s->in_closed = true;
  s->close_handle(reinterpret_cast<uv_handle_t*>(&s->in));
}

bool LocalLink::gone() const {
  return state_->exited && state_->out_closed;
}

int LocalLink::pid() const {
  return state_->pid;
}

void LocalLink::kill() {
  if (state_->exited) return;
  uv_kill(-state_->pid, SIGKILL);
  uv_process_kill(&state_->proc, SIGKILL);
}

}  // namespace skyhost
