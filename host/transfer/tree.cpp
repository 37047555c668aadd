#include "host/transfer/tree.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include "host/transfer/transfer_util.hpp"

namespace skyhost::tree {

namespace fs = std::filesystem;

namespace {

// A relative path with no empty, "." or ".." parts.
bool safe_path(std::string_view p) {
  if (p.empty() || p.size() > 4096 || p.front() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return p.find('\0') == std::string_view::npos;
}

bool parse_number(std::string_view s, int base, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d = c - '0';
    if (d < 0 || d >= base) return false;
    if (v > (UINT64_MAX - d) / base) return false;
    v = v * base + d;
  }
  out = v;
  return true;
}

// Seconds since the epoch with an optional fraction ("1700000000.25", "-1.5"; find's %T@, or
// the host's own) as nanoseconds.
bool parse_time(std::string_view s, int64_t& ns) {
  bool neg = s.starts_with('-');
  if (neg) s.remove_prefix(1);
  size_t dot = s.find('.');
  std::string_view frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  uint64_t sec = 0, f = 0;
  if (!parse_number(s.substr(0, dot), 10, sec) || sec > 9000000000ull) return false;
  if (frac.find_first_not_of("0123456789") != std::string_view::npos) return false;
  if (!frac.empty() && !parse_number(frac.substr(0, 9), 10, f)) return false;
  for (size_t i = std::min<size_t>(frac.size(), 9); i < 9; i++) f *= 10;
  ns = static_cast<int64_t>(sec * 1000000000ull + f);
  if (neg) ns = -ns;
  return true;
}

std::string stamp(const timespec& t) {
  char b[48];
  std::snprintf(b, sizeof b, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return b;
}

std::string key_of(const struct stat& st) {
  return std::to_string(st.st_size) + " " + stamp(st.st_mtim) + " " + stamp(st.st_ctim) + " " +
         std::to_string(st.st_ino) + " " + std::to_string(st.st_dev);
}

}  // namespace

bool own_name(std::string_view rel) {
  for (std::string_view n : {std::string_view(".skyhost-sync.tar"), kCacheName, kMarkName,
                             std::string_view(".skyhost-sync.cache.tmp")})
    if (rel == n) return true;
  return rel == ".skyhost-stage" || rel.starts_with(".skyhost-stage/");
}

std::string scan(const std::string& root, Manifest& out, bool hash) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(root, ec))) return root + " is not a directory";
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return "cannot read " + root + ": " + ec.message();
  for (; it != end; it.increment(ec)) {
    if (ec) return "cannot read " + root + ": " + ec.message();
    const fs::path& p = it->path();
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0)
      return "cannot read " + p.string() + ": " + std::strerror(errno);
    Entry e;
    e.mode = st.st_mode & 07777;
    std::string rel = p.lexically_relative(root).string();
    if (own_name(rel)) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      e.type = 'f';
      e.size = static_cast<uint64_t>(st.st_size);
      e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      e.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
      e.key = key_of(st);
      if (hash)
        if (std::string err = transfer_detail::sha256_file(p.string(), e.hash); !err.empty())
          return "cannot read " + p.string() + ": " + err;
    } else if (S_ISDIR(st.st_mode)) {
      e.type = 'd';
    } else if (S_ISLNK(st.st_mode)) {
      e.type = 'l';
      e.target = fs::read_symlink(p, ec).string();
      if (ec) return "cannot read the link " + p.string() + ": " + ec.message();
    } else {
      continue;
    }
    out[rel] = std::move(e);
  }
  return "";
}

std::string hash_files(const std::string& root, Manifest& m,
                       const std::vector<std::string>& paths) {
  for (const auto& p : paths)
    if (std::string err = transfer_detail::sha256_file(root + "/" + p, m.at(p).hash); !err.empty())
      return "cannot read " + root + "/" + p + ": " + err;
  return "";
}

std::string_view cut_listing(std::string_view text, std::string_view marker,
                             std::string_view& rest) {
  rest = {};
  size_t pos = 0;
  while (pos < text.size()) {
    size_t z1 = text.find('\0', pos);
    if (z1 == std::string_view::npos) break;
    if (text.substr(pos, z1 - pos) == marker) {
      rest = text.substr(z1 + 1);
      return text.substr(0, pos);
    }
    size_t z2 = text.find('\0', z1 + 1);
    if (z2 == std::string_view::npos) break;
    pos = z2 + 1;
  }
  return text;
}

std::string parse_listing(std::string_view text, Manifest& out, bool with_stat) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t z1 = text.find('\0', pos);
    if (z1 == std::string_view::npos) return "a record of the listing is cut short";
    size_t z2 = text.find('\0', z1 + 1);
    if (z2 == std::string_view::npos) return "a record of the listing has no link target field";
    std::string_view head = text.substr(pos, z1 - pos);
    std::string_view target = text.substr(z1 + 1, z2 - z1 - 1);
    pos = z2 + 1;
    // The fields before the path: type, mode, size[, mtime, ctime, inode, device].
    std::string_view f[7];
    size_t nf = with_stat ? 7 : 3, at = 0;
    for (size_t i = 0; i < nf; i++) {
      size_t sp = head.find(' ', at);
      if (sp == std::string_view::npos) return "a record of the listing is malformed";
      f[i] = head.substr(at, sp - at);
      at = sp + 1;
    }
    if (f[0].size() != 1) return "a record of the listing is malformed";
    Entry e;
    char t = f[0][0];
    e.type = (t == 'f' || t == 'd' || t == 'l') ? t : 'o';
    uint64_t mode = 0, size = 0, num = 0;
    if (!parse_number(f[1], 8, mode) || mode > 07777 || !parse_number(f[2], 10, size))
      return "a record of the listing has a bad mode or size";
    if (with_stat && (!parse_time(f[3], e.mtime_ns) || !parse_time(f[4], e.ctime_ns) ||
                      !parse_number(f[5], 10, num) || !parse_number(f[6], 10, num)))
      return "a record of the listing has a bad time, inode or device";
    e.mode = static_cast<uint32_t>(mode);
    if (e.type == 'f') e.size = size;
    if (e.type == 'f' && with_stat) {
      size_t k = static_cast<size_t>(f[2].data() - head.data());  // "SIZE ... DEVICE"
      e.key = std::string(head.substr(k, at - 1 - k));
    }
    std::string_view path = head.substr(at);
    if (!safe_path(path)) return "the listing names an unsafe path";
    if (e.type == 'l') e.target = std::string(target);
    // find lists a directory before what it holds: anything else (a file "under" a link) would
    // have the sync write through that link.
    if (size_t slash = path.rfind('/'); slash != std::string_view::npos) {
      auto parent = out.find(std::string(path.substr(0, slash)));
      if (parent == out.end() || parent->second.type != 'd')
        return "the listing names an entry whose parent is not a directory listed before it";
    }
    if (!out.emplace(std::string(path), std::move(e)).second)
      return "the listing names a path twice";
  }
  return "";
}

std::string parse_hashes(std::string_view text, Manifest& m) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t z = text.find('\0', pos);
    if (z == std::string_view::npos) return "a hash record is cut short";
    std::string_view rec = text.substr(pos, z - pos);
    pos = z + 1;
    if (rec.size() < 67 || rec[64] != ' ' || (rec[65] != ' ' && rec[65] != '*'))
      return "a hash record is malformed";
    std::string hex(rec.substr(0, 64));
    if (hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      return "a hash record is malformed";
    std::string_view path = rec.substr(66);
    if (path.starts_with("./")) path.remove_prefix(2);
    auto it = m.find(std::string(path));
    if (it == m.end() || it->second.type != 'f') return "a hash names a file the listing did not";
    it->second.hash = std::move(hex);
  }
  return "";
}

Plan plan(const Manifest& src, const Manifest& dst) {
  Plan p;
  // Content already on the destination, by hash: where a moved or copied file can come from.
  std::unordered_map<std::string, std::string> have;
  for (const auto& [path, e] : dst)
    if (e.type == 'f' && !e.hash.empty()) have.emplace(e.hash, path);
  for (const auto& [path, d] : dst) {
    auto it = src.find(path);
    if (it == src.end() || it->second.type != d.type) p.remove.push_back(path);
  }
  for (const auto& [path, s] : src) {
    auto it = dst.find(path);
    const Entry* d = (it != dst.end() && it->second.type == s.type) ? &it->second : nullptr;
    if (s.type == 'd') {
      if (d == nullptr) p.mkdirs.push_back(path);
    } else if (s.type == 'l') {
      if (d == nullptr || d->target != s.target) p.links.push_back(path);
      continue;  // a link's own mode means nothing on Linux
    } else if (d == nullptr || d->hash != s.hash || d->size != s.size) {
      auto h = have.find(s.hash);
      if (h != have.end()) {
        p.copies.push_back({h->second, path});
      } else {
        p.send.push_back(path);
        p.send_bytes += s.size;
      }
      p.chmods.push_back(path);
      continue;
    }
    if (d == nullptr || d->mode != s.mode) p.chmods.push_back(path);
  }
  // A link being replaced must go first (ln over a link to a directory would write into it).
  for (const auto& l : p.links)
    if (dst.count(l) && std::find(p.remove.begin(), p.remove.end(), l) == p.remove.end())
      p.remove.push_back(l);
  return p;
}

std::vector<std::string> worth_hashing(const Manifest& src, const Manifest& m) {
  std::set<uint64_t> sizes;
  for (const auto& [path, e] : src)
    if (e.type == 'f') sizes.insert(e.size);
  std::vector<std::string> out;
  for (const auto& [path, e] : m)
    if (e.type == 'f' && sizes.count(e.size)) out.push_back(path);
  return out;
}

namespace {

// `width - 1` octal digits and a NUL, as tar's numeric fields are.
void octal(char* field, size_t width, uint64_t v) {
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0; v >>= 3) field[i] = static_cast<char>('0' + (v & 7));
}

void header(std::string& out, const std::string& name, char type, uint32_t mode, uint64_t size) {
  char h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  octal(h + 100, 8, mode);
  octal(h + 108, 8, 0);
  octal(h + 116, 8, 0);
  octal(h + 124, 12, size);
  octal(h + 136, 12, 0);
  h[156] = type;
  std::memcpy(h + 257, "ustar  ", 8);  // GNU magic: long names as 'L' records
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  out.append(h, 512);
}

}  // namespace

std::string write_tar(const std::string& root, const Manifest& src,
                      const std::vector<std::string>& paths, const std::string& out_path,
                      std::vector<std::string>* changed) {
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (!out) return "cannot write " + out_path + ": " + std::strerror(errno);
  std::string buf(1 << 20, '\0');
  for (const auto& path : paths) {
    const Entry& e = src.at(path);
    std::string h;
    if (path.size() > 100) {
      header(h, "././@LongLink", 'L', 0, path.size() + 1);
      h.append(path);
      h.append(512 - path.size() % 512, '\0');
    }
    header(h, path, '0', e.mode, e.size);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    std::string full = root + "/" + path;
    std::ifstream in(full, std::ios::binary);
    if (!in) return "cannot read " + full + ": " + std::strerror(errno);
    uint64_t left = e.size;
    while (left > 0) {
      in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
      auto got = static_cast<uint64_t>(in.gcount());
      if (got == 0) return full + " changed while it was being sent (it is shorter now)";
      out.write(buf.data(), static_cast<std::streamsize>(got));
      left -= got;
    }
    struct stat st {};
    if (changed != nullptr && !e.key.empty() &&
        (lstat(full.c_str(), &st) != 0 || key_of(st) != e.key))
      changed->push_back(path);
    if (e.size % 512) out.write(buf.assign(512, '\0').data(), 512 - e.size % 512);
    buf.resize(1 << 20);
  }
  std::string tail(1024, '\0');
  out.write(tail.data(), 1024);
  out.close();
  if (!out) return "cannot write " + out_path;
  return "";
}

}  // namespace skyhost::tree
