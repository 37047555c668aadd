// Host key checking against OpenSSH known_hosts files (through libssh2's knownhost API) and
// against keys pinned by a provider.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <string>
#include <vector>

namespace skyhost::ssh {

/// A server host key as libssh2 reports it after the handshake.
struct HostKey {
  int type = LIBSSH2_HOSTKEY_TYPE_UNKNOWN;  ///< LIBSSH2_HOSTKEY_TYPE_*
  std::string blob;                         ///< SSH wire-format public key

  /// "ssh-ed25519", "ecdsa-sha2-nistp256", ...
  std::string type_name() const;
  /// OpenSSH line form: "ssh-ed25519 AAAA..."
  std::string line() const;
  /// "SHA256:..." as ssh-keygen -l prints it
  std::string fingerprint() const;
};

/// The name a host is recorded under: "host" for port 22, "[host]:port" otherwise.
std::string known_hosts_name(const std::string& host, uint16_t port);

enum class KnownHostVerdict { match, unknown, changed, error };

struct KnownHostResult {
  KnownHostVerdict verdict = KnownHostVerdict::error;
  std::vector<int> lines;  ///< 1-based lines holding a different key of this type (changed)
  std::string detail;      ///< why, for `error`
};

/// Looks `key` up for host:port in `file` (a missing file counts as empty). Lines libssh2
/// cannot parse (e.g. key types it does not know) are skipped rather than failing the check.
KnownHostResult check_known_host(LIBSSH2_SESSION* session, const std::string& file,
                                 const std::string& host, uint16_t port, const HostKey& key);

/// Appends "name type base64" for host:port to `file` (created 0600 if missing).
/// Returns an error message, empty on success.
std::string append_known_host(const std::string& file, const std::string& host, uint16_t port,
                              const HostKey& key);

/// Key types recorded for host:port in `file`, in file order (to prefer them in the handshake).
std::vector<std::string> known_host_key_types(const std::string& file, const std::string& host,
                                              uint16_t port);

/// True if `key` equals one of the OpenSSH key lines in `pinned` ("type base64 [comment]").
bool matches_pinned(const HostKey& key, const std::vector<std::string>& pinned);

/// Host key algorithm preference list for libssh2_session_method_pref: `first` types, then the
/// usual order.
std::string host_key_method_prefs(const std::vector<std::string>& first);

}  // namespace skyhost::ssh
