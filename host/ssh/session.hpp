// One SSH connection per node, driven by a libuv loop: non-blocking libssh2, no threads, no ssh
// subprocess. Exec channels stream bytes both ways (the worker protocol runs over one).
//
// Callbacks run from libuv callbacks on the loop thread, never from inside a call into this API
// (results of a call are always delivered later), and each at most once per completion. They may
// call into the API, including destroying the Session or Channel they were invoked for.
//
// Lifetimes: destroying a Session (or a Channel handle) is allowed at any time, even with
// operations in flight; no callback of it runs afterwards. libuv handles are closed with uv_close
// and their memory is freed in the close callback, so the loop must keep running a little
// (uv_run) after the last Session is destroyed.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "host/ssh/types.hpp"

namespace skyhost::ssh {

class SessionCore;
class ChannelCore;

/// The stdin/stdout/stderr of one remote command (an SSH "exec" channel).
/// Set the callbacks right after Session::exec returns; none runs before the loop does.
class Channel {
 public:
  Channel() = default;
  explicit Channel(std::shared_ptr<ChannelCore> core);
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  /// Closes the channel if still open; no callback runs after this.
  ~Channel();

  /// Stdout bytes. The view is valid only during the call.
  void on_data(std::function<void(std::string_view)> cb);
  /// Stderr bytes. The view is valid only during the call.
  void on_stderr(std::function<void(std::string_view)> cb);
  /// Called once when the channel ends: exit code or signal, or a transport error.
  void on_exit(std::function<void(const ExitInfo&)> cb);

  /// Queues bytes for the command's stdin. Never blocks; `done` (optional) runs once the bytes
  /// are handed to the SSH layer, or with an error if the channel ends first.
  void write(std::string data, std::function<void(const Status&)> done = {});
  /// Sends EOF on stdin after everything queued so far (e.g. so that `cat` finishes).
  void send_eof();
  /// Bytes queued by write() and not yet handed to the SSH layer.
  size_t pending_bytes() const;
  /// Ends the channel now: queued writes fail, on_exit runs with error "closed" if it has not run.
  void close();
  /// True until on_exit has been decided.
  bool is_open() const;

 private:
  std::shared_ptr<ChannelCore> core_;
};

/// One SSH session to one node on a libuv loop.
class Session {
 public:
  /// Does no I/O yet. `loop` must outlive the session's last uv_close callback.
  Session(uv_loop_t* loop, SessionOptions options);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  /// Abandons everything in flight without further callbacks; frees memory via uv_close.
  ~Session();

  /// Resolves, connects (retrying with exponential backoff until connect_timeout: a machine
  /// that just booted refuses connections for a while), handshakes, checks the host key and
  /// authenticates. `done` runs once. Call at most once.
  void connect(std::function<void(const Status&)> done);

  /// Called once if the connection breaks after connect() succeeded (socket error, EOF, no
  /// keepalive answer). Every channel fails with the same reason. Not called after close().
  void on_lost(std::function<void(const std::string& reason)> cb);

  /// Starts `command` in an exec channel. Allowed before connect() has finished: the channel
  /// opens when the session is ready (or fails with the connect error).
  Channel exec(std::string command, ExecOptions options = {});

  /// Runs a command to completion, collecting stdout/stderr (bootstrap steps).
  void run(std::string command, RunOptions options, std::function<void(RunResult)> done);

  /// Writes `data` to `remote_path` (via `cat` over exec, renamed into place when complete).
  void upload_bytes(std::string data, std::string remote_path, UploadOptions options,
                    std::function<void(const Status&)> done);
  /// Streams the local file at `local_path` to `remote_path`, as upload_bytes.
  void upload_file(std::string local_path, std::string remote_path, UploadOptions options,
                   std::function<void(const Status&)> done);

  /// Graceful end: sends SSH disconnect, fails channels still open with "session closed",
  /// then runs `done` (optional). Idempotent.
  void close(std::function<void()> done = {});

  /// True between a successful connect() and loss/close.
  bool is_ready() const;
  /// The server's host key as an OpenSSH line ("ssh-ed25519 AAAA..."), once known.
  std::string host_key() const;
  /// "SHA256:..." of the server's host key, once known.
  std::string host_key_fingerprint() const;
  /// Negotiated algorithms, e.g. "kex=curve25519-sha256 hostkey=ssh-ed25519 cipher=aes128-ctr
  /// mac=hmac-sha2-256" (client to server), once connected.
  std::string algorithms() const;
  /// What the session was made with (extra sessions to the same node start from a copy).
  const SessionOptions& options() const;
  /// Label used in messages ("label (addr:port)").
  std::string describe() const;
  SessionStats stats() const;

 private:
  SessionCore* core_;  // owned; deleted by itself after its uv handles close
};

}  // namespace skyhost::ssh
