// SessionCore, socket I/O as libssh2 sees it: our send/recv callbacks, the output buffer that
// keeps libssh2 from ever seeing a short send (see session_core.hpp), and error texts.
#include <errno.h>
#include <sys/socket.h>

#include <cstring>

#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {
namespace {

// Never reached within SSH flow control (see session_core.hpp); a guard against runaway memory.
constexpr size_t kMaxOutBuffer = size_t(1) << 30;

}  // namespace

ssize_t SessionCore::send_cb(libssh2_socket_t fd, const void* buf, size_t len, int flags,
                             void** abstract) {
  auto* self = static_cast<SessionCore*>(*abstract);
  if (self->dead_io_) return -EPIPE;
  if (self->io_errno_ || self->io_eof_) return -(self->io_errno_ ? self->io_errno_ : EPIPE);
  const char* p = static_cast<const char*>(buf);
  size_t sent = 0;
  if (self->out_off_ == self->out_.size()) {  // nothing queued: straight to the kernel
    ssize_t n = ::send(fd, p, len, flags | MSG_NOSIGNAL);
    if (n < 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
        self->io_errno_ = e;
        return -e;
      }
      n = 0;
    }
    sent = static_cast<size_t>(n);
  }
  if (sent < len) {
    if (self->out_.size() - self->out_off_ > kMaxOutBuffer) {
      self->io_errno_ = ENOBUFS;  // cannot happen within SSH flow control; fail loudly if it does
      return -ENOBUFS;
    }
    self->out_.append(p + sent, len - sent);
  }
  self->stats.bytes_out += len;
  return static_cast<ssize_t>(len);
}

// Sends what send_cb queued. False on a socket error.
bool SessionCore::flush_out() {
  while (out_off_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      io_errno_ = errno;
      return false;
    }
    out_off_ += static_cast<size_t>(n);
  }
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > (1u << 20) && out_off_ > out_.size() / 2) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  return true;
}

ssize_t SessionCore::recv_cb(libssh2_socket_t fd, void* buf, size_t len, int flags,
                             void** abstract) {
  auto* self = static_cast<SessionCore*>(*abstract);
  if (self->dead_io_) return -ECONNRESET;
  ssize_t n = ::recv(fd, buf, len, flags);
  if (n > 0) {
    self->stats.bytes_in += static_cast<uint64_t>(n);
    self->last_rx_ = uv_now(self->loop_);
    return n;
  }
  if (n == 0) {
    self->io_eof_ = true;
    return 0;
  }
  int e = errno;
  if (e == EWOULDBLOCK || e == EINTR) return -EAGAIN;
  self->io_errno_ = e;
  return -e;
}

std::string SessionCore::io_error() const {
  if (io_eof_) return "connection closed by the server";
  if (io_errno_ == ETIMEDOUT) return "connection timed out (no TCP acknowledgement)";
  if (io_errno_) return std::string("socket error: ") + std::strerror(io_errno_);
  return {};
}

std::string SessionCore::ssh_error(const char* what) const {
  std::string io = io_error();
  if (!io.empty()) return std::string(what) + ": " + io;
  char* msg = nullptr;
  int code = ssh_ ? libssh2_session_last_error(ssh_, &msg, nullptr, 0) : 0;
  std::string out = what;
  if (msg && *msg) out += std::string(": ") + msg;
  if (code) out += " (libssh2 error " + std::to_string(code) + ")";
  return out;
}

// Errors that break the whole connection, as opposed to one channel.
bool SessionCore::transport_error(int rc) const {
  if (io_eof_ || io_errno_) return true;
  switch (rc) {
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
    case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
      return false;
    default:
      return true;
  }
}

}  // namespace skyhost::ssh
