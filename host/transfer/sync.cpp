#include "host/transfer/sync.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "host/links/ssh_link.hpp"
#include "host/transfer/hash_cache.hpp"
#include "host/transfer/sync_util.hpp"
#include "host/transfer/transfer.hpp"
#include "host/transfer/transfer_util.hpp"
#include "host/transfer/tree.hpp"

namespace skyhost {

namespace fs = std::filesystem;
using transfer_detail::quote;
using namespace transfer_detail;

namespace transfer_detail {

constexpr size_t kMaxListing = 256u << 20;  // bytes of a node's listing we accept

// Hashes the files named on stdin (NUL-separated) in `dir` on the node, on all its cores:
// batches of 16 per sha256sum, each batch's output in its own file so that records never
// interleave, then all of them on stdout.
std::string hash_command(const std::string& dir) {
  return "cd " + quote(dir) +
         " && t=$(mktemp -d) && trap 'rm -rf \"$t\"' EXIT && "
         "xargs -0 -r -n 16 -P \"$(nproc 2>/dev/null || echo 1)\" "
         "sh -c 'exec sha256sum -z -- \"$@\" >\"$0/$$\"' \"$t\" && "
         "find \"$t\" -type f -exec cat {} +";
}

// Runs `work` on the loop's thread pool, then `after` on the loop thread.
void off_loop(uv_loop_t* loop, std::function<void()> work, std::function<void()> after) {
  struct Job {
    uv_work_t req{};
    std::function<void()> work, after;
  };
  auto* j = new Job{{}, std::move(work), std::move(after)};
  j->req.data = j;
  int rc = uv_queue_work(
      loop, &j->req, [](uv_work_t* r) { static_cast<Job*>(r->data)->work(); },
      [](uv_work_t* r, int) {
        auto* j = static_cast<Job*>(r->data);
        j->after();
        delete j;
      });
  if (rc != 0) {
    j->work();
    j->after();
    delete j;
  }
}

// Runs `cmd` on the node with `input` on its stdin; `done(out, error)`.
void run_with_input(SshLink& link, const std::string& cmd, std::string input,
                    std::function<void(std::string out, std::string error)> done) {
  uint64_t id = link.hold(link.session().exec(cmd));
  ssh::Channel& ch = link.held(id);
  auto out = std::make_shared<std::string>();
  auto err = std::make_shared<std::string>();
  auto too_much = std::make_shared<bool>(false);
  ch.on_data([out, too_much](std::string_view d) {
    if (out->size() + d.size() > kMaxListing)
      *too_much = true;
    else
      out->append(d);
  });
  ch.on_stderr([err](std::string_view d) {
    if (err->size() < 2048) err->append(d.substr(0, 2048 - err->size()));
  });
  SshLink* l = &link;
  ch.on_exit([l, id, out, err, too_much, done](const ssh::ExitInfo& e) {
    std::string why;
    if (*too_much)
      why = "its output is larger than " + std::to_string(kMaxListing) + " bytes";
    else if (!e.ok())
      why = !err->empty()      ? *err
            : !e.error.empty() ? e.error
                               : "exit status " + std::to_string(e.code);
    while (!why.empty() && why.back() == '\n') why.pop_back();
    done(std::move(*out), why);
    l->release(id);
  });
  if (!input.empty()) ch.write(std::move(input));
  ch.send_eof();
}

std::vector<std::string> files_of(const tree::Manifest& m) {
  std::vector<std::string> files;
  for (const auto& [path, e] : m)
    if (e.type == 'f') files.push_back(path);
  return files;
}

SyncReport report_of(const tree::Plan& p, const tree::Manifest& src) {
  SyncReport r;
  r.sent = p.send.size();
  r.sent_bytes = p.send_bytes;
  r.copied = p.copies.size();
  r.removed = p.remove.size();
  r.entries = src.size();
  return r;
}

// find's record with the stat fields of the hash cache's key (tree::parse_listing's with_stat).
constexpr const char* kStatFind = "find . -mindepth 1 -printf '%y %m %s %T@ %C@ %i %D %P\\0%l\\0'";

std::string cached_listing_command(const std::string& dir, bool get) {
  // The mark is touched before find stats anything: a file whose ctime is before the mark's has
  // not been written since (hash_cache.hpp). A directory we cannot write has no mark, no cache.
  // pool:get(dir/) reads a directory it does not own: it marks (and later writes) only one
  // that has a cache already (a pool:put destination), and a missing one is an error.
  std::string cache(tree::kCacheName), mark(tree::kMarkName);
  std::string list = kStatFind + std::string(" && printf '#cache\\0' && { cat ") + cache +
                     " 2>/dev/null || true; }";
  if (get)
    return "cd " + quote(dir) + " && { test ! -f " + cache + " || touch " + mark +
           " 2>/dev/null || true; } && " + list;
  return "if cd " + quote(dir) + " 2>/dev/null; then { touch " + mark +
         " 2>/dev/null || true; } && " + list + "; fi";
}

std::string read_cached_listing(std::string_view out, tree::Manifest& m, NodeCache& nc) {
  std::string_view cache;
  if (auto e = tree::parse_listing(tree::cut_listing(out, "#cache", cache), m, true); !e.empty())
    return e;
  auto mark = m.find(std::string(tree::kMarkName));
  if (mark != m.end() && mark->second.type == 'f') nc.mark_ns = mark->second.ctime_ns;
  nc.read = cache;
  tree::decode_cache(cache, nc.cache);  // else empty: everything is hashed
  for (auto it = m.begin(); it != m.end();)
    it = tree::own_name(it->first) ? m.erase(it) : std::next(it);
  return "";
}

void save_node_cache(SshLink& link, const std::string& dir, const NodeCache& nc,
                     const tree::HashCache& c, std::function<void()> then) {
  std::string bytes = tree::encode_cache(c);
  if (bytes == nc.read || (c.empty() && nc.read.empty())) return then();
  std::string tmp = std::string(tree::kCacheName) + ".tmp";
  std::string cmd = "cd " + quote(dir) + " && cat >" + tmp + " && mv -f " + tmp + " " +
                    std::string(tree::kCacheName);
  run_with_input(link, cmd, bytes, [then](std::string, std::string) { then(); });
}

}  // namespace transfer_detail

namespace {

constexpr const char* kTar = ".skyhost-sync.tar";
constexpr const char* kStage = ".skyhost-stage";

// Commands with many paths, at most ~32 KiB per line.
void batch(std::string& script, const std::string& cmd, const std::vector<std::string>& paths) {
  std::string line;
  for (const auto& p : paths) {
    if (line.empty()) line = cmd + " --";
    line += " " + quote(p);
    if (line.size() > 32768) {
      script += line + "\n";
      line.clear();
    }
  }
  if (!line.empty()) script += line + "\n";
}

std::string mode_octal(uint32_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", m);
  return b;
}

// The node's side of a plan, as a POSIX shell script run in the destination directory. It ends
// with a new mark and a listing with stats (after "#post"): the keys of the files as the plan
// left them, for the node's hash cache.
std::string script_for(const tree::Plan& p, const tree::Manifest& src, bool has_tar) {
  std::string s = "set -e\n";
  if (!p.copies.empty()) s += std::string("mkdir -p ") + kStage + "\n";
  for (size_t i = 0; i < p.copies.size(); i++)
    s += "cp -p -- " + quote(p.copies[i].from) + " " + kStage + "/" + std::to_string(i) + "\n";
  batch(s, "rm -rf", p.remove);
  batch(s, "mkdir -p", p.mkdirs);
  if (has_tar) s += std::string("tar -xpf ") + kTar + " --no-same-owner\n";
  for (size_t i = 0; i < p.copies.size(); i++)
    s += std::string("mv -f -- ") + kStage + "/" + std::to_string(i) + " " + quote(p.copies[i].to) +
         "\n";
  for (const auto& l : p.links) s += "ln -s -- " + quote(src.at(l).target) + " " + quote(l) + "\n";
  std::map<uint32_t, std::vector<std::string>> by_mode;
  for (const auto& c : p.chmods) by_mode[src.at(c).mode].push_back(c);
  for (const auto& [mode, paths] : by_mode) batch(s, "chmod " + mode_octal(mode), paths);
  s += std::string("rm -rf ") + kStage + " " + kTar + "\n";
  s += "if touch " + std::string(tree::kMarkName) + " 2>/dev/null; then printf '#post\\0'; " +
       kStatFind + " || true; fi\n";  // no listing: nothing cached, the sync stands
  return s;
}

// Local node: same filesystem, so every file comes from the source.
std::string apply_local(const tree::Plan& p, const tree::Manifest& src, const std::string& from,
                        const std::string& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return "cannot create " + to + ": " + ec.message();
  for (const auto& r : p.remove) {
    fs::remove_all(to + "/" + r, ec);
    if (ec) return "cannot remove " + to + "/" + r + ": " + ec.message();
  }
  for (const auto& d : p.mkdirs) {
    fs::create_directories(to + "/" + d, ec);
    if (ec) return "cannot create " + to + "/" + d + ": " + ec.message();
  }
  auto copy = [&](const std::string& rel) -> std::string {
    fs::copy_file(from + "/" + rel, to + "/" + rel, fs::copy_options::overwrite_existing, ec);
    return ec ? "cannot copy " + from + "/" + rel + " to " + to + "/" + rel + ": " + ec.message()
              : "";
  };
  for (const auto& f : p.send)
    if (auto e = copy(f); !e.empty()) return e;
  for (const auto& c : p.copies)
    if (auto e = copy(c.to); !e.empty()) return e;
  for (const auto& l : p.links) {
    fs::create_symlink(src.at(l).target, to + "/" + l, ec);
    if (ec) return "cannot make the link " + to + "/" + l + ": " + ec.message();
  }
  for (const auto& c : p.chmods) {
    fs::permissions(to + "/" + c, static_cast<fs::perms>(src.at(c).mode), ec);
    if (ec) return "cannot set the mode of " + to + "/" + c + ": " + ec.message();
  }
  return "";
}

}  // namespace

void transfer_detail::put_tree_local(uv_loop_t* loop, const std::string& local,
                                     const std::string& remote, SyncDone done) {
  struct State {
    std::string error;
    SyncReport report;
  };
  auto st = std::make_shared<State>();
  off_loop(
      loop,
      [st, local, remote] {
        tree::Manifest src, dst;
        tree::HashCount count;
        int64_t t0 = tree::clock_ns();
        st->error = tree::scan(local, src, false);
        if (st->error.empty()) st->error = tree::hash_cached(local, src, files_of(src), t0, count);
        if (!st->error.empty()) return;
        std::error_code ec;
        if (fs::exists(fs::symlink_status(remote, ec))) {
          if (fs::equivalent(local, remote, ec)) return;
          t0 = tree::clock_ns();
          st->error = tree::scan(remote, dst, false);
          if (st->error.empty())
            st->error = tree::hash_cached(remote, dst, tree::worth_hashing(src, dst), t0, count);
          if (!st->error.empty()) return;
        }
        tree::Plan p = tree::plan(src, dst);
        st->report = report_of(p, src);
        st->report.hashed = count.files;
        st->report.hashed_bytes = count.bytes;
        st->error = apply_local(p, src, local, remote);
      },
      [st, done] { done(st->error, st->report); });
}

namespace {

// One sync over SSH, step by step (the order of the members below).
struct SshSync : std::enable_shared_from_this<SshSync> {
  SshLink* link = nullptr;
  uv_loop_t* loop = nullptr;
  std::string local, remote, tar_path, error;
  SyncDone done;
  tree::Manifest src, dst;
  tree::Plan plan;

  std::string local_error;
  bool local_hashed = false, remote_hashed = false, failed = false;
  tree::HashCount local_count, node_count;
  NodeCache nc;
  std::vector<std::string> unsure;  // sent files that changed while the archive was written

  SyncReport report() const {
    SyncReport r = report_of(plan, src);
    r.hashed = local_count.files + node_count.files;
    r.hashed_bytes = local_count.bytes + node_count.bytes;
    return r;
  }

  void fail(const std::string& why) {
    if (failed) return;
    failed = true;
    done(why, report());
  }

  // Reads the local tree (no hashes yet), then hashes it on the thread pool while the node
  // lists and hashes its copy: the two sides hash at the same time.
  void start() {
    auto self = shared_from_this();
    auto t0 = std::make_shared<int64_t>(0);
    off_loop(
        loop,
        [self, t0] {
          *t0 = tree::clock_ns();
          self->error = tree::scan(self->local, self->src, false);
        },
        [self, t0] {
          if (!self->error.empty()) return self->fail(self->error);
          off_loop(
              self->loop,
              [self, t0] {
                self->local_error = tree::hash_cached(self->local, self->src, files_of(self->src),
                                                      *t0, self->local_count);
              },
              [self] {
                self->local_hashed = true;
                self->hashed();
              });
          self->list();
        });
  }

  // Once both sides are hashed.
  void hashed() {
    if (failed || !local_hashed || !remote_hashed) return;
    if (!local_error.empty()) return fail(local_error);
    make_plan();
  }

  void list() {
    auto self = shared_from_this();
    run_with_input(*link, cached_listing_command(remote, false), "",
                   [self](std::string out, std::string err) {
                     if (err.empty()) err = read_cached_listing(out, self->dst, self->nc);
                     if (!err.empty())
                       return self->fail("cannot list " + self->remote + " on the node: " + err);
                     self->hash();
                   });
  }

  void hash() {
    std::vector<std::string> paths = tree::from_cache(nc.cache, dst, tree::worth_hashing(src, dst));
    for (const auto& p : paths) {
      node_count.files++;
      node_count.bytes += dst.at(p).size;
    }
    if (paths.empty()) {
      remote_hashed = true;
      return hashed();
    }
    std::string input;
    for (const auto& p : paths) input += "./" + p + '\0';
    auto self = shared_from_this();
    run_with_input(*link, hash_command(remote), input, [self](std::string out, std::string err) {
      if (!err.empty())
        return self->fail("cannot hash files in " + self->remote + " on the node: " + err);
      if (auto e = tree::parse_hashes(out, self->dst); !e.empty())
        return self->fail("cannot hash files in " + self->remote + " on the node: " + e);
      self->remote_hashed = true;
      self->hashed();
    });
  }

  void make_plan() {
    plan = tree::plan(src, dst);
    if (plan.empty())
      return save_cache(nc.mark_ns ? tree::cacheable(dst, *nc.mark_ns) : tree::HashCache{});
    if (plan.send.empty()) return apply();
    auto self = shared_from_this();
    char tmpl[] = "/tmp/skyhost-sync-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return fail("cannot create a temporary file in /tmp");
    close(fd);
    tar_path = tmpl;
    off_loop(
        loop,
        [self] {
          self->error = tree::write_tar(self->local, self->src, self->plan.send, self->tar_path,
                                        &self->unsure);
        },
        [self] {
          if (!self->error.empty()) {
            std::remove(self->tar_path.c_str());
            return self->fail(self->error);
          }
          put_file(*self->link, self->loop, self->tar_path, self->remote + "/" + kTar,
                   [self](const std::string& err) {
                     std::remove(self->tar_path.c_str());
                     if (!err.empty()) return self->fail(err);
                     self->apply();
                   });
        });
  }

  void apply() {
    auto self = shared_from_this();
    std::string cmd = "mkdir -p " + quote(remote) + " && cd " + quote(remote) + " && sh -s";
    run_with_input(*link, cmd, script_for(plan, src, !plan.send.empty()),
                   [self](std::string out, std::string err) {
                     if (!err.empty())
                       return self->fail("cannot update " + self->remote + " on the node: " + err);
                     std::string_view post;
                     tree::cut_listing(out, "#post", post);
                     tree::Manifest after;
                     if (!tree::parse_listing(post, after, true).empty())
                       after.clear();  // no listing after: cache nothing
                     tree::HashCache before;
                     if (self->nc.mark_ns) before = tree::cacheable(self->dst, *self->nc.mark_ns);
                     tree::HashCache c = tree::cache_after(before, self->plan, self->src, after);
                     for (const auto& u : self->unsure) c.erase(u);
                     self->save_cache(c);
                   });
  }

  // A cache that cannot be written only costs hashing next time: not the sync's error.
  void save_cache(const tree::HashCache& c) {
    auto self = shared_from_this();
    save_node_cache(*link, remote, nc, c, [self] { self->done("", self->report()); });
  }
};

}  // namespace

void put_tree(Link& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
              SyncDone done) {
  auto* ssh_link = dynamic_cast<SshLink*>(&link);
  if (ssh_link == nullptr) return put_tree_local(loop, local, remote, std::move(done));
  auto s = std::make_shared<SshSync>();
  s->link = ssh_link;
  s->loop = loop;
  s->local = local;
  s->remote = remote;
  s->done = std::move(done);
  s->start();
}

}  // namespace skyhost
