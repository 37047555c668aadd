#include "host/ssh/known_hosts.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "host/ssh/crypto_util.hpp"

namespace skyhost::ssh {
namespace {

struct Line {
  int number = 0;
  std::string hosts;  // first field
  std::string type;   // key type
  std::string key;    // base64
  std::string text;   // the whole line
};

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::vector<Line> read_lines(const std::string& file) {
  std::vector<Line> out;
  std::ifstream in(file);
  std::string text;
  int n = 0;
  while (std::getline(in, text)) {
    ++n;
    auto f = split_ws(text);
    if (f.empty() || f[0][0] == '#') continue;
    if (f[0][0] == '@') continue;  // @cert-authority / @revoked: not host entries we match
    if (f.size() < 3) continue;
    out.push_back(Line{n, f[0], f[1], f[2], text});
  }
  return out;
}

// OpenSSH host patterns know only '*' and '?' ('[' is literal: "[host]:port").
bool glob(const char* p, const char* s) {
  for (; *p; ++p, ++s) {
    if (*p == '*') {
      for (const char* t = s;; ++t) {
        if (glob(p + 1, t)) return true;
        if (!*t) return false;
      }
    }
    if (!*s || (*p != '?' && *p != *s)) return false;
  }
  return !*s;
}

// One comma-separated host pattern against a name: plain, wildcard or hashed (|1|salt|hash).
bool pattern_matches(const std::string& pat, const std::string& name) {
  if (pat.rfind("|1|", 0) == 0) {
    auto bar = pat.find('|', 3);
    if (bar == std::string::npos) return false;
    auto salt = base64_decode(pat.substr(3, bar - 3));
    auto hash = base64_decode(pat.substr(bar + 1));
    return salt && hash && hmac_sha1(*salt, name) == *hash;
  }
  return glob(pat.c_str(), name.c_str());
}

bool hosts_match(const std::string& field, const std::string& name) {
  bool matched = false;
  size_t start = 0;
  while (start <= field.size()) {
    size_t comma = field.find(',', start);
    std::string pat =
        field.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!pat.empty() && pat[0] == '!') {
      if (pattern_matches(pat.substr(1), name)) return false;  // negation wins
    } else if (!pat.empty() && pattern_matches(pat, name)) {
      matched = true;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return matched;
}

int knownhost_key_bits(int hostkey_type) {
  switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
      return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
      return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
#ifdef LIBSSH2_KNOWNHOST_KEY_ECDSA_256
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
      return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
      return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
      return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
#endif
#ifdef LIBSSH2_KNOWNHOST_KEY_ED25519
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
      return LIBSSH2_KNOWNHOST_KEY_ED25519;
#endif
    default:
      return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
  }
}

struct KnownHostsDeleter {
  void operator()(LIBSSH2_KNOWNHOSTS* k) const { libssh2_knownhost_free(k); }
};

}  // namespace

std::string HostKey::type_name() const {
  switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
      return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS:
      return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
      return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
      return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
      return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
      return "ssh-ed25519";
    default:
      return "unknown";
  }
}

std::string HostKey::line() const {
  return type_name() + " " + base64_encode(blob);
}

std::string HostKey::fingerprint() const {
  return fingerprint_sha256(blob);
}

std::string known_hosts_name(const std::string& host, uint16_t port) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return port == 22 ? h : "[" + h + "]:" + std::to_string(port);
}

KnownHostResult check_known_host(LIBSSH2_SESSION* session, const std::string& file,
                                 const std::string& host, uint16_t port, const HostKey& key) {
  KnownHostResult r;
  std::unique_ptr<LIBSSH2_KNOWNHOSTS, KnownHostsDeleter> kh(libssh2_knownhost_init(session));
  if (!kh) {
    r.detail = "libssh2_knownhost_init failed";
    return r;
  }
  struct stat st;
  if (::stat(file.c_str(), &st) == 0) {
    std::ifstream in(file);
    if (!in) {
      r.detail = "cannot read " + file + ": " + std::strerror(errno);
      return r;
    }
    // line by line, so that one entry libssh2 cannot parse doesn't hide the rest
    std::string text;
    while (std::getline(in, text)) {
      text.push_back('\n');
      libssh2_knownhost_readline(kh.get(), text.data(), text.size(),
                                 LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    }
  } else if (errno != ENOENT) {
    r.detail = "cannot read " + file + ": " + std::strerror(errno);
    return r;
  }
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  struct libssh2_knownhost* found = nullptr;
  int mask =
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_key_bits(key.type);
  int rc = libssh2_knownhost_checkp(kh.get(), h.c_str(), port, key.blob.data(), key.blob.size(),
                                    mask, &found);
  switch (rc) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      r.verdict = KnownHostVerdict::match;
      break;
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
      r.verdict = KnownHostVerdict::unknown;
      break;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH: {
      r.verdict = KnownHostVerdict::changed;
      std::string name = known_hosts_name(h, port);
      std::string b64 = base64_encode(key.blob);
      for (auto& line : read_lines(file)) {
        if (line.type == key.type_name() && line.key != b64 && hosts_match(line.hosts, name)) {
          r.lines.push_back(line.number);
        }
      }
      break;
    }
    default:
      r.detail = "libssh2_knownhost_checkp failed";
  }
  return r;
}

std::string append_known_host(const std::string& file, const std::string& host, uint16_t port,
                              const HostKey& key) {
  int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot open " + file + " for appending: " + std::strerror(errno);
  std::string line = known_hosts_name(host, port) + " " + key.line() + "\n";
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    // don't glue our entry to a last line that lacks its newline
    char last = '\n';
    int rfd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
      if (pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
      ::close(rfd);
    }
    if (last != '\n') line.insert(line.begin(), '\n');
  }
  // one write() of one short line with O_APPEND: concurrent appends don't interleave
  ssize_t n = ::write(fd, line.data(), line.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return "cannot append to " + file + ": " + std::strerror(n < 0 ? err : EIO);
  }
  return {};
}

std::vector<std::string> known_host_key_types(const std::string& file, const std::string& host,
                                              uint16_t port) {
  std::vector<std::string> out;
  std::string name = known_hosts_name(host, port);
  for (auto& line : read_lines(file)) {
    if (hosts_match(line.hosts, name) &&
        std::find(out.begin(), out.end(), line.type) == out.end()) {
      out.push_back(line.type);
    }
  }
  return out;
}

bool matches_pinned(const HostKey& key, const std::vector<std::string>& pinned) {
  for (auto& p : pinned) {
    auto f = split_ws(p);
    if (f.size() < 2) continue;
    auto blob = base64_decode(f[1]);
    if (blob && *blob == key.blob) return true;
  }
  return false;
}

std::string host_key_method_prefs(const std::vector<std::string>& first) {
  static const char* defaults[] = {"ssh-ed25519",
                                   "ecdsa-sha2-nistp256",
                                   "ecdsa-sha2-nistp384",
                                   "ecdsa-sha2-nistp521",
                                   "rsa-sha2-512",
                                   "rsa-sha2-256",
                                   "ssh-rsa"};
  std::vector<std::string> order;
  for (auto& t : first) {
    if (std::find(order.begin(), order.end(), t) == order.end()) order.push_back(t);
  }
  for (auto* t : defaults) {
    if (std::find(order.begin(), order.end(), t) == order.end()) order.push_back(t);
  }
  std::string out;
  for (auto& t : order) out += (out.empty() ? "" : ",") + t;
  return out;
}

}  // namespace skyhost::ssh
