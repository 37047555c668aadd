#include "worker/plugin_host.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "host/links/wire.hpp"
#include "worker/plugin_loader.hpp"

extern char** environ;

namespace skyworker {

namespace {

constexpr uint32_t kMagic = 0x504b5953;  // "SKYP"
constexpr uint32_t kInFd = 1;            // the bytes travel as a memfd, not in the message
constexpr size_t kInline = 64 * 1024;    // bytes up to this size travel in the message
constexpr size_t kMaxDef = 16 * 1024;    // name, path, symbol and hash together
constexpr int kSock = 3;                 // the plugin host's end of the pair

// A request runs `count` calls of one plugin: the header, the four strings of the PluginDef,
// then per call a u64 size and the argument bytes, which for a single large call are in the
// attached memfd instead. A reply answers `count` calls in order: per call a u32 status, a
// u32 0, a u64 size and the bytes (those of a single large result in the attached memfd).
struct Request {
  uint32_t magic;
  uint32_t flags;
  uint32_t count;
  uint32_t len[4];
};

struct Response {
  uint32_t count;
  uint32_t flags;
};

struct Entry {
  uint32_t status;  // PluginStatus
  uint32_t reserved;
  uint64_t size;
};

constexpr size_t kBatch = 48 * 1024;  // inline bytes gathered into one message

// One message, with a descriptor attached when fd >= 0. False when the peer is gone.
bool send_msg(int sock, iovec* iov, int niov, int fd) {
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(niov);
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    std::memset(ctl, 0, sizeof ctl);
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// One message into buf; *fd gets an attached descriptor or -1. Returns the size, 0 when the
// peer is gone, -1 for a message larger than buf.
ssize_t recv_msg(int sock, std::string& buf, int* fd) {
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  *fd = -1;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  }
  if (n <= 0) return 0;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return -1;
  }
  return n;
}

// ---- the plugin host process ----------------------------------------------------------------

class Host {
 public:
  void serve();

 private:
  void serve_requests();
  void run(const sky_plugin* rec, std::string_view args);
  void add(PluginStatus st, std::string_view bytes);
  void flush();

  PluginLoader loader_;
  std::string out_ = std::string(sizeof(Response), '\0');  // replies not yet sent
  uint32_t pending_ = 0;
};

void Host::flush() {
  if (pending_ == 0) return;
  Response h{pending_, 0};
  std::memcpy(out_.data(), &h, sizeof h);
  iovec iov{out_.data(), out_.size()};
  if (!send_msg(kSock, &iov, 1, -1)) _exit(0);  // the worker is gone
  out_.resize(sizeof(Response));
  pending_ = 0;
}

void Host::add(PluginStatus st, std::string_view bytes) {
  if (out_.size() + sizeof(Entry) + bytes.size() > sizeof(Response) + kBatch) flush();
  Entry e{static_cast<uint32_t>(st), 0, bytes.size()};
  out_.append(reinterpret_cast<const char*>(&e), sizeof e);
  out_.append(bytes);
  ++pending_;
}

void Host::run(const sky_plugin* rec, std::string_view args) {
  PluginReply r = call_plugin(rec, args);
  if (!r.region) return add(r.status, r.text);
  flush();  // a large result goes alone, as its memfd
  auto& region = r.region;
  Response h{1, kInFd};
  Entry e{static_cast<uint32_t>(PluginStatus::kOk), 0, region->size()};
  iovec iov[2] = {{&h, sizeof h}, {&e, sizeof e}};
  if (!send_msg(kSock, iov, 2, region->fd())) _exit(0);
}

void Host::serve() {
  try {
    serve_requests();
  } catch (const std::exception&) {
    _exit(2);  // a malformed request: the executor sees the end and starts another host
  }
}

void Host::serve_requests() {
  std::string buf(sizeof(Request) + kMaxDef + kInline + 64, '\0');
  for (;;) {
    int fd;
    ssize_t n = recv_msg(kSock, buf, &fd);
    if (n == 0) return;  // the executor is gone
    Request h;
    if (n < static_cast<ssize_t>(sizeof h)) _exit(2);
    std::memcpy(&h, buf.data(), sizeof h);
    size_t def_len = size_t{h.len[0]} + h.len[1] + h.len[2] + h.len[3];
    if (h.magic != kMagic || sizeof h + def_len > static_cast<size_t>(n) || h.count == 0 ||
        ((h.flags & kInFd) && (fd < 0 || h.count != 1)))
      _exit(2);
    skyhost::wire::Reader r(buf.data() + sizeof h, static_cast<size_t>(n) - sizeof h);
    PluginDef def;
    std::string* fields[4] = {&def.name, &def.path, &def.symbol, &def.hash};
    for (int i = 0; i < 4; ++i) fields[i]->assign(r.get_raw(h.len[i]));
    std::string why;
    const sky_plugin* rec = loader_.load(def, why);
    auto started = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < h.count; ++i) {
      uint64_t size = r.get_u64();
      std::shared_ptr<Region> args;
      std::string_view bytes;
      if (h.flags & kInFd) {
        try {
          args = Region::open(fd, size);
          bytes = args->view();
        } catch (const std::exception& e) {
          add(PluginStatus::kError, e.what());
          continue;
        }
      } else {
        bytes = r.get_raw(size);
      }
      if (rec == nullptr) {
        add(PluginStatus::kLoadError, why);
      } else {
        run(rec, bytes);
      }
      // Cheap calls are answered together; one that took a while is answered at once.
      auto now = std::chrono::steady_clock::now();
      if (now - started > std::chrono::milliseconds(1)) {
        flush();
        started = now;
      }
    }
    if (!(h.flags & kInFd) && fd >= 0) close(fd);
    flush();
  }
}

std::string describe_death(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* what = strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + " (" + (what ? what : "?") + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

}  // namespace

int plugin_host_main(int argc, char** argv) {
  // It dies with the worker, even one killed with SIGKILL (its process group is killed too).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc < 3 || std::to_string(getppid()) != argv[2]) return 0;
  prctl(PR_SET_NAME, "skyplugin-host");
  Host().serve();
  // _exit: a plugin's static destructors and leak reports are not the worker's business.
  _exit(0);
}

// ---- the executor's side --------------------------------------------------------------------

PluginClient::~PluginClient() {
  if (sock_ >= 0) close(sock_);  // the host sees the end and exits
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
}

bool PluginClient::start(std::string& why) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    why = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  std::string parent = std::to_string(getpid());
  char arg0[] = "skyworker";
  char arg1[] = "--plugin-host";
  char* args[] = {arg0, arg1, parent.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  // dup2 onto itself would leave close-on-exec set; sv[1] is never 3 after this.
  int child = sv[1] == kSock ? fcntl(sv[1], F_DUPFD_CLOEXEC, kSock + 1) : sv[1];
  posix_spawn_file_actions_adddup2(&fa, child, kSock);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (child != sv[1]) close(child);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    why = std::string("cannot start the plugin host (/proc/self/exe): ") + std::strerror(rc);
    return false;
  }
  sock_ = sv[0];
  pid_ = pid;
  if (buf_.empty()) buf_.resize(sizeof(Response) + sizeof(Entry) + kInline + 64);
  return true;
}

bool PluginClient::send(const PluginDef& def, const std::vector<Arg>& args, size_t from,
                        size_t count) {
  int fd = count == 1 && args[from].region ? args[from].region->fd() : -1;
  Request h{kMagic,
            fd >= 0 ? kInFd : 0,
            static_cast<uint32_t>(count),
            {static_cast<uint32_t>(def.name.size()), static_cast<uint32_t>(def.path.size()),
             static_cast<uint32_t>(def.symbol.size()), static_cast<uint32_t>(def.hash.size())}};
  out_.assign(reinterpret_cast<const char*>(&h), sizeof h);
  for (const std::string* f : {&def.name, &def.path, &def.symbol, &def.hash}) out_.append(*f);
  for (size_t i = from; i < from + count; ++i) {
    uint64_t size = args[i].bytes.size();
    out_.append(reinterpret_cast<const char*>(&size), sizeof size);
    if (fd < 0) out_.append(args[i].bytes);
  }
  iovec iov{out_.data(), out_.size()};
  return send_msg(sock_, &iov, 1, fd);
}

void PluginClient::restart() {
  if (sock_ < 0) return;
  kill(pid_, SIGKILL);
  reap();
}

std::string PluginClient::reap() {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  pid_ = 0;
  return r > 0 ? describe_death(status) : "ended (status unknown)";
}

bool PluginClient::receive(const Done& done, size_t& next) {
  int rfd;
  ssize_t n = recv_msg(sock_, buf_, &rfd);
  Response h{};
  bool ok = n >= static_cast<ssize_t>(sizeof h);
  if (ok) std::memcpy(&h, buf_.data(), sizeof h);
  ok = ok && h.count > 0 && (!(h.flags & kInFd) || (rfd >= 0 && h.count == 1));
  std::vector<Reply> replies;
  try {
    skyhost::wire::Reader r(buf_.data() + sizeof h, ok ? static_cast<size_t>(n) - sizeof h : 0);
    for (uint32_t i = 0; ok && i < h.count; ++i) {
      Entry e;
      std::memcpy(&e, r.get_raw(sizeof e).data(), sizeof e);
      Reply rep;
      rep.status = static_cast<Status>(e.status);
      if (h.flags & kInFd) {
        rep.region = Region::open(rfd, e.size);
        rfd = -1;
      } else {
        rep.text.assign(r.get_raw(e.size));
      }
      replies.push_back(std::move(rep));
    }
    ok = ok && r.empty();
  } catch (const std::exception&) {
    ok = false;
  }
  if (rfd >= 0) close(rfd);
  if (!ok) {
    if (n > 0) kill(pid_, SIGKILL);  // it spoke nonsense: start afresh next time
    Reply rep;
    rep.status = Status::kDied;
    rep.text = reap();
    done(next++, std::move(rep));
    return false;
  }
  for (Reply& rep : replies) done(next++, std::move(rep));
  return true;
}

void PluginClient::call_all(const PluginDef& def, std::vector<Arg> args, const Done& done) {
  const size_t n = args.size();
  size_t next = 0;  // the first call without a reply
  auto fail_rest = [&](Status st, const std::string& why) {
    for (; next < n; ++next) {
      Reply r;
      r.status = st;
      r.text = why;
      done(next, std::move(r));
    }
  };
  if (def.name.size() + def.path.size() + def.symbol.size() + def.hash.size() > kMaxDef)
    return fail_rest(Status::kLoadError, "plugin path and name are too long");
  try {
    for (Arg& a : args) {  // arguments built here (a call from Lua) that are large
      if (a.region || a.bytes.size() <= kInline) continue;
      a.region = Region::create(a.bytes.size());
      std::memcpy(a.region->data(), a.bytes.data(), a.bytes.size());
    }
  } catch (const std::exception& e) {
    return fail_rest(Status::kError, e.what());
  }
  bool restarted = false;
  while (next < n) {
    std::string why;
    if (sock_ < 0 && !start(why)) return fail_rest(Status::kLoadError, why);
    // One message: a single call whose bytes are in shared memory, or the small calls that fit.
    size_t count = 1, bytes = args[next].bytes.size() + sizeof(uint64_t);
    while (!args[next].region && next + count < n && !args[next + count].region &&
           bytes + args[next + count].bytes.size() + sizeof(uint64_t) <= kBatch) {
      bytes += args[next + count].bytes.size() + sizeof(uint64_t);
      ++count;
    }
    if (!send(def, args, next, count)) {  // the host died between calls, running none of ours
      why = reap();
      if (restarted) return fail_rest(Status::kDied, why);
      restarted = true;
      continue;
    }
    restarted = false;
    // The host answers in order: when it dies, the first call without an answer is the one
    // that killed it; the calls after it never ran and go to the next host.
    for (size_t end = next + count; next < end;) {
      if (!receive(done, next)) break;
    }
  }
}

PluginClient::Reply PluginClient::call(const PluginDef& def, std::string_view args,
                                       const std::shared_ptr<Region>& region) {
  Reply out;
  call_all(def, {Arg{args, region}}, [&](size_t, Reply&& r) { out = std::move(r); });
  return out;
}

}  // namespace skyworker
