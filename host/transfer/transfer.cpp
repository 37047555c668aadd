#include "host/transfer/transfer.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

#include "host/links/ssh_link.hpp"
#include "host/transfer/lanes.hpp"
#include "host/transfer/transfer_util.hpp"

namespace skyhost {

using transfer_detail::digest_of;
using transfer_detail::quote;

namespace {

std::string copy_local(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) return "";
  fs::path parent = fs::path(to).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  return ec ? "cannot copy " + from + " to " + to + ": " + ec.message() : "";
}

}  // namespace

void put_file(Link& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
              TransferDone done, bool only_if_missing, int lanes) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(local, remote));
    return;
  }
  ssh::Session& s = ssh_link->session();
  std::string dir = std::filesystem::path(remote).parent_path().string();
  auto upload = [ssh_link, &s, loop, local, remote, done, only_if_missing, lanes]() {
    if (!only_if_missing)
      return transfer_detail::put_ssh(*ssh_link, loop, local, remote, done, lanes);
    // A file named by its content (a plugin): one plain upload, nothing to check or resume.
    s.upload_file(local, remote, ssh::UploadOptions{},
                  [done](const ssh::Status& st) { done(st.error); });
  };
  if (dir.empty() && !only_if_missing) {
    upload();
    return;
  }
  ssh::RunOptions ro;
  ro.timeout = 60;
  std::string cmd = dir.empty() ? "true" : "mkdir -p " + quote(dir);
  if (only_if_missing) cmd += " && { test -f " + quote(remote) + " && echo present; true; }";
  s.run(cmd, ro, [upload, dir, done](ssh::RunResult r) {
    if (!r.exit.ok()) {
      done("cannot create " + dir + " on the node: " + (r.err.empty() ? r.exit.error : r.err));
      return;
    }
    if (r.out.starts_with("present")) return done("");
    upload();
  });
}

namespace {

// One pool:get over SSH: `cat` into FILE.skyhost-part; a command that dies part way (killed, its
// channel failed) while the session lives is resumed with `tail -c +N` from the first byte
// missing, up to kAttempts times. The node's `sha256sum` runs beside the transfer from the
// start; once the part is whole it is hashed on the thread pool (not on the loop, which is busy
// decrypting), and the two must agree before the part is renamed into place. A large file comes
// in pieces over several sessions instead (lanes.hpp), each piece resumed on its own.
struct Get : std::enable_shared_from_this<Get> {
  static constexpr int kAttempts = 4;
  SshLink* link = nullptr;
  uv_loop_t* loop = nullptr;
  std::string remote, local, part;
  TransferDone done;
  std::FILE* f = nullptr;
  uint64_t got = 0;
  int attempts = 0;
  bool write_failed = false;
  bool finished = false;
  bool streamed = false, remote_done = false, local_done = false;
  std::string theirs, remote_error, ours, local_error;

  ~Get() {
    if (f != nullptr) std::fclose(f);
  }

  void begin() {
    begin_hash();
    start();
  }

  // The node's sha256sum, beside the transfer from the start.
  void begin_hash() {
    ssh::RunOptions ro;
    ro.timeout = 3600;  // hashing runs at disk speed; an hour covers any file worth a pool:get
    auto self = shared_from_this();
    link->session().run(transfer_detail::remote_sha256(remote), ro, [self](ssh::RunResult r) {
      self->theirs = digest_of(r.out);
      if (!r.exit.ok() || self->theirs.empty())
        self->remote_error = "cannot check " + self->remote +
                             " on the node (sha256sum): " + (r.err.empty() ? r.exit.error : r.err);
      self->remote_done = true;
      self->settle();
    });
  }

  void begin_lanes(uint64_t size, int lanes) {
    begin_hash();
    if (::ftruncate(fileno(f), static_cast<off_t>(size)) != 0)
      return fail("cannot write " + part + ": " + std::strerror(errno));
    auto self = shared_from_this();
    transfer_detail::move_ranges(*link, loop, false, fileno(f), remote, size, lanes,
                                 [self](const std::string& error) {
                                   if (!error.empty()) return self->fail(error);
                                   self->whole();
                                 });
  }

  void start() {
    attempts++;
    // exec: a killed cat must reach the channel as the signal, not as the shell's status.
    std::string cmd = got == 0 ? "exec cat " + quote(remote)
                               : "exec tail -c +" + std::to_string(got + 1) + " " + quote(remote);
    uint64_t id = link->hold(link->session().exec(cmd));
    ssh::Channel& ch = link->held(id);
    auto err = std::make_shared<std::string>();
    auto self = shared_from_this();
    ch.on_data([self](std::string_view d) {
      if (self->f == nullptr) return;
      if (std::fwrite(d.data(), 1, d.size(), self->f) != d.size()) self->write_failed = true;
      self->got += d.size();
    });
    ch.on_stderr([err](std::string_view d) {
      if (err->size() < 1024) err->append(d.substr(0, 1024 - err->size()));
    });
    ch.on_exit([self, id, err](const ssh::ExitInfo& e) {
      self->ended(e, *err);
      self->link->release(id);  // destroys this channel: allowed from its own callback
    });
    ch.send_eof();
  }

  void ended(const ssh::ExitInfo& e, std::string err) {
    if (finished) return;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    if (write_failed) return fail("cannot write " + local);
    if (!e.ok()) {
      // Cut off (a signal, a channel failure) with the session still up: go on from where it
      // stopped. A command that failed by itself (no such file) is not retried.
      bool cut = !e.signal.empty() || (!e.error.empty() && e.code == -1);
      if (cut && link->session().is_ready() && attempts < kAttempts) return start();
      std::string why = !err.empty()        ? err
                        : !e.error.empty()  ? e.error
                        : !e.signal.empty() ? "killed by signal " + e.signal
                                            : "exit status " + std::to_string(e.code);
      return fail("cannot read " + remote + " on the node: " + why);
    }
    whole();
  }

  // Every byte is in the part: hash it off the loop.
  void whole() {
    bool closed_ok = std::fclose(f) == 0;
    f = nullptr;
    if (!closed_ok) return fail("cannot write " + local);
    streamed = true;
    auto self = shared_from_this();
    transfer_detail::hash_file(loop, part,
                               [self](const std::string& hex, const std::string& error) {
                                 self->ours = hex;
                                 if (!error.empty())
                                   self->local_error = "cannot read " + self->part + ": " + error;
                                 self->local_done = true;
                                 self->settle();
                               });
  }

  // Once the part is whole and both hashes are known.
  void settle() {
    if (finished || !streamed || !remote_done || !local_done) return;
    if (!local_error.empty()) return fail(local_error);
    if (!remote_error.empty()) return fail(remote_error);
    if (theirs != ours)
      return fail("the copy of " + remote + " differs from the node's (sha256 " + ours +
                  ", the node has " + theirs + ")");
    if (std::rename(part.c_str(), local.c_str()) != 0)
      return fail("cannot rename " + part + " to " + local + ": " + std::strerror(errno));
    finished = true;
    done("");
  }

  void fail(const std::string& why) {
    if (finished) return;
    finished = true;
    if (f != nullptr) std::fclose(f);
    f = nullptr;
    std::remove(part.c_str());
    done(why);
  }
};

}  // namespace

void get_file(Link& link, uv_loop_t* loop, const std::string& remote, const std::string& local,
              TransferDone done, int lanes) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(remote, local));
    return;
  }
  auto g = std::make_shared<Get>();
  g->link = ssh_link;
  g->loop = loop;
  g->remote = remote;
  g->local = local;
  g->part = local + ".skyhost-part";
  g->done = std::move(done);
  g->f = std::fopen(g->part.c_str(), "wb");
  if (g->f == nullptr) {
    g->done("cannot write " + g->part + ": " + std::strerror(errno));
    return;
  }
  if (transfer_detail::lane_count(lanes, transfer_detail::kLaneMin) <= 1) return g->begin();
  // Large enough for lanes? The size decides, and it takes one command to learn it.
  ssh::RunOptions ro;
  ro.timeout = 60;
  ssh_link->session().run("stat -L -c %s " + quote(remote), ro, [g, lanes](ssh::RunResult r) {
    char* end = nullptr;
    unsigned long long size = std::strtoull(r.out.c_str(), &end, 10);
    int n = transfer_detail::lane_count(lanes, size);
    // a file stat cannot see fails in the plain path, with cat's own message
    if (!r.exit.ok() || end == r.out.c_str() || n <= 1) return g->begin();
    g->begin_lanes(size, n);
  });
}

}  // namespace skyhost
