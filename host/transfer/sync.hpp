// pool:put(dir): makes a directory on a node hold the same tree as a local one, moving only what
// differs (host/transfer/tree.hpp). Over SSH: the node lists its copy, hashes the files that
// could match, and the host sends one checked, resumable tar of the files whose content the
// node lacks (transfer.hpp's put), plus a script of copies, removals, links and modes.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "host/links/link.hpp"

namespace skyhost {

/// What a sync did.
struct SyncReport {
  uint64_t sent = 0;          ///< files whose content was sent
  uint64_t sent_bytes = 0;    ///< their size
  uint64_t copied = 0;        ///< files made from content already on the node (moved or copied)
  uint64_t removed = 0;       ///< entries removed (not in the source, or of another type there)
  uint64_t entries = 0;       ///< entries in the source tree
  uint64_t hashed = 0;        ///< files read to hash them, on both sides (hash_cache.hpp)
  uint64_t hashed_bytes = 0;  ///< their size
};

using SyncDone = std::function<void(const std::string& error, const SyncReport& report)>;

/// Makes `remote` on the node behind `link` a copy of the local directory `local` (files,
/// directories, symbolic links, permission bits; created if missing; what is not in `local` is
/// removed). A relative `remote` is relative to the remote user's home. The names
/// .skyhost-sync.tar and .skyhost-stage at the top of `remote` are the sync's own.
void put_tree(Link& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
              SyncDone done);

/// The other way: makes the local directory `local` a copy of `remote` on the node. The files
/// the local side lacks come as one stream (the node's `cat` of them into a temporary file,
/// fetched with get_file: checked and resumable), cut by the sizes the node listed, each piece
/// checked against the node's sha256 of it. The node's entries are untrusted (tree.hpp): modes
/// keep only the permission bits 0777.
void get_tree(Link& link, uv_loop_t* loop, const std::string& remote, const std::string& local,
              SyncDone done);

}  // namespace skyhost
