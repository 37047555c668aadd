// SessionCore, data path: exec channels from open to free, driven from pump().
//
// Each pump pass walks every channel and moves it as far as libssh2 lets it without waiting:
// open (one at a time: libssh2 keeps the open state per session), start the command, write
// queued stdin, read stdout/stderr, notice the end, free. Every channel read drains the socket
// into libssh2's packet queue, so one pass consumes all input that made the socket readable.
#include <algorithm>
#include <cstdio>

#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {
namespace {

constexpr size_t kReadChunk = 256 * 1024;   // size of rbuf_
constexpr size_t kReadBudget = 16u << 20;   // per channel and pass, so that one can't starve all
constexpr uint64_t kCloseTimeoutMs = 5000;  // wait for the server to confirm a channel close

using S = ChannelCore::State;

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

}  // namespace

bool SessionCore::any_open_libssh2_channel() const {
  for (auto& c : channels_) {
    if (c->ch || c->state == S::queued || c->state == S::opening) return true;
  }
  return false;
}

// ---------------------------------------------------------------- API entry points

std::shared_ptr<ChannelCore> SessionCore::exec(std::string command, ExecOptions options) {
  auto c = std::make_shared<ChannelCore>();
  c->session = this;
  c->command = std::move(command);
  c->options = options;
  // libssh2 1.10 refuses packets over 40000 bytes; OpenSSH sends at most 32 KiB anyway
  c->options.packet_size = std::min<uint32_t>(std::max<uint32_t>(options.packet_size, 4096), 32768);
  c->options.window_size = std::max<uint32_t>(options.window_size, 65536);
  if (options.timeout > 0) {
    c->deadline_ms = uv_now(loop_) + static_cast<uint64_t>(options.timeout * 1000);
  }
  channels_.push_back(c);
  kick();
  return c;
}

void SessionCore::channel_write(ChannelCore& c, std::string data,
                                std::function<void(const Status&)> done) {
  if (c.exit_reported || c.close_requested || c.eof_requested) {
    if (done) {
      std::string why = describe() + ": write on a channel that is " +
                        (c.eof_requested && !c.exit_reported ? "past EOF" : "closed");
      defer([done = std::move(done), why] { done(Status::failure(why)); });
    }
    return;
  }
  if (data.empty()) {
    if (done) defer([done = std::move(done)] { done(Status{}); });
    return;
  }
  c.pending_bytes += data.size();
  c.queue.push_back(ChannelCore::Chunk{std::move(data), 0, std::move(done)});
  kick();
}

void SessionCore::channel_send_eof(ChannelCore& c) {
  c.eof_requested = true;
  kick();
}

void SessionCore::channel_close(ChannelCore& c, bool silent) {
  if (silent) {
    c.silence();
    c.exit_reported = true;
  }
  if (c.close_requested && silent) return;
  c.close_requested = true;
  if (c.state == S::running) {
    c.state = S::closing;
    c.deadline_ms = uv_now(loop_) + kCloseTimeoutMs;
  } else if (c.state == S::queued) {
    c.state = S::done;
  }
  if (!c.exit_reported) {
    // on_exit and the failed writes are reported from the loop, not from inside close()
    std::weak_ptr<ChannelCore> weak;
    for (auto& p : channels_) {
      if (p.get() == &c) weak = p;
    }
    defer([this, weak] {
      if (auto p = weak.lock()) {
        ExitInfo info;
        info.error = describe() + ": channel closed";
        finish_channel(*p, info);
      }
    });
  }
  kick();
}

// ---------------------------------------------------------------- pump

void SessionCore::pump_ready() {
  if (out_off_ < out_.size() && !flush_out()) {
    lose(io_error());
    return;
  }
  // by index: callbacks may start new channels (push_back)
  for (size_t i = 0; i < channels_.size(); ++i) {
    std::shared_ptr<ChannelCore> c = channels_[i];
    step_channel(*c);
    if (destroyed_ || state != SessionState::ready) return;
  }
  if (io_errno_ || io_eof_) lose(io_error());
}

bool SessionCore::step_channel(ChannelCore& c) {
  switch (c.state) {
    case S::queued:
      if (opening_ && opening_ != &c) return true;
      opening_ = &c;
      c.state = S::opening;
      [[fallthrough]];
    case S::opening:
    case S::starting:
      return step_open(c);
    case S::running:
      return step_running(c);
    case S::closing:
      step_free(c);
      return true;
    case S::done:
      return true;
  }
  return true;
}

bool SessionCore::step_open(ChannelCore& c) {
  if (c.state == S::opening) {
    LIBSSH2_CHANNEL* ch =
        libssh2_channel_open_ex(ssh_, "session", sizeof "session" - 1, c.options.window_size,
                                c.options.packet_size, nullptr, 0);
    if (!ch) {
      int rc = libssh2_session_last_errno(ssh_);
      if (rc == LIBSSH2_ERROR_EAGAIN) return true;
      opening_ = nullptr;
      c.state = S::done;
      return channel_failed(c, rc, "cannot open a session channel");
    }
    opening_ = nullptr;
    c.ch = ch;
    c.state = S::starting;
    pump_again_ = true;  // the next queued channel may open now
  }
  // a close requested meanwhile waits until here: the open and exec requests are in flight
  int rc = libssh2_channel_process_startup(c.ch, "exec", sizeof "exec" - 1, c.command.data(),
                                           static_cast<unsigned>(c.command.size()));
  if (rc == LIBSSH2_ERROR_EAGAIN) return true;
  c.state = S::running;
  if (rc != 0) return channel_failed(c, rc, "the server refused to run the command");
  return step_running(c);
}

bool SessionCore::step_running(ChannelCore& c) {
  if (c.close_requested) {
    c.state = S::closing;
    c.deadline_ms = uv_now(loop_) + kCloseTimeoutMs;
    step_free(c);
    return true;
  }
  if (!step_writes(c)) return false;
  if (c.state != S::running || destroyed_) return true;
  if (!step_reads(c)) return false;
  if (c.state != S::running || destroyed_) return true;
  return step_wait_closed(c);
}

bool SessionCore::step_writes(ChannelCore& c) {
  while (!c.queue.empty() && !c.close_requested) {
    ChannelCore::Chunk& ck = c.queue.front();
    ssize_t n = libssh2_channel_write_ex(c.ch, 0, ck.data.data() + ck.off, ck.data.size() - ck.off);
    if (n == LIBSSH2_ERROR_EAGAIN || n == 0) return true;  // window full: wait for an adjust
    if (n < 0) return channel_failed(c, static_cast<int>(n), "writing to the command's stdin");
    ck.off += static_cast<size_t>(n);
    c.pending_bytes -= static_cast<size_t>(n);
    if (ck.off == ck.data.size()) {
      auto done = std::move(ck.done);
      c.queue.pop_front();
      if (done) {
        done(Status{});
        if (destroyed_) return true;
      }
    }
  }
  if (c.eof_requested && !c.eof_sent && c.queue.empty() && !c.close_requested) {
    int rc = libssh2_channel_send_eof(c.ch);
    if (rc == LIBSSH2_ERROR_EAGAIN) return true;
    if (rc != 0) return channel_failed(c, rc, "sending EOF to the command's stdin");
    c.eof_sent = true;
  }
  return true;
}

bool SessionCore::step_reads(ChannelCore& c) {
  size_t budget = kReadBudget;
  for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
    while (budget > 0) {
      ssize_t n = libssh2_channel_read_ex(c.ch, stream, rbuf_.get(), kReadChunk);
      if (n == LIBSSH2_ERROR_EAGAIN || n == 0) break;
      if (n < 0) return channel_failed(c, static_cast<int>(n), "reading the command's output");
      budget -= std::min(budget, static_cast<size_t>(n));
      auto& cb = stream == 0 ? c.on_data : c.on_stderr;
      if (cb) {
        cb(std::string_view(rbuf_.get(), static_cast<size_t>(n)));
        if (destroyed_ || c.state != S::running) return true;
      }
    }
  }
  if (budget == 0) pump_again_ = true;  // more may be queued in libssh2: come back soon
  return true;
}

bool SessionCore::step_wait_closed(ChannelCore& c) {
  if (!libssh2_channel_eof(c.ch)) return true;  // remote EOF seen and all its data read?
  int rc = libssh2_channel_wait_closed(c.ch);
  if (rc == LIBSSH2_ERROR_EAGAIN) return true;
  if (rc != 0) return channel_failed(c, rc, "waiting for the command to end");
  ExitInfo info;
  char* sig = nullptr;
  size_t sig_len = 0;
  libssh2_channel_get_exit_signal(c.ch, &sig, &sig_len, nullptr, nullptr, nullptr, nullptr);
  if (sig) {
    info.signal.assign(sig, sig_len);
    libssh2_free(ssh_, sig);
  } else {
    info.code = libssh2_channel_get_exit_status(c.ch);
  }
  finish_channel(c, info);
  return true;
}

void SessionCore::step_free(ChannelCore& c) {
  if (!c.ch) {
    c.state = S::done;
    return;
  }
  // sends EOF and CLOSE, then waits for the server's CLOSE (bounded by kCloseTimeoutMs)
  if (libssh2_channel_free(c.ch) == LIBSSH2_ERROR_EAGAIN) return;
  c.ch = nullptr;
  c.state = S::done;
  c.deadline_ms = 0;
}

// ---------------------------------------------------------------- endings

// False if the error broke the whole session (then it is lost and all channels failed).
bool SessionCore::channel_failed(ChannelCore& c, int rc, const char* what) {
  if (transport_error(rc)) {
    lose(ssh_error(what));
    return false;
  }
  ExitInfo info;
  info.error = describe() + ": " + ssh_error(what);
  finish_channel(c, info);
  return true;
}

void SessionCore::finish_channel(ChannelCore& c, ExitInfo info) {
  if (!c.close_requested) {
    c.close_requested = true;
    if (c.state == S::running) {
      c.state = S::closing;
      c.deadline_ms = uv_now(loop_) + kCloseTimeoutMs;
    } else if (c.state == S::queued) {
      c.state = S::done;
    }
  }
  if (state != SessionState::ready && c.state != S::done) {
    c.ch = nullptr;  // freed with the libssh2 session
    c.state = S::done;
  }
  if (c.exit_reported) return;
  c.exit_reported = true;
  c.result = std::move(info);
  fail_writes(c, c.result.error.empty() ? describe() +
                                              ": the command ended before reading "
                                              "all its input"
                                        : c.result.error);
  if (destroyed_) return;
  if (auto cb = std::move(c.on_exit)) {
    c.on_exit = nullptr;
    cb(c.result);
  }
}

void SessionCore::fail_writes(ChannelCore& c, const std::string& reason) {
  auto queue = std::move(c.queue);
  c.queue.clear();
  c.pending_bytes = 0;
  for (auto& ck : queue) {
    if (ck.done) {
      ck.done(Status::failure(reason));
      if (destroyed_) return;
    }
  }
}

void SessionCore::fail_channels(const std::string& reason, bool timed_out) {
  for (size_t i = 0; i < channels_.size(); ++i) {
    std::shared_ptr<ChannelCore> c = channels_[i];
    ExitInfo info;
    info.error = reason;
    info.timed_out = timed_out;
    finish_channel(*c, info);
    if (destroyed_) return;
  }
}

void SessionCore::check_deadlines(uint64_t now) {
  for (size_t i = 0; i < channels_.size(); ++i) {
    std::shared_ptr<ChannelCore> c = channels_[i];
    if (!c->deadline_ms || now < c->deadline_ms) continue;
    c->deadline_ms = 0;
    if (c->state == S::closing) {
      // the server never confirmed the close: forget the channel, libssh2 frees it with the
      // session
      c->ch = nullptr;
      c->state = S::done;
      continue;
    }
    ExitInfo info;
    info.timed_out = true;
    info.error = describe() + ": command timed out after " + seconds(c->options.timeout) + ": " +
                 c->command.substr(0, 80);
    finish_channel(*c, info);
    if (destroyed_) return;
  }
}

}  // namespace skyhost::ssh
