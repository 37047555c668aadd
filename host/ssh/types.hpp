// Plain data types of the SSH transport: options and results. No libssh2 or libuv types here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace skyhost::ssh {

/// How a server's host key is checked against SessionOptions::known_hosts_file.
enum class HostKeyCheck {
  strict,      ///< unknown host: refuse. Changed key: refuse.
  accept_new,  ///< unknown host: accept and append it to the file. Changed key: refuse.
};

/// Outcome of an operation. Success is an empty `error`.
struct Status {
  /// Human-readable: "<label> (<addr>:<port>): <phase>: <detail>". Empty on success.
  std::string error;
  /// The operation ran past its deadline (then `error` says so too).
  bool timed_out = false;

  bool ok() const { return error.empty(); }
  static Status failure(std::string message, bool timed_out = false) {
    return Status{std::move(message), timed_out};
  }
};

/// Where a connection to one node goes and how it is checked and authenticated.
struct SessionOptions {
  std::string host;  ///< IPv4 or IPv6 literal (brackets allowed) or a name (resolved async)
  uint16_t port = 22;
  std::string user = "root";
  std::string label;  ///< name for messages (e.g. the instance id); default: host

  // Authentication: private_key (in memory, e.g. the pool's ephemeral key) or identity_file.
  std::string private_key;    ///< OpenSSH "openssh-key-v1" or PEM text
  std::string identity_file;  ///< path to a private key file (used when private_key is empty)
  std::string passphrase;     ///< for an encrypted key; usually empty

  // Host key checking. pinned_host_keys, when given, replace the known_hosts lookup: the
  // server's key must be one of them ("ssh-ed25519 AAAA..." lines as a provider reports them).
  std::string known_hosts_file;
  HostKeyCheck host_key_check = HostKeyCheck::strict;
  std::vector<std::string> pinned_host_keys;

  // Timing, in seconds.
  double connect_timeout = 60;  ///< whole connect(): retries, handshake and auth included
  double attempt_timeout = 10;  ///< one TCP connect + SSH handshake attempt
  double retry_initial = 0.1;   ///< first pause between attempts; doubles up to retry_max
  double retry_max = 2.0;
  /// With no bytes from the server for this long, send an SSH keepalive (0 = never).
  /// Rounded up to whole seconds, at least 2: libssh2 1.10 counts in time() seconds and turns 1
  /// into 2.
  double keepalive_interval = 15;
  /// The session is lost after (interval * count + 1) seconds without a byte from the server.
  int keepalive_count = 3;
};

/// Per exec channel settings.
struct ExecOptions {
  /// The channel fails (on_exit with timed_out) if the command has not exited by then. 0 = none.
  double timeout = 0;
  /// SSH receive window: bytes the server may send before we acknowledge. Large windows keep a
  /// fast link busy; it also bounds what libssh2 buffers for this channel.
  uint32_t window_size = 16u << 20;
  uint32_t packet_size = 32768;  ///< max SSH packet payload we accept (OpenSSH sends <= 32 KiB)
};

/// How an exec channel ended. Exactly one of: exit code, signal, error.
struct ExitInfo {
  int code = -1;       ///< exit status of the remote command, -1 if none
  std::string signal;  ///< "TERM", "KILL", ... when the command died of a signal
  /// Transport-side failure: exec refused, session lost, timeout, closed by caller.
  std::string error;
  bool timed_out = false;

  bool ok() const { return error.empty() && signal.empty() && code == 0; }
};

/// Result of Session::run.
struct RunResult {
  ExitInfo exit;
  std::string out;  ///< stdout (truncated at RunOptions::max_output)
  std::string err;  ///< stderr (truncated at RunOptions::max_output)
  bool truncated = false;
};

struct RunOptions {
  double timeout = 120;  ///< seconds; 0 = none
  std::string input;     ///< written to the command's stdin, then EOF
  size_t max_output = size_t(64) << 20;
};

struct UploadOptions {
  int mode = 0644;       ///< permission bits of the remote file
  double timeout = 600;  ///< seconds; 0 = none
};

/// Counters for one session (bytes are on the wire, encrypted).
struct SessionStats {
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int connect_attempts = 0;
  int keepalives_sent = 0;
};

}  // namespace skyhost::ssh
