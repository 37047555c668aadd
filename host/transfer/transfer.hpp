// Files to and from nodes: over the node's SSH session, or a plain copy for a local node (same
// filesystem). Each transfer reports once, with "" on success or a message naming both paths.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "host/links/link.hpp"

namespace skyhost {

using TransferDone = std::function<void(const std::string& error)>;

/// Copies the local file `local` to `remote` on the node behind `link` (parent directories are
/// created; a relative remote path is relative to the remote user's home). Over SSH the copy is
/// then checked: sha256sum on the node against the local file's hash (hashed on `loop`'s
/// thread pool). With `only_if_missing`, a file already at `remote` is kept and nothing is
/// checked (files named by their content). A file of 64 MiB or more moves over `lanes` SSH
/// sessions at once (lanes.hpp; 0: one per core, up to 4; 1, the default: the node's session
/// alone, whose resume a directory sync's archive relies on).
void put_file(Link& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
              TransferDone done, bool only_if_missing = false, int lanes = 1);

/// Copies `remote` from the node to the local file `local` (written to local.skyhost-part, then
/// renamed). Over SSH the part is hashed (on `loop`'s thread pool) and checked against sha256sum
/// on the node, run beside the transfer; a read cut part way while the session lives goes on
/// from the first byte missing. `lanes` as for put_file.
void get_file(Link& link, uv_loop_t* loop, const std::string& remote, const std::string& local,
              TransferDone done, int lanes = 1);

}  // namespace skyhost
