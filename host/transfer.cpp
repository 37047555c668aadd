#include "host/transfer.hpp"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "host/ssh_link.hpp"

namespace skyhost {

namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string copy_local(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) return "";
  fs::path parent = fs::path(to).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  return ec ? "cannot copy " + from + " to " + to + ": " + ec.message() : "";
}

// SHA-256 of what arrives, as it arrives.
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
      throw std::bad_alloc();
  }
  ~Digest() { EVP_MD_CTX_free(ctx_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void update(std::string_view d) { EVP_DigestUpdate(ctx_, d.data(), d.size()); }
  /// Lower-case hex, as sha256sum prints it.
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    std::string out;
    char b[3];
    for (unsigned int i = 0; i < n; ++i) {
      std::snprintf(b, sizeof b, "%02x", md[i]);
      out += b;
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// The first word of `sha256sum FILE`'s output, if it is a digest.
std::string digest_of(const std::string& out) {
  std::string word = out.substr(0, out.find_first_of(" \t\n"));
  bool hex = word.size() == 64 && word.find_first_not_of("0123456789abcdef") == std::string::npos;
  return hex ? word : "";
}

// Hashes a local file on libuv's thread pool: a large file would hold the loop for seconds.
struct HashJob {
  uv_work_t req{};
  std::string path, hex, error;
  std::function<void(const HashJob&)> done;
};

void hash_file(uv_loop_t* loop, std::string path, std::function<void(const HashJob&)> done) {
  auto* j = new HashJob;
  j->path = std::move(path);
  j->done = std::move(done);
  j->req.data = j;
  auto work = [](uv_work_t* r) {
    auto* j = static_cast<HashJob*>(r->data);
    std::FILE* f = std::fopen(j->path.c_str(), "rb");
    if (f == nullptr) {
      j->error = std::strerror(errno);
      return;
    }
    try {
      Digest d;
      std::vector<char> buf(1 << 20);
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) d.update({buf.data(), n});
      if (std::ferror(f)) j->error = "read error";
      j->hex = d.hex();
    } catch (const std::exception& e) {
      j->error = e.what();
    }
    std::fclose(f);
  };
  auto after = [](uv_work_t* r, int status) {
    auto* j = static_cast<HashJob*>(r->data);
    if (status != 0 && j->error.empty()) j->error = uv_strerror(status);
    j->done(*j);
    delete j;
  };
  if (int rc = uv_queue_work(loop, &j->req, work, after); rc != 0) {
    j->error = uv_strerror(rc);
    j->done(*j);
    delete j;
  }
}

// After an upload: sha256sum on the node must agree with the local file's hash (both computed
// at once, neither on the loop thread).
void verify_put(ssh::Session& s, uv_loop_t* loop, const std::string& local,
                const std::string& remote, TransferDone done) {
  struct Check {
    int left = 2;
    std::string ours, theirs, why;
  };
  auto c = std::make_shared<Check>();
  auto one_done = [c, local, remote, done]() {
    if (--c->left > 0) return;
    if (!c->why.empty()) return done(c->why);
    if (c->ours != c->theirs)
      return done("the copy of " + local + " at " + remote +
                  " on the node differs from it (sha256 " + c->theirs + ", the file has " +
                  c->ours + ")");
    done("");
  };
  hash_file(loop, local, [c, local, one_done](const HashJob& j) {
    if (!j.error.empty() && c->why.empty()) c->why = "cannot read " + local + ": " + j.error;
    c->ours = j.hex;
    one_done();
  });
  ssh::RunOptions ro;
  ro.timeout = 600;
  s.run("sha256sum " + quote(remote), ro, [c, remote, one_done](ssh::RunResult r) {
    c->theirs = digest_of(r.out);
    if ((!r.exit.ok() || c->theirs.empty()) && c->why.empty())
      c->why = "cannot check " + remote +
               " on the node (sha256sum): " + (r.err.empty() ? r.exit.error : r.err);
    one_done();
  });
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
  auto upload = [&s, loop, local, remote, done, only_if_missing]() {
    s.upload_file(local, remote, ssh::UploadOptions{},
                  [&s, loop, local, remote, done, only_if_missing](const ssh::Status& st) {
                    // A file put under its content's name (plugins) is not checked again.
                    if (!st.error.empty() || only_if_missing) return done(st.error);
                    verify_put(s, loop, local, remote, done);
                  });
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
    std::string cmd = got == 0 ? "cat " + quote(remote)
                               : "tail -c +" + std::to_string(got + 1) + " " + quote(remote);
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
