#include "host/transfer.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>

#include "host/ssh_link.hpp"
#include "host/transfer_util.hpp"

namespace skyhost {

using transfer_detail::Digest;
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
              TransferDone done, bool only_if_missing) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(local, remote));
    return;
  }
  ssh::Session& s = ssh_link->session();
  std::string dir = std::filesystem::path(remote).parent_path().string();
  auto upload = [ssh_link, &s, loop, local, remote, done, only_if_missing]() {
    if (!only_if_missing) return transfer_detail::put_ssh(*ssh_link, loop, local, remote, done);
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

// One pool:get over SSH: `cat` into FILE.skyhost-part, hashed as it arrives; a command that dies
// part way (killed, its channel failed) while the session lives is resumed with `tail -c +N`
// from the first byte missing, up to kAttempts times; at the end `sha256sum` on the node must
// agree with the hash of what arrived, or the transfer fails.
struct Get : std::enable_shared_from_this<Get> {
  static constexpr int kAttempts = 4;
  SshLink* link;
  std::string remote, local, part;
  TransferDone done;
  std::FILE* f = nullptr;
  Digest digest;
  uint64_t got = 0;
  int attempts = 0;
  bool write_failed = false;

  ~Get() {
    if (f != nullptr) std::fclose(f);
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
      if (std::fwrite(d.data(), 1, d.size(), self->f) != d.size()) self->write_failed = true;
      self->digest.update(d);
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
    if (std::fflush(f) != 0) return fail("cannot write " + local);
    ssh::RunOptions ro;
    ro.timeout = 600;
    auto self = shared_from_this();
    link->session().run("sha256sum " + quote(remote), ro, [self](ssh::RunResult r) {
      std::string theirs = digest_of(r.out), ours = self->digest.hex();
      if (!r.exit.ok() || theirs.empty())
        return self->fail("cannot check " + self->remote +
                          " on the node (sha256sum): " + (r.err.empty() ? r.exit.error : r.err));
      if (theirs != ours)
        return self->fail("the copy of " + self->remote + " differs from the node's (sha256 " +
                          ours + ", the node has " + theirs + ")");
      bool closed_ok = std::fclose(self->f) == 0;
      self->f = nullptr;
      if (!closed_ok) return self->fail("cannot write " + self->local);
      if (std::rename(self->part.c_str(), self->local.c_str()) != 0)
        return self->fail("cannot rename " + self->part + " to " + self->local + ": " +
                          std::strerror(errno));
      self->done("");
    });
  }

  void fail(const std::string& why) {
    if (f != nullptr) std::fclose(f);
    f = nullptr;
    std::remove(part.c_str());
    done(why);
  }
};

}  // namespace

void get_file(Link& link, const std::string& remote, const std::string& local, TransferDone done) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) {
    done(copy_local(remote, local));
    return;
  }
  auto g = std::make_shared<Get>();
  g->link = ssh_link;
  g->remote = remote;
  g->local = local;
  g->part = local + ".skyhost-part";
  g->done = std::move(done);
  g->f = std::fopen(g->part.c_str(), "wb");
  if (g->f == nullptr) {
    g->done("cannot write " + g->part + ": " + std::strerror(errno));
    return;
  }
  g->start();
}

}  // namespace skyhost
