// SessionCore, once TCP is up: SSH handshake with our algorithm preferences, host key check
// (known_hosts or pinned keys), public key authentication.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "host/ssh/crypto_util.hpp"
#include "host/ssh/keygen.hpp"
#include "host/ssh/known_hosts.hpp"
#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {
namespace {

constexpr const char* kKexPrefs =
    "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
    "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
    "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
// AES-GCM / ChaCha20 first where libssh2 has them (1.11+); with 1.10 this leaves aes128-ctr,
// the fastest it has (AES-NI).
constexpr const char* kCipherPrefs =
    "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-ctr,"
    "aes192-ctr,aes256-ctr";
constexpr const char* kMacPrefs =
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,"
    "hmac-sha1";

std::string strip_brackets(const std::string& h) {
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') return h.substr(1, h.size() - 2);
  return h;
}

// Socket-level trouble during the handshake means "try again": the server may still be booting.
bool retryable_ssh_error(int rc) {
  switch (rc) {
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_TIMEOUT:
      return true;
    default:
      return false;
  }
}

// Sets a method preference, keeping only names this libssh2 supports: 1.10 strips unknown
// names itself with an overlapping memcpy (undefined behaviour, caught by ASan).
void set_prefs(LIBSSH2_SESSION* s, int type, const std::string& wanted) {
  const char** algs = nullptr;
  int n = libssh2_session_supported_algs(s, type, &algs);
  std::string keep;
  std::istringstream in(wanted);
  for (std::string name; std::getline(in, name, ',');) {
    for (int i = 0; i < n; ++i) {
      if (name == algs[i]) {
        keep += (keep.empty() ? "" : ",") + name;
        break;
      }
    }
  }
  if (algs) libssh2_free(s, algs);
  if (!keep.empty()) libssh2_session_method_pref(s, type, keep.c_str());
}

}  // namespace

// ---------------------------------------------------------------- SSH handshake

bool SessionCore::new_ssh_session() {
  ssh_ = libssh2_session_init_ex(nullptr, nullptr, nullptr, this);
  if (!ssh_) return false;
  libssh2_session_set_blocking(ssh_, 0);
  libssh2_session_callback_set(ssh_, LIBSSH2_CALLBACK_SEND, reinterpret_cast<void*>(&send_cb));
  libssh2_session_callback_set(ssh_, LIBSSH2_CALLBACK_RECV, reinterpret_cast<void*>(&recv_cb));
  libssh2_session_banner_set(ssh_, "SSH-2.0-skyhost");
  set_prefs(ssh_, LIBSSH2_METHOD_KEX, kKexPrefs);
  set_prefs(ssh_, LIBSSH2_METHOD_CRYPT_CS, kCipherPrefs);
  set_prefs(ssh_, LIBSSH2_METHOD_CRYPT_SC, kCipherPrefs);
  set_prefs(ssh_, LIBSSH2_METHOD_MAC_CS, kMacPrefs);
  set_prefs(ssh_, LIBSSH2_METHOD_MAC_SC, kMacPrefs);
  // offer first the key types we can check: pinned ones, or those known_hosts has for the host
  std::vector<std::string> first;
  for (auto& line : opt_.pinned_host_keys) {
    std::istringstream in(line);
    std::string type;
    if (in >> type) first.push_back(type);
  }
  if (first.empty() && !opt_.known_hosts_file.empty()) {
    first = known_host_key_types(opt_.known_hosts_file, strip_brackets(opt_.host), opt_.port);
  }
  set_prefs(ssh_, LIBSSH2_METHOD_HOSTKEY, host_key_method_prefs(first));
  return true;
}

void SessionCore::step_handshake() {
  if (hs_ == Hs::banner) {
    int rc = libssh2_session_handshake(ssh_, fd_);
    if (rc == LIBSSH2_ERROR_EAGAIN) return;
    if (rc != 0) {
      attempt_failed(ssh_error("SSH handshake failed"),
                     retryable_ssh_error(rc) || io_eof_ || io_errno_);
      return;
    }
    std::string error;
    if (!check_host_key(error)) {
      attempt_failed(error, false);
      return;
    }
    hs_ = Hs::auth;
    auto method = [this](int type) {
      const char* m = libssh2_session_methods(ssh_, type);
      return std::string(m ? m : "?");
    };
    algorithms =
        "kex=" + method(LIBSSH2_METHOD_KEX) + " hostkey=" + method(LIBSSH2_METHOD_HOSTKEY) +
        " cipher=" + method(LIBSSH2_METHOD_CRYPT_CS) + " mac=" + method(LIBSSH2_METHOD_MAC_CS);
  }
  int rc = authenticate();
  if (rc == LIBSSH2_ERROR_EAGAIN) return;
  if (rc != 0) {
    bool io = io_eof_ || io_errno_ || retryable_ssh_error(rc);
    attempt_failed(
        io ? ssh_error("connection failed during authentication") : auth_failure_message(), io);
    return;
  }
  state = SessionState::ready;
  pump_again_ = true;  // open the channels queued while connecting
  last_rx_ = uv_now(loop_);
  libssh2_keepalive_config(ssh_, 1, static_cast<unsigned>(keepalive_period_ms() / 1000));
  connect_finished(Status{});
}

bool SessionCore::check_host_key(std::string& error) {
  size_t len = 0;
  int type = 0;
  const char* raw = libssh2_session_hostkey(ssh_, &len, &type);
  if (!raw) {
    error = ssh_error("no host key from the server");
    return false;
  }
  HostKey key{type, std::string(raw, len)};
  host_key_line = key.line();
  host_key_fp = key.fingerprint();
  std::string what = key.type_name() + " key " + host_key_fp;
  std::string pre = "host key verification failed: ";
  if (!opt_.pinned_host_keys.empty()) {
    if (matches_pinned(key, opt_.pinned_host_keys)) return true;
    error = pre + "the server's " + what + " is not one of the " +
            std::to_string(opt_.pinned_host_keys.size()) +
            " key(s) reported for this machine; refusing to connect (possible interception)";
    return false;
  }
  if (opt_.known_hosts_file.empty()) {
    error = pre + "no known_hosts file and no pinned host key to check the server's " + what;
    return false;
  }
  const std::string& file = opt_.known_hosts_file;
  std::string host = strip_brackets(opt_.host);
  std::string name = known_hosts_name(host, opt_.port);
  KnownHostResult r = check_known_host(ssh_, file, host, opt_.port, key);
  switch (r.verdict) {
    case KnownHostVerdict::match:
      return true;
    case KnownHostVerdict::unknown:
      if (opt_.host_key_check == HostKeyCheck::accept_new) {
        std::string err = append_known_host(file, host, opt_.port, key);
        if (err.empty()) return true;
        error = pre + "cannot record the new host: " + err;
        return false;
      }
      error = pre + name + " is not in " + file + " (strict checking); the server offers " + what +
              ". Add it to the file, or connect with accept-new to record it";
      return false;
    case KnownHostVerdict::changed: {
      std::string where = file;
      for (size_t i = 0; i < r.lines.size(); ++i) {
        where += (i == 0 ? ":" : ",") + std::to_string(r.lines[i]);
      }
      error = pre + "REMOTE HOST KEY CHANGED for " + name + ": the server offers " + what +
              " but " + where +
              " records a different key. The machine may have been reinstalled (address "
              "reused) or someone may be intercepting the connection. If the change is "
              "expected, remove the old entry with: ssh-keygen -R '" +
              name + "' -f " + file;
      return false;
    }
    case KnownHostVerdict::error:
      error = pre + r.detail;
      return false;
  }
  return false;
}

int SessionCore::authenticate() {
  const std::string& user = opt_.user;
  const char* pass = opt_.passphrase.empty() ? nullptr : opt_.passphrase.c_str();
  if (!opt_.private_key.empty()) {
    return libssh2_userauth_publickey_frommemory(ssh_, user.data(), user.size(), nullptr, 0,
                                                 opt_.private_key.data(), opt_.private_key.size(),
                                                 pass);
  }
  if (!opt_.identity_file.empty()) {
    return libssh2_userauth_publickey_fromfile_ex(ssh_, user.data(),
                                                  static_cast<unsigned>(user.size()), nullptr,
                                                  opt_.identity_file.c_str(), pass);
  }
  return libssh2_session_last_errno(ssh_) == 0 ? LIBSSH2_ERROR_AUTHENTICATION_FAILED
                                               : libssh2_session_last_errno(ssh_);
}

std::string SessionCore::auth_failure_message() {
  std::string key_text = opt_.private_key;
  std::string source = "the in-memory key";
  if (key_text.empty()) {
    source = opt_.identity_file.empty() ? "no key" : opt_.identity_file;
    std::ifstream in(opt_.identity_file);
    std::stringstream ss;
    ss << in.rdbuf();
    key_text = ss.str();
  }
  std::string fp;
  if (auto blob = openssh_public_blob(key_text)) fp = " " + fingerprint_sha256(*blob);
  std::string msg = "authentication as " + opt_.user + " failed: ";
  if (opt_.private_key.empty() && opt_.identity_file.empty()) {
    return msg + "no private key or identity file given";
  }
  char* detail = nullptr;
  libssh2_session_last_error(ssh_, &detail, nullptr, 0);
  return msg + "the server did not accept " + source + fp + " (" +
         (detail && *detail ? detail : "refused") +
         "); is its public key in the host's authorized_keys for " + opt_.user + "?";
}

}  // namespace skyhost::ssh
