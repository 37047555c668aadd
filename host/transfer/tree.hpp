// Directory trees for pool:put(dir): what a tree holds (a manifest), what the node's listing of
// its copy says, and the plan that turns one into the other. Files are compared by content
// (sha256), as rsync does with --checksum: a second sync moves only what changed, and a file
// that moved (renamed, copied) is copied on the node rather than sent again.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace skyhost::tree {

/// One entry of a tree, by its path relative to the tree's root ("a/b.txt", no "." or "..").
struct Entry {
  char type = 'f';     ///< 'f' file, 'd' directory, 'l' symbolic link
  uint32_t mode = 0;   ///< permission bits (07777)
  uint64_t size = 0;   ///< files only
  std::string hash;    ///< files only: sha256, lower-case hex ("" until known)
  std::string target;  ///< links only
  /// Files only, where known: "SIZE MTIME CTIME INODE DEVICE" as stat or find gave them, the key
  /// of the hash caches (hash_cache.hpp); its change and modification times in nanoseconds.
  std::string key;
  int64_t ctime_ns = 0, mtime_ns = 0;
};

using Manifest = std::map<std::string, Entry>;

inline constexpr std::string_view kCacheName = ".skyhost-sync.cache";
inline constexpr std::string_view kMarkName = ".skyhost-sync.mark";

/// The names the sync keeps at the top of a tree for itself (its archive, staging area, hash
/// cache and mark): never entries of a tree, on either side.
bool own_name(std::string_view rel);

/// Reads the local tree under `root` (not following symbolic links; other kinds of files, such
/// as sockets, are left out, and so are own_name's), hashing its files if `hash`. Returns "" or
/// an error naming the path.
std::string scan(const std::string& root, Manifest& out, bool hash = true);

/// Hashes the files `paths` of `m` (relative to `root`). Returns "" or an error.
std::string hash_files(const std::string& root, Manifest& m, const std::vector<std::string>& paths);

/// Parses the node's listing of a tree: records "TYPE MODE SIZE PATH\0TARGET\0" as
/// `find . -mindepth 1 -printf '%y %m %s %P\0%l\0'` prints them. Types other than f, d and l are
/// kept as 'o' (they are in the way of whatever the source has there). Bytes from a node are
/// not trusted: a malformed record, a path with "." or ".." parts or a leading "/", or an entry
/// whose parent directory was not listed before it, makes the whole listing an error. With
/// `with_stat`, each head is "TYPE MODE SIZE MTIME CTIME INODE DEVICE PATH" (find's
/// '%y %m %s %T@ %C@ %i %D %P'), and files get their Entry::key.
std::string parse_listing(std::string_view text, Manifest& out, bool with_stat = false);

/// The listing with stat fields sync_util.hpp's cached_listing_command asks for, and what the node
/// printed after it: `text` is cut at the first record whose head is exactly `marker`; `rest` is
/// what follows it (empty if no such record).
std::string_view cut_listing(std::string_view text, std::string_view marker,
                             std::string_view& rest);

/// Adds the hashes `sha256sum -z` printed ("HEX  PATH\0" per file) to the files of `m`. A path
/// the listing did not name, or a malformed record, is an error.
std::string parse_hashes(std::string_view text, Manifest& m);

/// What to do on the destination so that it holds the source's tree. Steps run in this order:
/// copies (from files already there, into a staging area), removals, directories, sends,
/// moves of the staged copies, links, then modes.
struct Plan {
  struct Copy {
    std::string from, to;
  };
  std::vector<Copy> copies;         ///< same content already on the destination
  std::vector<std::string> remove;  ///< not in the source, or of another type there
  std::vector<std::string> mkdirs;  ///< parents before children
  std::vector<std::string> send;    ///< files whose content the destination lacks
  std::vector<std::string> links;   ///< (re)made from the source's target
  std::vector<std::string> chmods;  ///< entries whose mode differs (set after the rest)
  uint64_t send_bytes = 0;
  bool empty() const {
    return copies.empty() && remove.empty() && mkdirs.empty() && send.empty() && links.empty() &&
           chmods.empty();
  }
};

/// The plan from `dst` (what is there; its files hashed) to `src`.
Plan plan(const Manifest& src, const Manifest& dst);

/// Paths of `m`'s files whose size equals that of some file of `src`: the only ones worth
/// hashing on the destination (no other can match a source file's content).
std::vector<std::string> worth_hashing(const Manifest& src, const Manifest& m);

/// Writes a tar archive (POSIX ustar, GNU long names) of the files `paths` under `root`, with
/// the modes of `src`, to `out_path`. Returns "" or an error.
/// A file whose stat key (Entry::key) is no longer the scan's once read is added to `changed`:
/// what was sent may not be what was hashed.
std::string write_tar(const std::string& root, const Manifest& src,
                      const std::vector<std::string>& paths, const std::string& out_path,
                      std::vector<std::string>* changed = nullptr);

}  // namespace skyhost::tree
