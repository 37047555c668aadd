// SessionCore, connecting: name resolution, TCP connect with retries and exponential backoff
// until the deadline. The SSH handshake that follows is in handshake.cpp.
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {

// A uv_getaddrinfo request outlives a destroyed session (it may be running on the thread
// pool), so it lives on its own and only calls back while `owner` is set.
struct Resolver {
  uv_getaddrinfo_t req;
  SessionCore* owner;
};

void detach_resolver(Resolver* r) {
  r->owner = nullptr;
  uv_cancel(reinterpret_cast<uv_req_t*>(&r->req));
}

namespace {

std::string strip_brackets(const std::string& h) {
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') return h.substr(1, h.size() - 2);
  return h;
}

std::string addr_to_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

// ---------------------------------------------------------------- resolve

void SessionCore::connect(std::function<void(const Status&)> done) {
  if (state != SessionState::idle || connect_done_ || stats.connect_attempts > 0 || retry_at_) {
    // reported from the loop, never from inside the call
    if (done) {
      defer([done = std::move(done), why = describe()] {
        done(Status::failure(why + ": connect() called twice"));
      });
    }
    return;
  }
  connect_done_ = std::move(done);
  uint64_t now = uv_now(loop_);
  connect_deadline_ = now + static_cast<uint64_t>(std::max(0.0, opt_.connect_timeout) * 1000);
  backoff_ = opt_.retry_initial;
  retry_at_ = std::max<uint64_t>(now, 1);  // start from the timer: no callback inside connect()
  rearm_timer();
}

void SessionCore::resolve() {
  std::string h = strip_brackets(opt_.host);
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(opt_.port);
    addrs_.push_back(ss);
    start_attempt();
    return;
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(opt_.port);
    addrs_.push_back(ss);
    start_attempt();
    return;
  }
  state = SessionState::resolving;
  attempt_deadline_ = connect_deadline_;
  resolver_ = new Resolver{{}, this};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(opt_.port);
  int rc = uv_getaddrinfo(
      loop_, &resolver_->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* r = reinterpret_cast<Resolver*>(req);
        if (r->owner) {
          r->owner->resolver_ = nullptr;
          r->owner->on_resolved(status, res);
        }
        uv_freeaddrinfo(res);
        delete r;
      },
      h.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete resolver_;
    resolver_ = nullptr;
    state = SessionState::idle;
    attempt_failed(std::string("cannot resolve ") + h + ": " + uv_strerror(rc), false);
  }
}

void SessionCore::on_resolved(int status, addrinfo* res) {
  state = SessionState::idle;
  if (status != 0) {
    // a name that does not resolve now may resolve later (DNS not yet updated): retry
    attempt_failed(std::string("cannot resolve ") + opt_.host + ": " + uv_strerror(status),
                   status == UV_EAI_AGAIN);
    return;
  }
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage ss{};
    std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    addrs_.push_back(ss);
  }
  if (addrs_.empty()) {
    attempt_failed("no IPv4/IPv6 address for " + opt_.host, false);
    return;
  }
  start_attempt();
  pump();
}

// ---------------------------------------------------------------- TCP connect

void SessionCore::start_attempt() {
  if (addrs_.empty()) {
    resolve();
    return;
  }
  uint64_t now = uv_now(loop_);
  stats.connect_attempts++;
  const sockaddr_storage& sa = addrs_[addr_next_++ % addrs_.size()];
  addr_text_ = addr_to_text(sa);
  io_errno_ = 0;
  io_eof_ = false;
  fd_ = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    attempt_failed(std::string("socket(): ") + std::strerror(errno), false);
    return;
  }
  // OpenSSH leaves Nagle on for non-interactive sessions, which costs ~40 ms delayed-ACK stalls
  // per round trip of small packets; we want latency.
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  socklen_t len = sa.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS) {
    attempt_failed(std::strerror(errno), true);
    return;
  }
  state = SessionState::connecting;
  attempt_deadline_ =
      std::min(connect_deadline_, now + static_cast<uint64_t>(opt_.attempt_timeout * 1000));
  poll_ = new uv_poll_t();
  uv_poll_init_socket(loop_, poll_, fd_);
  poll_->data = this;
  poll_mask_ = 0;
  update_poll();
  rearm_timer();
}

void SessionCore::on_connected() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (!err) err = io_errno_;
  if (err) {
    attempt_failed(std::strerror(err), true);
    return;
  }
  io_errno_ = 0;
  if (!new_ssh_session()) {
    attempt_failed("cannot create a libssh2 session", false);
    return;
  }
  state = SessionState::handshaking;
  hs_ = Hs::banner;
}

void SessionCore::attempt_failed(const std::string& reason, bool retryable) {
  if (resolver_) {  // timed out while resolving: the late answer must not restart anything
    detach_resolver(resolver_);
    resolver_ = nullptr;
  }
  free_ssh();
  close_socket();
  state = SessionState::idle;
  last_attempt_error_ = reason;
  uint64_t now = uv_now(loop_);
  uint64_t pause = static_cast<uint64_t>(backoff_ * 1000);
  // the last pause is cut short so that one more attempt fits before the deadline
  constexpr uint64_t kLastTry = 100;
  if (retryable && now + pause >= connect_deadline_ && now + 2 * kLastTry < connect_deadline_) {
    pause = connect_deadline_ - kLastTry - now;
  }
  if (retryable && now + pause < connect_deadline_) {
    retry_at_ = now + pause;
    backoff_ = std::min(opt_.retry_max, backoff_ * 2);
    rearm_timer();
    return;
  }
  std::ostringstream msg;
  msg << describe() << ": ";
  if (retryable) {
    msg << "cannot connect within " << opt_.connect_timeout << " s (" << stats.connect_attempts
        << (stats.connect_attempts == 1 ? " attempt" : " attempts") << "): " << reason;
  } else {
    msg << reason;
  }
  state = SessionState::failed;
  connect_finished(Status::failure(msg.str(), retryable));
}

void SessionCore::connect_finished(const Status& st) {
  retry_at_ = 0;
  rearm_timer();
  if (st.ok()) {
    // a dead peer shows as unacknowledged data; give up on it when keepalives would anyway
    if (opt_.keepalive_interval > 0 && fd_ >= 0) {
      auto ms = static_cast<unsigned int>(keepalive_limit_ms());
      setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
  }
  if (auto cb = std::move(connect_done_)) {
    connect_done_ = nullptr;
    cb(st);
    if (destroyed_) return;
  }
  if (!st.ok()) fail_channels(st.error, st.timed_out);
}

}  // namespace skyhost::ssh
