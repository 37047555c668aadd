// Pieces pool:put(dir) (sync.cpp) and pool:get(dir) (sync_get.cpp) share.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "host/links/ssh_link.hpp"
#include "host/transfer/hash_cache.hpp"
#include "host/transfer/sync.hpp"
#include "host/transfer/tree.hpp"

namespace skyhost::transfer_detail {

/// Runs `work` on the loop's thread pool, then `after` on the loop thread.
void off_loop(uv_loop_t* loop, std::function<void()> work, std::function<void()> after);

/// Runs `cmd` on the node with `input` on its stdin; `done(stdout, error)` ("" on success). At
/// most 256 MiB of output is kept; more is an error.
void run_with_input(SshLink& link, const std::string& cmd, std::string input,
                    std::function<void(std::string out, std::string error)> done);

/// The node's command hashing the files named on its stdin (NUL-separated, relative to `dir`)
/// on all its cores, as tree::parse_hashes reads it.
std::string hash_command(const std::string& dir);

/// The node's hash cache as a sync read it: its bytes, decoded, and the ctime of the mark
/// touched before the listing (none: nothing found there may be cached).
struct NodeCache {
  std::optional<int64_t> mark_ns;
  std::string read;
  tree::HashCache cache;
};

/// The node's listing of `dir` with stats, after touching the hash cache's mark, then "#cache"
/// and the node's hash cache (hash_cache.hpp). For pool:get (`get`), a missing `dir` is an error
/// and only a directory that has a cache is marked.
std::string cached_listing_command(const std::string& dir, bool get);

/// Reads what cached_listing_command printed into `m` (without the sync's own names) and `nc`.
std::string read_cached_listing(std::string_view out, tree::Manifest& m, NodeCache& nc);

/// Writes `c` as the node's cache of `dir` if it differs from what `nc` read (whole, then
/// renamed into place), then `then()`, whether or not it could be written.
void save_node_cache(SshLink& link, const std::string& dir, const NodeCache& nc,
                     const tree::HashCache& c, std::function<void()> then);

/// The paths of `m`'s files.
std::vector<std::string> files_of(const tree::Manifest& m);

SyncReport report_of(const tree::Plan& p, const tree::Manifest& src);

/// A sync between two directories of this machine (a local node): `from` to `to`.
void put_tree_local(uv_loop_t* loop, const std::string& from, const std::string& to, SyncDone done);

}  // namespace skyhost::transfer_detail
