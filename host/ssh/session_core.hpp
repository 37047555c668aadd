// Internal: the state behind Session and Channel handles. Not part of the public API.
//
// libssh2 in non-blocking mode has a trap: when a send returns EAGAIN after part of a packet,
// libssh2 keeps the rest and only the *same* call may resume it; any other sender gets
// LIBSSH2_ERROR_BAD_USE, and in 1.10 some packets (channel EOF, keepalive, replies to server
// requests) live on the stack of the call that built them, so they cannot be resumed reliably
// at all. We avoid the whole class of problems: our send callback never reports a short send.
// Whatever the kernel does not take goes to `out_` and is flushed when the socket is writable.
// That buffer is bounded by the SSH flow control (channel data needs the server's window, and
// the server only grows the window for data it received), so it stays small.
#pragma once

#include <libssh2.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/ssh/types.hpp"

namespace skyhost::ssh {

class SessionCore;
struct Resolver;
/// Makes a pending name lookup forget its session (defined in connect.cpp).
void detach_resolver(Resolver* r);

/// One exec channel: its queue, its libssh2 handle and its user callbacks.
class ChannelCore {
 public:
  enum class State { queued, opening, starting, running, closing, done };
  struct Chunk {
    std::string data;
    size_t off = 0;
    std::function<void(const Status&)> done;
  };

  SessionCore* session = nullptr;  // null once the session is gone
  std::string command;
  ExecOptions options;
  State state = State::queued;
  LIBSSH2_CHANNEL* ch = nullptr;
  std::deque<Chunk> queue;
  size_t pending_bytes = 0;
  bool eof_requested = false;
  bool eof_sent = false;
  bool exit_reported = false;  // on_exit decided (called, or dropped with the handle)
  bool close_requested = false;
  uint64_t deadline_ms = 0;  // loop time; 0 = none
  ExitInfo result;           // filled in before on_exit

  std::function<void(std::string_view)> on_data;
  std::function<void(std::string_view)> on_stderr;
  std::function<void(const ExitInfo&)> on_exit;

  /// Drops every callback (the handle went away or the session was destroyed).
  void silence();
};

enum class SessionState { idle, resolving, connecting, handshaking, ready, lost, closed, failed };

class SessionCore {
 public:
  SessionCore(uv_loop_t* loop, SessionOptions options);
  SessionCore(const SessionCore&) = delete;
  SessionCore& operator=(const SessionCore&) = delete;

  // Internal methods are public so that the C callbacks and helpers in the .cpp files can
  // reach them; the class itself is internal.
  // ---- used by the Session / Channel facades (api.cpp)
  void destroy();  // no callbacks after this; deletes itself after uv_close
  void connect(std::function<void(const Status&)> done);
  std::shared_ptr<ChannelCore> exec(std::string command, ExecOptions options);
  void close(std::function<void()> done);
  void channel_write(ChannelCore& c, std::string data, std::function<void(const Status&)> done);
  void channel_send_eof(ChannelCore& c);
  void channel_close(ChannelCore& c, bool silent);
  std::string describe() const;
  const SessionOptions& options() const { return opt_; }

  std::function<void(const std::string&)> on_lost;
  SessionState state = SessionState::idle;
  std::string host_key_line;
  std::string host_key_fp;
  std::string algorithms;
  SessionStats stats;

  void defer(std::function<void()> fn);

  // ---- session.cpp: handles, socket I/O, timers
  void kick();
  void pump();
  void update_poll();
  void rearm_timer();
  void on_timer();
  void on_poll(int status, int events);
  void close_socket();
  void free_ssh();
  void maybe_delete();
  void lose(const std::string& reason);
  void finish_close();
  void keepalive_tick(uint64_t now);
  uint64_t keepalive_period_ms() const;
  uint64_t keepalive_limit_ms() const;
  bool flush_out();
  std::string ssh_error(const char* what) const;
  std::string io_error() const;
  bool transport_error(int rc) const;

  // ---- connect.cpp: resolve, TCP connect with retries, handshake, host key, auth
  void resolve();
  void on_resolved(int status, struct addrinfo* res);
  void start_attempt();
  void on_connected();
  void attempt_failed(const std::string& reason, bool retryable);
  void connect_finished(const Status& st);
  void step_handshake();
  bool new_ssh_session();
  bool check_host_key(std::string& error);
  int authenticate();
  std::string auth_failure_message();

  // ---- channel.cpp: the data path
  void pump_ready();
  bool step_channel(ChannelCore& c);
  bool step_open(ChannelCore& c);
  bool step_running(ChannelCore& c);
  bool step_writes(ChannelCore& c);
  bool step_reads(ChannelCore& c);
  bool step_wait_closed(ChannelCore& c);
  void step_free(ChannelCore& c);
  bool channel_failed(ChannelCore& c, int rc, const char* what);
  void finish_channel(ChannelCore& c, ExitInfo info);
  void fail_channels(const std::string& reason, bool timed_out);
  void fail_writes(ChannelCore& c, const std::string& reason);
  void check_deadlines(uint64_t now);
  bool any_open_libssh2_channel() const;

  uv_loop_t* loop_;
  SessionOptions opt_;
  bool destroyed_ = false;
  bool in_pump_ = false;
  bool pump_again_ = false;

  // libuv handles; each is heap-allocated and freed in its close callback
  uv_timer_t* timer_ = nullptr;
  uv_idle_t* kick_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int poll_mask_ = 0;
  int open_handles_ = 0;
  Resolver* resolver_ = nullptr;

  // connection
  int fd_ = -1;
  LIBSSH2_SESSION* ssh_ = nullptr;
  std::vector<sockaddr_storage> addrs_;
  size_t addr_next_ = 0;
  std::string addr_text_;  // address of the current attempt, for messages
  uint64_t connect_deadline_ = 0;
  uint64_t attempt_deadline_ = 0;
  uint64_t retry_at_ = 0;
  double backoff_ = 0;
  std::string last_attempt_error_;
  std::function<void(const Status&)> connect_done_;
  enum class Hs { tcp, banner, auth } hs_ = Hs::tcp;

  // socket I/O as seen by the libssh2 callbacks
  std::string out_;              // encrypted bytes the kernel did not take yet (see top of file)
  size_t out_off_ = 0;           // first unsent byte in out_
  bool dead_io_ = false;         // make libssh2's I/O fail at once (teardown)
  int io_errno_ = 0;             // last socket error seen
  bool io_eof_ = false;          // server closed the connection
  uint64_t last_rx_ = 0;         // loop time of the last bytes from the server
  uint64_t last_keepalive_ = 0;  // loop time of the last keepalive libssh2 actually sent
  bool reading_paused_ = false;
  int last_unread_ = 0;

  std::vector<std::function<void()>> deferred_;
  std::vector<std::shared_ptr<ChannelCore>> channels_;
  ChannelCore* opening_ = nullptr;  // libssh2 opens one channel at a time per session
  std::unique_ptr<char[]> rbuf_;

  bool close_requested_ = false;
  std::vector<std::function<void()>> close_done_;

  static ssize_t send_cb(libssh2_socket_t fd, const void* buf, size_t len, int flags,
                         void** abstract);
  static ssize_t recv_cb(libssh2_socket_t fd, void* buf, size_t len, int flags, void** abstract);
};

}  // namespace skyhost::ssh
