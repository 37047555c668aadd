// SessionCore: lifetime, libuv handles (poll, timer, kick), keepalives, loss, close, pump.
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {
namespace {

std::once_flag g_libssh2_init;

}  // namespace

void ChannelCore::silence() {
  on_data = nullptr;
  on_stderr = nullptr;
  on_exit = nullptr;
  for (auto& chunk : queue) chunk.done = nullptr;
}

SessionCore::SessionCore(uv_loop_t* loop, SessionOptions options)
    : loop_(loop), opt_(std::move(options)), rbuf_(new char[256 * 1024]) {
  std::call_once(g_libssh2_init, [] { libssh2_init(0); });
  if (opt_.label.empty()) opt_.label = opt_.host;
  timer_ = new uv_timer_t();
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  kick_ = new uv_idle_t();
  uv_idle_init(loop_, kick_);
  kick_->data = this;
  open_handles_ = 2;
}

std::string SessionCore::describe() const {
  std::string addr = addr_text_.empty() ? opt_.host : addr_text_;
  if (addr.find(':') != std::string::npos && addr.front() != '[') addr = "[" + addr + "]";
  return opt_.label + " (" + addr + ":" + std::to_string(opt_.port) + ")";
}

// ---------------------------------------------------------------- lifetime

void SessionCore::destroy() {
  destroyed_ = true;
  on_lost = nullptr;
  connect_done_ = nullptr;
  close_done_.clear();
  deferred_.clear();
  for (auto& c : channels_) {
    c->silence();
    c->session = nullptr;
    c->ch = nullptr;  // freed with the libssh2 session below
    c->state = ChannelCore::State::done;
  }
  channels_.clear();
  free_ssh();
  close_socket();
  if (resolver_) {
    // the request may be running on the thread pool: it must not call back into us
    detach_resolver(resolver_);
    resolver_ = nullptr;
  }
  auto on_closed = [](uv_handle_t* h) {
    auto* self = static_cast<SessionCore*>(h->data);
    if (h->type == UV_TIMER) {
      delete reinterpret_cast<uv_timer_t*>(h);
    } else {
      delete reinterpret_cast<uv_idle_t*>(h);
    }
    self->open_handles_--;
    self->maybe_delete();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(kick_), on_closed);
  timer_ = nullptr;
  kick_ = nullptr;
}

void SessionCore::maybe_delete() {
  if (destroyed_ && open_handles_ == 0) delete this;
}

// Frees the libssh2 session without any network I/O: with dead_io_ set, libssh2's sends fail at
// once, so channel and session frees don't wait on the server.
void SessionCore::free_ssh() {
  if (!ssh_) return;
  for (auto& c : channels_) c->ch = nullptr;  // libssh2_session_free frees them
  dead_io_ = true;
  libssh2_session_free(ssh_);
  ssh_ = nullptr;
  dead_io_ = false;
  opening_ = nullptr;
}

void SessionCore::close_socket() {
  if (poll_) {
    // uv_close stops polling and forgets the fd before we close() it
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    poll_mask_ = 0;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  reading_paused_ = false;
  out_.clear();
  out_off_ = 0;
}

// ---------------------------------------------------------------- loop plumbing

// Deferred pump: API calls never run callbacks synchronously.
void SessionCore::kick() {
  if (destroyed_ || !kick_ || uv_is_active(reinterpret_cast<uv_handle_t*>(kick_))) return;
  uv_idle_start(kick_, [](uv_idle_t* h) {
    uv_idle_stop(h);
    static_cast<SessionCore*>(h->data)->pump();
  });
}

void SessionCore::update_poll() {
  if (!poll_ || destroyed_) return;
  int mask = 0;
  bool out_pending = out_off_ < out_.size();
  if (state == SessionState::connecting) {
    mask = UV_WRITABLE;
  } else if (state == SessionState::handshaking) {
    mask = UV_READABLE | (out_pending ? UV_WRITABLE : 0);
  } else if (state == SessionState::ready) {
    // Idle with no channel: libssh2 has no call that only reads, so stop reading and watch for
    // the server hanging up; keepalive_tick() watches the unread byte count.
    reading_paused_ = !any_open_libssh2_channel();
    if (!reading_paused_) last_unread_ = 0;  // libssh2 reads everything from here on
    mask = UV_DISCONNECT | (reading_paused_ ? 0 : UV_READABLE) | (out_pending ? UV_WRITABLE : 0);
  }
  if (mask == poll_mask_) return;
  poll_mask_ = mask;
  if (mask == 0) {
    uv_poll_stop(poll_);
    return;
  }
  uv_poll_start(poll_, mask, [](uv_poll_t* h, int status, int events) {
    if (h->data) static_cast<SessionCore*>(h->data)->on_poll(status, events);
  });
}

void SessionCore::on_poll(int status, int events) {
  if (status < 0) {
    int err = 0;
    socklen_t len = sizeof err;
    if (fd_ >= 0 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) io_errno_ = err;
    if (!io_errno_) io_errno_ = ECONNRESET;
  }
  if (state == SessionState::connecting) {
    on_connected();
  } else {
    if ((events & UV_WRITABLE) && status == 0) flush_out();
    if (state == SessionState::ready &&
        (io_errno_ || (reading_paused_ && (events & UV_DISCONNECT)))) {
      if (!io_errno_) io_eof_ = true;
      lose(io_error());
      return;
    }
  }
  if (events & UV_READABLE) last_rx_ = uv_now(loop_);
  pump();
}

// One timer serves connect deadlines, retry pauses, keepalives and channel timeouts.
void SessionCore::rearm_timer() {
  if (destroyed_ || !timer_) return;
  uint64_t next = UINT64_MAX;
  auto consider = [&next](uint64_t t) {
    if (t) next = std::min(next, t);
  };
  if (state == SessionState::resolving || state == SessionState::connecting ||
      state == SessionState::handshaking) {
    consider(connect_deadline_);
    consider(attempt_deadline_);
  }
  if (state == SessionState::idle && retry_at_) consider(retry_at_);
  if (state == SessionState::ready && opt_.keepalive_interval > 0) {
    uint64_t now = uv_now(loop_);
    uint64_t quiet_until = last_rx_ + keepalive_period_ms();
    // once silent, look again every 250 ms: libssh2 may refuse a send within the same second
    consider(now < quiet_until ? quiet_until : now + 250);
    consider(last_rx_ + keepalive_limit_ms());
  }
  for (auto& c : channels_) consider(c->deadline_ms);
  if (next == UINT64_MAX) {
    uv_timer_stop(timer_);
    return;
  }
  uint64_t now = uv_now(loop_);
  // at least 1 ms: libuv runs due timers in a loop without advancing its clock, so a timer that
  // re-arms itself at 0 would spin there
  uv_timer_start(
      timer_, [](uv_timer_t* h) { static_cast<SessionCore*>(h->data)->on_timer(); },
      next > now ? next - now : 1, 0);
}

void SessionCore::on_timer() {
  uint64_t now = uv_now(loop_);
  if (state == SessionState::idle && retry_at_ && now >= retry_at_) {
    retry_at_ = 0;
    start_attempt();
  } else if (state == SessionState::resolving || state == SessionState::connecting ||
             state == SessionState::handshaking) {
    if (now >= connect_deadline_ || now >= attempt_deadline_) {
      attempt_failed(
          state == SessionState::resolving ? "name resolution timed out" : "attempt timed out",
          true);
    }
  } else if (state == SessionState::ready) {
    keepalive_tick(now);
  }
  if (destroyed_) return;
  check_deadlines(now);
  if (destroyed_) return;
  pump();
}

uint64_t SessionCore::keepalive_period_ms() const {
  return static_cast<uint64_t>(std::max(2.0, std::ceil(opt_.keepalive_interval))) * 1000;
}

// one second of slack: libssh2 times keepalives with time(), in whole seconds
uint64_t SessionCore::keepalive_limit_ms() const {
  return keepalive_period_ms() * static_cast<uint64_t>(std::max(1, opt_.keepalive_count)) + 1000;
}

// Liveness: bytes from the server reset the clock. After a period of silence we send keepalives
// that want a reply; after keepalive_count periods (+1 s) the link is declared dead.
void SessionCore::keepalive_tick(uint64_t now) {
  if (opt_.keepalive_interval <= 0 || !ssh_) return;
  if (reading_paused_ && fd_ >= 0) {
    int unread = 0;  // replies we don't consume while idle still prove the server is there
    if (ioctl(fd_, FIONREAD, &unread) == 0 && unread != last_unread_) {
      last_unread_ = unread;
      last_rx_ = now;
    }
  }
  uint64_t silent = now - std::min(now, last_rx_);
  if (silent >= keepalive_limit_ms()) {
    lose("no answer from the server for " + std::to_string(silent / 1000) + " s (keepalive)");
    return;
  }
  if (silent < keepalive_period_ms()) return;
  uint64_t out_before = stats.bytes_out;
  int next = 0;
  libssh2_keepalive_send(ssh_, &next);  // sends only if its own period has passed
  if (stats.bytes_out != out_before) {
    last_keepalive_ = now;
    stats.keepalives_sent++;
  }
}

// ---------------------------------------------------------------- loss and close

void SessionCore::lose(const std::string& reason) {
  if (state != SessionState::ready) return;
  state = SessionState::lost;
  std::string why = describe() + ": connection lost: " + reason;
  free_ssh();
  close_socket();
  rearm_timer();
  fail_channels(why, false);
  if (destroyed_) return;
  if (auto cb = std::move(on_lost)) {
    on_lost = nullptr;
    cb(why);
  }
}

void SessionCore::close(std::function<void()> done) {
  if (done) close_done_.push_back(std::move(done));
  close_requested_ = true;
  kick();
}

void SessionCore::finish_close() {
  close_requested_ = false;
  if (state == SessionState::ready && ssh_) {
    // best effort: whatever the kernel takes now; the socket is closed right after
    libssh2_session_disconnect(ssh_, "skyhost: session closed");
    flush_out();
  }
  bool was_connecting = state != SessionState::ready && state != SessionState::lost &&
                        state != SessionState::closed && state != SessionState::failed;
  state = SessionState::closed;
  free_ssh();
  close_socket();
  retry_at_ = 0;
  rearm_timer();
  std::string why = describe() + ": session closed";
  if (was_connecting && connect_done_) {
    auto cb = std::move(connect_done_);
    connect_done_ = nullptr;
    cb(Status::failure(why + " before connect finished"));
    if (destroyed_) return;
  }
  fail_channels(why, false);
  if (destroyed_) return;
  auto done = std::move(close_done_);
  close_done_.clear();
  for (auto& cb : done) {
    cb();
    if (destroyed_) return;
  }
}

void SessionCore::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  kick();
}

void SessionCore::pump() {
  if (destroyed_) return;
  while (!deferred_.empty() && !in_pump_) {
    auto fns = std::move(deferred_);
    deferred_.clear();
    for (auto& fn : fns) {
      fn();
      if (destroyed_) return;
    }
  }
  if (in_pump_) {
    pump_again_ = true;
    return;
  }
  in_pump_ = true;
  for (int round = 0; round < 8; ++round) {
    pump_again_ = false;
    if (close_requested_) {
      finish_close();
    } else if (state == SessionState::handshaking) {
      step_handshake();
    } else if (state == SessionState::ready) {
      pump_ready();
    } else if (state == SessionState::lost || state == SessionState::closed ||
               state == SessionState::failed) {
      fail_channels(describe() + ": session is not connected", false);
    }
    if (destroyed_ || !pump_again_) break;
  }
  if (destroyed_) return;  // memory stays valid until the uv close callbacks ran
  in_pump_ = false;
  // forget finished channels nobody holds a handle to
  channels_.erase(std::remove_if(channels_.begin(), channels_.end(),
                                 [](const std::shared_ptr<ChannelCore>& c) {
                                   if (c->state != ChannelCore::State::done || c.use_count() > 1) {
                                     return false;
                                   }
                                   c->session = nullptr;
                                   return true;
                                 }),
                  channels_.end());
  if (pump_again_) kick();
  update_poll();
  rearm_timer();
}

}  // namespace skyhost::ssh
