// A large file moved over several SSH sessions to one node at once ("lanes"). libssh2 1.10
// encrypts and decrypts one session on one core, block by block, which caps one session's
// transfer well under what OpenSSH's client does; sessions are independent, so N sessions on N
// threads decrypt on N cores. docs/data.md, "Lanes", has what that buys.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "host/links/ssh_link.hpp"
#include "host/transfer/transfer.hpp"

namespace skyhost::transfer_detail {

/// Files smaller than this move over the node's session alone: a lane costs a connection and
/// a handshake, which a small file does not win back.
constexpr uint64_t kLaneMin = uint64_t(64) << 20;

/// How many sessions move a file of `size` bytes: `asked` when > 0 (at most kLaneMax), else
/// one per core up to 4; always 1 below kLaneMin.
int lane_count(int asked, uint64_t size);
constexpr int kLaneMax = 16;

/// Moves bytes [0, size) between the local file `fd` and `remote_path` on the node: with `put`
/// from `fd` into the remote file, written in place (created if missing, never truncated), else
/// from the remote file into `fd`, written in place. The file is cut into pieces of 32 MiB that
/// the link's own session and `lanes - 1` extra sessions take in turn, each extra one driven by
/// its own loop on its own thread; they authenticate as the link's session did and accept only
/// the host key that session verified. A piece cut part way goes back for any lane to finish (a
/// get from its first missing byte, a put whole); a lane that cannot connect leaves the pieces
/// to the others. `done` runs once, on the loop thread, after every extra session is closed;
/// if the link is destroyed first the extra sessions are ended and `done` never runs.
void move_ranges(SshLink& link, uv_loop_t* loop, bool put, int fd, const std::string& remote_path,
                 uint64_t size, int lanes, TransferDone done);

}  // namespace skyhost::transfer_detail
