#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "host/transfer/hash_cache.hpp"
#include "host/transfer/sync.hpp"
#include "host/transfer/sync_util.hpp"
#include "host/transfer/transfer.hpp"
#include "host/transfer/transfer_util.hpp"

namespace skyhost {

namespace fs = std::filesystem;
using namespace transfer_detail;

namespace {

constexpr const char* kStage = ".skyhost-stage";

// Applies a plan from the node (`src`, its listing) to the local directory `to`; the files to
// send are in `blob`, one after the other in the plan's order.
std::string apply_get(const tree::Plan& p, const tree::Manifest& src, const std::string& blob,
                      const std::string& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return "cannot create " + to + ": " + ec.message();
  std::string stage = to + "/" + kStage;
  if (!p.copies.empty()) fs::create_directories(stage, ec);
  for (size_t i = 0; i < p.copies.size(); i++) {
    fs::copy_file(to + "/" + p.copies[i].from, stage + "/" + std::to_string(i),
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return "cannot copy " + to + "/" + p.copies[i].from + ": " + ec.message();
  }
  for (const auto& r : p.remove) fs::remove_all(to + "/" + r, ec);
  for (const auto& d : p.mkdirs) {
    fs::create_directories(to + "/" + d, ec);
    if (ec) return "cannot create " + to + "/" + d + ": " + ec.message();
  }
  std::ifstream in(blob, std::ios::binary);
  if (!p.send.empty() && !in) return "cannot read " + blob;
  std::string buf(1 << 20, '\0');
  for (const auto& f : p.send) {
    const tree::Entry& e = src.at(f);
    std::string path = to + "/" + f;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) return "cannot write " + path + ": " + std::strerror(errno);
    Digest d;
    uint64_t left = e.size;
    while (left > 0) {
      in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
      auto got = static_cast<uint64_t>(in.gcount());
      if (got == 0) return "the node's files changed while they were fetched (" + f + " is short)";
      d.update({buf.data(), got});
      out.write(buf.data(), static_cast<std::streamsize>(got));
      left -= got;
    }
    if (!out.flush()) return "cannot write " + path;
    if (!e.hash.empty() && d.hex() != e.hash)
      return "the copy of " + f + " differs from the node's (sha256 " + d.hex() +
             ", the node has " + e.hash + ")";
  }
  if (in && in.peek() != std::char_traits<char>::eof())
    return "the node's files changed while they were fetched (more bytes than listed)";
  for (size_t i = 0; i < p.copies.size(); i++) {
    fs::rename(stage + "/" + std::to_string(i), to + "/" + p.copies[i].to, ec);
    if (ec) return "cannot move a copy to " + to + "/" + p.copies[i].to + ": " + ec.message();
  }
  fs::remove_all(stage, ec);
  for (const auto& l : p.links) {
    fs::create_symlink(src.at(l).target, to + "/" + l, ec);
    if (ec) return "cannot make the link " + to + "/" + l + ": " + ec.message();
  }
  for (const auto& c : p.chmods) {
    fs::permissions(to + "/" + c, static_cast<fs::perms>(src.at(c).mode & 0777), ec);
    if (ec) return "cannot set the mode of " + to + "/" + c + ": " + ec.message();
  }
  return "";
}

struct SshGet : std::enable_shared_from_this<SshGet> {
  SshLink* link = nullptr;
  uv_loop_t* loop = nullptr;
  std::string remote, local, blob, remote_blob, error, remote_error;
  SyncDone done;
  tree::Manifest src, dst;  // src: the node's tree; dst: the local one
  tree::Plan plan;
  int waiting = 0;
  bool failed = false;
  int64_t scanned_ns = 0;
  tree::HashCount local_count, node_count;  // the first written on the thread pool
  NodeCache nc;                             // the node's hash cache, where pool:put left one

  SyncReport report() const {
    SyncReport r = report_of(plan, src);
    r.hashed = local_count.files + node_count.files;
    r.hashed_bytes = local_count.bytes + node_count.bytes;
    return r;
  }

  void fail(const std::string& why) {
    if (failed) return;
    failed = true;
    if (!blob.empty()) std::remove(blob.c_str());
    done(why, report());
  }

  // Both sides list at once, then both hash their candidates at once.
  void start() {
    auto self = shared_from_this();
    waiting = 2;
    off_loop(
        loop,
        [self] {
          std::error_code ec;
          self->scanned_ns = tree::clock_ns();
          if (fs::exists(fs::symlink_status(self->local, ec)))
            self->error = tree::scan(self->local, self->dst, false);
        },
        [self] { self->joined(&SshGet::hash); });
    run_with_input(*link, cached_listing_command(remote, true), "",
                   [self](std::string out, std::string err) {
                     if (err.empty()) err = read_cached_listing(out, self->src, self->nc);
                     if (!err.empty())
                       self->remote_error = "cannot list " + self->remote + " on the node: " + err;
                     self->joined(&SshGet::hash);
                   });
  }

  void joined(void (SshGet::*next)()) {
    if (--waiting > 0 || failed) return;
    if (!error.empty()) return fail(error);
    if (!remote_error.empty()) return fail(remote_error);
    (this->*next)();
  }

  void hash() {
    auto self = shared_from_this();
    waiting = 2;
    std::vector<std::string> ours = tree::worth_hashing(src, dst);
    off_loop(
        loop,
        [self, ours] {
          self->error =
              tree::hash_cached(self->local, self->dst, ours, self->scanned_ns, self->local_count);
        },
        [self] { self->joined(&SshGet::fetch); });
    // The node hashes every file its cache does not hold: each one fetched is checked against
    // its hash.
    std::string input;
    for (const auto& path : tree::from_cache(nc.cache, src, files_of(src))) {
      input += "./" + path + '\0';
      node_count.files++;
      node_count.bytes += src.at(path).size;
    }
    if (input.empty()) return joined(&SshGet::fetch);
    run_with_input(*link, hash_command(remote), input, [self](std::string out, std::string err) {
      if (err.empty()) err = tree::parse_hashes(out, self->src);
      if (!err.empty()) self->remote_error = "cannot hash files in " + self->remote + ": " + err;
      self->joined(&SshGet::fetch);
    });
  }

  void fetch() {
    plan = tree::plan(src, dst);
    if (plan.send.empty()) return apply();
    std::string input;
    for (const auto& f : plan.send) input += "./" + f + '\0';
    auto self = shared_from_this();
    std::string cmd = "cd " + quote(remote) +
                      " && t=$(mktemp /tmp/skyhost-get-XXXXXX) && xargs -0 cat -- >\"$t\" && "
                      "echo \"$t\"";
    run_with_input(*link, cmd, input, [self](std::string out, std::string err) {
      while (!out.empty() && out.back() == '\n') out.pop_back();
      if (err.empty() && (!out.starts_with("/tmp/skyhost-get-") || out.find('\n') != out.npos))
        err = "no archive path in its output";
      if (!err.empty()) return self->fail("cannot gather files in " + self->remote + ": " + err);
      self->remote_blob = out;
      char tmpl[] = "/tmp/skyhost-get-XXXXXX";
      int fd = mkstemp(tmpl);
      if (fd < 0) return self->fail("cannot create a temporary file in /tmp");
      close(fd);
      self->blob = tmpl;
      get_file(*self->link, self->loop, self->remote_blob, self->blob,
               [self](const std::string& e) {
                 // The node's stream file goes first, whatever happened (it is in /tmp).
                 ssh::RunOptions ro;
                 ro.timeout = 60;
                 self->link->session().run("rm -f " + quote(self->remote_blob), ro,
                                           [self, e](ssh::RunResult) {
                                             if (!e.empty()) return self->fail(e);
                                             self->apply();
                                           });
               });
    });
  }

  void apply() {
    auto self = shared_from_this();
    off_loop(
        loop, [self] { self->error = apply_get(self->plan, self->src, self->blob, self->local); },
        [self] {
          if (!self->error.empty()) return self->fail(self->error);
          if (!self->blob.empty()) std::remove(self->blob.c_str());
          if (!self->nc.mark_ns) return self->done("", self->report());
          save_node_cache(*self->link, self->remote, self->nc,
                          tree::cacheable(self->src, *self->nc.mark_ns),
                          [self] { self->done("", self->report()); });
        });
  }
};

}  // namespace

void get_tree(Link& link, uv_loop_t* loop, const std::string& remote, const std::string& local,
              SyncDone done) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) return put_tree_local(loop, remote, local, std::move(done));
  auto g = std::make_shared<SshGet>();
  g->link = ssh_link;
  g->loop = loop;
  g->remote = remote;
  g->local = local;
  g->done = std::move(done);
  g->start();
}

}  // namespace skyhost
