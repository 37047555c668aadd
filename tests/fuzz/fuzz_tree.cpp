// libFuzzer target: the parsers of a node's tree listing and of its sha256sum output
// (host/transfer/tree.cpp), which pool:put(dir) reads from a node, and the plan made from them.
// The first byte picks the split: listing, then hashes. Beyond not crashing, it checks what
// the parsers promise: every path accepted is relative, with no empty, "." or ".." part and a
// directory of the listing as its parent, and a
// hash accepted is 64 lower-case hex digits of a file the listing named. The same input is also
// read as a listing with stats followed by a node's hash cache (host/transfer/hash_cache.cpp).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "host/transfer/hash_cache.hpp"
#include "host/transfer/tree.hpp"

using namespace skyhost;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool safe(std::string_view p) {
  if (p.empty() || p.front() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t cut = std::min<size_t>(data[0] * 64u, in.size());
  tree::Manifest m;
  if (!tree::parse_listing(in.substr(0, cut), m).empty()) return 0;
  for (const auto& [path, e] : m) {
    check(safe(path));
    check(e.type == 'f' || e.type == 'd' || e.type == 'l' || e.type == 'o');
    check(e.mode <= 07777);
    if (size_t slash = path.rfind('/'); slash != std::string::npos) {
      auto parent = m.find(path.substr(0, slash));
      check(parent != m.end() && parent->second.type == 'd');
    }
  }
  if (tree::parse_hashes(in.substr(cut), m).empty()) {
    for (const auto& [path, e] : m)
      if (!e.hash.empty())
        check(e.type == 'f' && e.hash.size() == 64 &&
              e.hash.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  tree::Manifest src = m;
  for (auto& [path, e] : src) e.mode ^= 1;
  tree::Plan p = tree::plan(src, m);
  check(p.remove.empty() && p.send.empty());
  tree::plan(m, tree::Manifest{});
  tree::plan(tree::Manifest{}, m);
  // The listing with stats, and the node's hash cache printed after it (pool:put's listing):
  // paths as safe, a key on every file, and a cache taken only whole, with hex hashes.
  tree::Manifest ms;
  std::string_view rest;
  if (tree::parse_listing(tree::cut_listing(in, "#cache", rest), ms, true).empty())
    for (const auto& [path, e] : ms) check(safe(path) && (e.type != 'f' || !e.key.empty()));
  tree::HashCache c;
  if (tree::decode_cache(rest, c))
    for (const auto& [path, e] : c)
      check(e.hash.size() == 64 &&
            e.hash.find_first_not_of("0123456789abcdef") == std::string::npos);
  else
    check(c.empty());
  return 0;
}
