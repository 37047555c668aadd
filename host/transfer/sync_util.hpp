// Pieces pool:put(dir) (sync.cpp) and pool:get(dir) (sync_get.cpp) share.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "host/links/ssh_link.hpp"
#include "host/transfer/sync.hpp"
#include "host/transfer/tree.hpp"

namespace skyhost::transfer_detail {

/// Runs `work` on the loop's thread pool, then `after` on the loop thread.
void off_loop(uv_loop_t* loop, std::function<void()> work, std::function<void()> after);

/// Runs `cmd` on the node with `input` on its stdin; `done(stdout, error)` ("" on success). At
/// most 256 MiB of output is kept; more is an error.
void run_with_input(SshLink& link, const std::string& cmd, std::string input,
                    std::function<void(std::string out, std::string error)> done);

/// The node's command listing the tree under `dir`, as tree::parse_listing reads it; a missing
/// `dir` is an empty tree, or an error if `must_exist`.
std::string listing_command(const std::string& dir, bool must_exist);

/// The node's command hashing the files named on its stdin (NUL-separated, relative to `dir`)
/// on all its cores, as tree::parse_hashes reads it.
std::string hash_command(const std::string& dir);

SyncReport report_of(const tree::Plan& p, const tree::Manifest& src);

/// A sync between two directories of this machine (a local node): `from` to `to`.
void put_tree_local(uv_loop_t* loop, const std::string& from, const std::string& to, SyncDone done);

}  // namespace skyhost::transfer_detail
