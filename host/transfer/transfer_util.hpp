// Pieces the SSH file transfers share (host/transfer/transfer.cpp, host/transfer/transfer_put.cpp):
// quoting for the remote shell, SHA-256 as bytes arrive or of a local file off the loop thread, and
// the resumable, checked upload.
#pragma once

#include <openssl/evp.h>
#include <uv.h>

#include <functional>
#include <string>
#include <string_view>

#include "host/links/ssh_link.hpp"
#include "host/transfer/transfer.hpp"

namespace skyhost::transfer_detail {

/// `s` in single quotes for a POSIX shell.
std::string quote(const std::string& s);

/// SHA-256 of what arrives, as it arrives.
class Digest {
 public:
  Digest();
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void update(std::string_view d) { EVP_DigestUpdate(ctx_, d.data(), d.size()); }
  /// Lower-case hex, as sha256sum prints it.
  std::string hex();

 private:
  EVP_MD_CTX* ctx_;
};

/// SHA-256 of the local file `path` into `hex` (lower-case); returns "" or why it could not be
/// read (the reason alone, e.g. "No such file or directory"). Blocks: off the loop thread for large
/// files (hash_file).
std::string sha256_file(const std::string& path, std::string& hex);

/// The shell command that prints the sha256 of `path` on the node: OpenSSL's where the node has
/// it (its SHA-256 uses the CPU's SHA extensions: 1.4 GB/s here against coreutils' 260 MB/s,
/// CPU that the node's sshd needs during a transfer), else coreutils' sha256sum, whose error
/// then explains a missing file.
std::string remote_sha256(const std::string& path);

/// The first word of `sha256sum FILE`'s (or `openssl dgst -r`'s) output if it is a digest,
/// else "".
std::string digest_of(const std::string& out);

/// Hashes the local file `path` on `loop`'s thread pool (a large file would hold the loop for
/// seconds), then calls `done(hex, error)` on the loop thread.
void hash_file(uv_loop_t* loop, std::string path,
               std::function<void(const std::string& hex, const std::string& error)> done);

/// pool:put over SSH: streams `local` into REMOTE.skyhost-part, resumes a cut upload from the
/// size the part has on the node, checks sha256 on both sides, then moves it into place.
/// A file of kLaneMin or more goes over `lanes` sessions (lanes.hpp; 0: one per core, up to 4).
void put_ssh(SshLink& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
             TransferDone done, int lanes);

}  // namespace skyhost::transfer_detail
