#include "host/transfer/hash_cache.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "host/transfer/transfer_util.hpp"

namespace skyhost::tree {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMagic = "skyhost-hash-cache 1 ";

std::string sha256_of(std::string_view s) {
  transfer_detail::Digest d;
  d.update(s);
  return d.hex();
}

bool is_hex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

std::string encode_cache(const HashCache& c) {
  std::string body;
  for (const auto& [path, e] : c) {
    body += e.hash + " " + e.key;
    body += '\0';
    body += path;
    body += '\0';
  }
  return std::string(kMagic) + std::to_string(body.size()) + " " + sha256_of(body) + "\n" + body;
}

bool decode_cache(std::string_view text, HashCache& out) {
  out.clear();
  size_t nl = text.find('\n');
  if (!text.starts_with(kMagic) || nl == std::string_view::npos) return false;
  std::string_view head = text.substr(kMagic.size(), nl - kMagic.size());
  size_t sp = head.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string_view body = text.substr(nl + 1);
  if (head.substr(0, sp) != std::to_string(body.size()) || !is_hex64(head.substr(sp + 1)) ||
      sha256_of(body) != head.substr(sp + 1))
    return false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t z1 = body.find('\0', pos);
    size_t z2 = z1 == std::string_view::npos ? z1 : body.find('\0', z1 + 1);
    if (z2 == std::string_view::npos || z1 - pos < 66 || body[pos + 64] != ' ') {
      out.clear();
      return false;
    }
    CacheEntry e{std::string(body.substr(pos + 65, z1 - pos - 65)),
                 std::string(body.substr(pos, 64))};
    if (!is_hex64(e.hash)) {
      out.clear();
      return false;
    }
    out[std::string(body.substr(z1 + 1, z2 - z1 - 1))] = std::move(e);
    pos = z2 + 1;
  }
  return true;
}

std::vector<std::string> from_cache(const HashCache& c, Manifest& m,
                                    const std::vector<std::string>& paths) {
  std::vector<std::string> rest;
  for (const auto& p : paths) {
    Entry& e = m.at(p);
    auto it = c.find(p);
    if (e.type == 'f' && !e.key.empty() && it != c.end() && it->second.key == e.key)
      e.hash = it->second.hash;
    else
      rest.push_back(p);
  }
  return rest;
}

HashCache cacheable(const Manifest& m, int64_t mark_ns) {
  HashCache c;
  for (const auto& [path, e] : m)
    if (e.type == 'f' && !e.hash.empty() && !e.key.empty() && e.ctime_ns < mark_ns)
      c[path] = {e.key, e.hash};
  return c;
}

HashCache cache_after(const HashCache& before, const Plan& p, const Manifest& src,
                      const Manifest& after) {
  HashCache c;
  auto mark = after.find(std::string(kMarkName));
  if (mark == after.end() || mark->second.type != 'f') return c;
  std::set<std::string> sent(p.send.begin(), p.send.end()),
      touched(p.chmods.begin(), p.chmods.end());
  for (const auto& cp : p.copies) touched.insert(cp.to);
  for (const auto& [path, e] : after) {
    auto s = src.find(path);
    if (e.type != 'f' || e.key.empty() || own_name(path) || s == src.end() ||
        s->second.type != 'f' || s->second.size != e.size || e.ctime_ns >= mark->second.ctime_ns)
      continue;
    if (sent.count(path)) {
      if (e.mtime_ns == 0) c[path] = {e.key, s->second.hash};
    } else if (!touched.count(path)) {
      auto b = before.find(path);
      if (b != before.end() && b->second.key == e.key && b->second.hash == s->second.hash)
        c[path] = b->second;
    }
  }
  return c;
}

int64_t clock_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string local_cache_path(const std::string& root) {
  std::string dir;
  if (const char* d = std::getenv("SKYHOST_STATE_DIR"); d != nullptr && *d != '\0') {
    dir = d;
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      const passwd* pw = getpwuid(getuid());
      home = pw != nullptr ? pw->pw_dir : "/tmp";
    }
    dir = std::string(home) + "/.skyhost";
  }
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec).lexically_normal();
  return dir + "/hash-cache/" + sha256_of(abs.string());
}

namespace {

HashCache load(const std::string& path) {
  HashCache c;
  std::ifstream in(path, std::ios::binary);
  if (!in) return c;
  std::stringstream ss;
  ss << in.rdbuf();
  decode_cache(ss.str(), c);  // unreadable: empty, everything is hashed
  return c;
}

// Written whole under another name, then renamed: a reader sees the old cache or the new one.
// A cache that cannot be saved only costs hashing next time.
void save(const std::string& path, const std::string& bytes) {
  std::error_code ec;
  fs::path dir = fs::path(path).parent_path();
  fs::create_directories(dir, ec);
  fs::permissions(dir.parent_path(), fs::perms::owner_all, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  // A cache no sync has used for 30 days goes (its directory was likely temporary): the caches
  // of every directory ever synced would otherwise pile up.
  auto old = fs::file_time_type::clock::now() - std::chrono::hours(24 * 30);
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->last_write_time(ec) < old && !ec) fs::remove(it->path(), ec);
  std::string tmp = path + ".XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return;
  bool ok = true;
  for (size_t off = 0; ok && off < bytes.size();) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    ok = n > 0;
    off += n > 0 ? static_cast<size_t>(n) : 0;
  }
  ok = close(fd) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
}

}  // namespace

std::string hash_cached(const std::string& root, Manifest& m, const std::vector<std::string>& paths,
                        int64_t scanned_ns, HashCount& count) {
  std::string path = local_cache_path(root);
  HashCache old = load(path);
  std::vector<std::string> rest = from_cache(old, m, paths);
  for (const auto& p : rest) {
    count.files++;
    count.bytes += m.at(p).size;
  }
  if (std::string err = hash_files(root, m, rest); !err.empty()) return err;
  // Files of `root` not in `paths` keep their entries if unchanged (a sync may hash only some).
  HashCache now = cacheable(m, scanned_ns - 2000000000);
  for (const auto& [p, e] : old)
    if (auto it = m.find(p); !now.count(p) && it != m.end() && it->second.key == e.key) now[p] = e;
  if (now.size() != old.size() || encode_cache(now) != encode_cache(old))
    save(path, encode_cache(now));
  return "";
}

}  // namespace skyhost::tree
