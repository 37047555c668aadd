// A cache of file hashes for directory syncs (tree.hpp), so that a second sync of an unchanged
// tree reads none of its files again. An entry holds a file's sha256 under its stat key (size,
// mtime, ctime, inode, device: Entry::key); a file whose key is the same as when it was hashed
// is not read again. A file written in the same timestamp tick as its hashing could keep its key
// with other content (git's "racy" entries), so an entry is kept only if the file's ctime is
// strictly before a mark taken before its stat: every later write gives it a later ctime. The
// host's cache is a file per source directory under the state directory; the node's is
// `.skyhost-sync.cache` at the top of the synced directory, its mark `.skyhost-sync.mark`
// touched there before the listing (a timestamp of that filesystem's own clock and
// granularity). A cache that does not read back whole (bad header, length or checksum) is
// ignored: everything is hashed, never trusted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "host/transfer/tree.hpp"

namespace skyhost::tree {

struct CacheEntry {
  std::string key, hash;
};
using HashCache = std::map<std::string, CacheEntry>;

/// Files read to hash them, and their bytes.
struct HashCount {
  uint64_t files = 0, bytes = 0;
};

/// The cache as bytes: a header line "skyhost-hash-cache 1 LENGTH SHA256" then the records
/// "HASH KEY\0PATH\0".
std::string encode_cache(const HashCache& c);

/// Reads what encode_cache wrote; false (and `out` empty) if it is not exactly that.
bool decode_cache(std::string_view text, HashCache& out);

/// Fills in the hashes of `paths` (files of `m`) that `c` holds under their current key; returns
/// the paths still to hash.
std::vector<std::string> from_cache(const HashCache& c, Manifest& m,
                                    const std::vector<std::string>& paths);

/// The entries worth keeping: files of `m` with a hash and a key whose ctime is before
/// `mark_ns` (nanoseconds since the epoch).
HashCache cacheable(const Manifest& m, int64_t mark_ns);

/// The node's cache once the plan `p` from it to `src` ran: `after` is its listing with stats
/// taken then (the mark, touched just before it, included; empty: nothing is cached). A file
/// the plan sent is cached if tar's mtime (write_tar's 0) is still its own, one it left alone
/// if its key is the one `before` (the entries valid before the plan) holds; either only if
/// its ctime is before the mark. What the plan copied or chmod-ed is hashed next time.
HashCache cache_after(const HashCache& before, const Plan& p, const Manifest& src,
                      const Manifest& after);

/// Now, in nanoseconds since the epoch (CLOCK_REALTIME, as file timestamps are).
int64_t clock_ns();

/// Hashes the files `paths` of the local tree `root` scanned into `m` (Entry::key set by
/// scan), reading only those the host's cache for `root` does not hold, and saves the cache.
/// `scanned_ns` is clock_ns() from before the scan: files changed less than two seconds before
/// it are not cached (the host has no mark file in a source it must not write to, and a network
/// filesystem's clock may be behind ours). Returns "" or an error, like hash_files.
std::string hash_cached(const std::string& root, Manifest& m, const std::vector<std::string>& paths,
                        int64_t scanned_ns, HashCount& count);

/// Where the host keeps the cache of the local directory `root`: under $SKYHOST_STATE_DIR (else
/// ~/.skyhost)/hash-cache/, named by the sha256 of its absolute path.
std::string local_cache_path(const std::string& root);

}  // namespace skyhost::tree
