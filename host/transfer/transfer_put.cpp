// pool:put over SSH: the local file is streamed into `cat > REMOTE.skyhost-part` on the node. A
// `cat` cut part way (killed, its channel failed) while the session lives is started again as
// `cat >> PART` from the size the part has on the node, so what arrived is not sent again; once
// whole, sha256sum of the part must equal the local file's (hashed on the thread pool), and only
// then is the part moved into place. A large file goes in pieces over several sessions instead
// (lanes.hpp), written in place into the part.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "host/transfer/lanes.hpp"
#include "host/transfer/transfer_util.hpp"

namespace skyhost::transfer_detail {

namespace {

struct Put : std::enable_shared_from_this<Put> {
  static constexpr int kAttempts = 4;
  static constexpr size_t kChunk = 1u << 20;   // read from the local file at a time
  static constexpr size_t kQueued = 4u << 20;  // most bytes waiting for the SSH layer
  SshLink* link = nullptr;
  uv_loop_t* loop = nullptr;
  std::string local, remote, part;
  TransferDone done;
  int fd = -1;
  int attempts = 0;
  uint64_t channel = 0;  // the held channel of the current attempt
  bool open = false;
  bool eof = false;
  std::string read_error;

  ~Put() {
    if (fd >= 0) ::close(fd);
  }

  void start(uint64_t offset) {
    attempts++;
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0)
      return fail("cannot read " + local + ": " + std::strerror(errno));
    eof = false;
    // exec: the remote shell must not stand between cat and the channel, or a killed cat
    // would look like a failed one (an exit status instead of the signal).
    std::string cmd = std::string(offset == 0 ? "exec cat > " : "exec cat >> ") + quote(part);
    uint64_t id = link->hold(link->session().exec(cmd));
    channel = id;
    open = true;
    ssh::Channel& ch = link->held(id);
    auto err = std::make_shared<std::string>();
    auto self = shared_from_this();
    ch.on_stderr([err](std::string_view d) {
      if (err->size() < 1024) err->append(d.substr(0, 1024 - err->size()));
    });
    ch.on_exit([self, id, err](const ssh::ExitInfo& e) {
      self->open = false;
      self->ended(e, *err);
      self->link->release(id);  // destroys this channel: allowed from its own callback
    });
    feed();
  }

  // Local reads are synchronous (page cache, 1 MiB at a time); at most kQueued bytes wait.
  void feed() {
    if (!open) return;
    ssh::Channel& ch = link->held(channel);
    while (!eof && ch.pending_bytes() < kQueued) {
      std::string buf(kChunk, '\0');
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        read_error = std::strerror(errno);
        ch.close();  // on_exit reports it
        return;
      }
      if (n == 0) {
        eof = true;
        ch.send_eof();
        return;
      }
      buf.resize(static_cast<size_t>(n));
      auto self = shared_from_this();
      uint64_t id = channel;
      ch.write(std::move(buf), [self, id](const ssh::Status& st) {
        if (st.ok() && self->open && self->channel == id) self->feed();
      });
    }
  }

  void ended(const ssh::ExitInfo& e, std::string err) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    if (!read_error.empty()) return fail("cannot read " + local + ": " + read_error);
    if (!e.ok()) {
      bool cut = !e.signal.empty() || (!e.error.empty() && e.code == -1);
      if (cut && link->session().is_ready() && attempts < kAttempts) return resume();
      std::string why = !err.empty()        ? err
                        : !e.error.empty()  ? e.error
                        : !e.signal.empty() ? "killed by signal " + e.signal
                                            : "exit status " + std::to_string(e.code);
      return fail("cannot write " + remote + " on the node: " + why);
    }
    check();
  }

  void start_lanes(uint64_t size, int lanes) {
    ssh::RunOptions ro;
    ro.timeout = 60;
    auto self = shared_from_this();
    link->session().run(": > " + quote(part), ro, [self, size, lanes](ssh::RunResult r) {
      if (!r.exit.ok())
        return self->fail("cannot write " + self->remote +
                          " on the node: " + (r.err.empty() ? r.exit.error : r.err));
      move_ranges(*self->link, self->loop, true, self->fd, self->part, size, lanes,
                  [self](const std::string& error) {
                    if (!error.empty()) return self->fail(error);
                    self->check();
                  });
    });
  }

  // Goes on from what the node has.
  void resume() {
    ssh::RunOptions ro;
    ro.timeout = 60;
    auto self = shared_from_this();
    link->session().run("stat -c %s " + quote(part), ro, [self](ssh::RunResult r) {
      char* end = nullptr;
      unsigned long long have = std::strtoull(r.out.c_str(), &end, 10);
      if (!r.exit.ok() || end == r.out.c_str())
        return self->fail("cannot resume the upload of " + self->local + ": " +
                          (r.err.empty() ? r.exit.error : r.err));
      self->start(have);
    });
  }

  void check() {
    struct Both {
      int left = 2;
      std::string ours, theirs, why;
    };
    auto b = std::make_shared<Both>();
    auto self = shared_from_this();
    auto one_done = [self, b]() {
      if (--b->left > 0) return;
      if (!b->why.empty()) return self->fail(b->why);
      if (b->ours != b->theirs)
        return self->fail("the copy of " + self->local + " at " + self->remote +
                          " on the node differs from it (sha256 " + b->theirs + ", the file has " +
                          b->ours + ")");
      self->place();
    };
    hash_file(loop, local, [b, self, one_done](const std::string& hex, const std::string& error) {
      if (!error.empty() && b->why.empty()) b->why = "cannot read " + self->local + ": " + error;
      b->ours = hex;
      one_done();
    });
    ssh::RunOptions ro;
    ro.timeout = 600;
    link->session().run(remote_sha256(part), ro, [self, b, one_done](ssh::RunResult r) {
      b->theirs = digest_of(r.out);
      if ((!r.exit.ok() || b->theirs.empty()) && b->why.empty())
        b->why = "cannot check " + self->remote +
                 " on the node (sha256sum): " + (r.err.empty() ? r.exit.error : r.err);
      one_done();
    });
  }

  void place() {
    ssh::RunOptions ro;
    ro.timeout = 60;
    auto self = shared_from_this();
    std::string cmd =
        "chmod 0644 " + quote(part) + " && mv -f " + quote(part) + " " + quote(remote);
    link->session().run(cmd, ro, [self](ssh::RunResult r) {
      if (!r.exit.ok())
        return self->fail("cannot move " + self->part + " to " + self->remote +
                          " on the node: " + (r.err.empty() ? r.exit.error : r.err));
      self->done("");
    });
  }

  void fail(const std::string& why) {
    if (link->session().is_ready()) {  // leave no part behind; the answer does not wait for it
      ssh::RunOptions ro;
      ro.timeout = 30;
      link->session().run("rm -f " + quote(part), ro, [](ssh::RunResult) {});
    }
    done(why);
  }
};

}  // namespace

void put_ssh(SshLink& link, uv_loop_t* loop, const std::string& local, const std::string& remote,
             TransferDone done, int lanes) {
  auto p = std::make_shared<Put>();
  p->link = &link;
  p->loop = loop;
  p->local = local;
  p->remote = remote;
  p->part = remote + ".skyhost-part";
  p->done = std::move(done);
  p->fd = ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
  if (p->fd < 0) return p->done("cannot read " + local + ": " + std::strerror(errno));
  struct stat st {};
  int n = ::fstat(p->fd, &st) == 0 ? lane_count(lanes, static_cast<uint64_t>(st.st_size)) : 1;
  if (n > 1) return p->start_lanes(static_cast<uint64_t>(st.st_size), n);
  p->start(0);
}

}  // namespace skyhost::transfer_detail
