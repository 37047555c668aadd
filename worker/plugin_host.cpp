#include "worker/plugin_host.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "host/wire.hpp"
#include "worker/plugin_values.hpp"

extern char** environ;

namespace skyworker {

namespace {

constexpr uint32_t kMagic = 0x504b5953;  // "SKYP"
constexpr uint32_t kInFd = 1;            // the bytes travel as a memfd, not in the message
constexpr size_t kInline = OutBuf::kInline;
constexpr size_t kMaxDef = 16 * 1024;  // name, path, symbol and hash together
constexpr int kSock = 3;               // the plugin host's end of the pair

struct Request {
  uint32_t magic;
  uint32_t flags;
  uint64_t size;  // argument bytes
  uint32_t len[4];
};

struct Response {
  uint32_t status;  // PluginClient::Status
  uint32_t flags;
  uint64_t size;
};

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

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// glibc's dlopen says "No such file or directory" for a library built for another machine: the
// ELF header says what it is.
std::string elf_hint(const std::string& path) {
  unsigned char h[20];
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  size_t n = std::fread(h, 1, sizeof h, f);
  std::fclose(f);
  if (n < sizeof h || std::memcmp(h,
                                  "\x7f"
                                  "ELF",
                                  4) != 0)
    return "; the file is not an ELF library";
  unsigned machine = h[18] | (h[19] << 8);  // little-endian files; a big-endian one shows too
  if (h[4] == 2 && machine == 62) return "";
  const char* name = machine == 3     ? "x86 (32-bit)"
                     : machine == 40  ? "ARM (32-bit)"
                     : machine == 183 ? "AArch64"
                     : machine == 243 ? "RISC-V"
                     : machine == 21  ? "PowerPC64"
                     : machine == 62  ? "x86-64 (32-bit class)"
                                      : nullptr;
  return std::string("; the file is built for ") +
         (name ? name : "machine " + std::to_string(machine)) + ", this node runs x86-64";
}

// ---- the plugin host process ----------------------------------------------------------------

class Host {
 public:
  void serve();

 private:
  void reply(PluginClient::Status st, std::string_view text, const std::shared_ptr<Region>& r);
  const sky_plugin* load(const PluginDef& def, std::string& why);
  void handle(const PluginDef& def, std::string_view args);

  std::unordered_map<std::string, void*> libs_;
  std::unordered_map<std::string, const sky_plugin*> records_;
};

void Host::reply(PluginClient::Status st, std::string_view text, const std::shared_ptr<Region>& r) {
  Response h{static_cast<uint32_t>(st), r ? kInFd : 0, r ? r->size() : text.size()};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<char*>(text.data()), r ? 0 : text.size()}};
  if (!send_msg(kSock, iov, 2, r ? r->fd() : -1)) _exit(0);  // the worker is gone
}

// Where an SSH node keeps the uploaded file (by content), else the host's own path.
std::string resolve(const PluginDef& def) {
  const char* home = std::getenv("HOME");
  if (home != nullptr && !def.hash.empty()) {
    std::string cached =
        std::string(home) + "/.skyhost/plugins/" + def.hash + "/" + base_name(def.path);
    if (access(cached.c_str(), R_OK) == 0) return cached;
  }
  return def.path;
}

const sky_plugin* Host::load(const PluginDef& def, std::string& why) {
  std::string path = resolve(def);
  std::string key = path + '\0' + def.symbol;
  if (auto it = records_.find(key); it != records_.end()) return it->second;
  void*& lib = libs_[path];
  if (lib == nullptr) {
    lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      std::string msg = e != nullptr ? e : "dlopen failed";
      why = (msg.find(path) == std::string::npos ? path + ": " + msg : msg) + elf_hint(path);
      libs_.erase(path);
      return nullptr;
    }
  }
  std::string sym = "sky_plugin_" + def.symbol;
  dlerror();
  auto* rec = static_cast<const sky_plugin*>(dlsym(lib, sym.c_str()));
  if (rec == nullptr) {
    why = path + ": no plugin '" + def.symbol + "' (symbol " + sym +
          " not found; is it exported with SKY_PLUGIN(" + def.symbol + ")?)";
    return nullptr;
  }
  if (rec->abi_version != SKY_PLUGIN_ABI_VERSION || rec->fn == nullptr) {
    why = path + ": plugin '" + def.symbol + "' was built for plugin ABI version " +
          std::to_string(rec->abi_version) + "; this worker runs version " +
          std::to_string(SKY_PLUGIN_ABI_VERSION);
    return nullptr;
  }
  records_[key] = rec;
  return rec;
}

void Host::handle(const PluginDef& def, std::string_view args) {
  std::string why;
  const sky_plugin* rec = load(def, why);
  if (rec == nullptr) return reply(PluginClient::Status::kLoadError, why, nullptr);
  ArgViews views;
  try {
    views.parse(args);
  } catch (const std::exception& e) {
    return reply(PluginClient::Status::kError, e.what(), nullptr);
  }
  ResultWriter w;
  int rc = rec->fn(ResultWriter::api(), w.call(), views.data(), views.size());
  if (rc != 0 && !w.failed()) w.fail("failed (returned " + std::to_string(rc) + ")");
  if (!w.finish()) return reply(PluginClient::Status::kError, w.why(), nullptr);
  auto region = w.out().take_region();
  reply(PluginClient::Status::kOk, w.out().view(), region);
}

void Host::serve() {
  std::string buf(sizeof(Request) + kMaxDef + kInline, '\0');
  for (;;) {
    int fd;
    ssize_t n = recv_msg(kSock, buf, &fd);
    if (n == 0) return;  // the executor is gone
    Request h;
    if (n < static_cast<ssize_t>(sizeof h)) _exit(2);
    std::memcpy(&h, buf.data(), sizeof h);
    size_t def_len = size_t{h.len[0]} + h.len[1] + h.len[2] + h.len[3];
    size_t body = (h.flags & kInFd) ? 0 : h.size;
    if (h.magic != kMagic || sizeof h + def_len + body != static_cast<size_t>(n)) _exit(2);
    const char* p = buf.data() + sizeof h;
    PluginDef def;
    std::string* fields[4] = {&def.name, &def.path, &def.symbol, &def.hash};
    for (int i = 0; i < 4; ++i) {
      fields[i]->assign(p, h.len[i]);
      p += h.len[i];
    }
    if (h.flags & kInFd) {
      if (fd < 0) _exit(2);
      std::shared_ptr<Region> args;
      try {
        args = Region::open(fd, h.size);
      } catch (const std::exception& e) {
        reply(PluginClient::Status::kError, e.what(), nullptr);
        continue;
      }
      handle(def, args->view());
    } else {
      if (fd >= 0) close(fd);
      handle(def, std::string_view(p, h.size));
    }
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

// ---- definitions ----------------------------------------------------------------------------

bool is_plugin_def(std::string_view closure) {
  return closure.size() > 1 && closure[0] == 0;
}

PluginDef parse_plugin_def(std::string_view closure) {
  skyhost::wire::Reader r(closure);
  if (r.get_u8() != 0 || r.get_u8() != 1) throw skyhost::wire::Error("unknown plugin reference");
  PluginDef d;
  for (std::string* f : {&d.name, &d.path, &d.symbol, &d.hash}) {
    uint32_t n = r.get_u32();
    f->assign(r.get_raw(n));
  }
  return d;
}

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
  if (buf_.empty()) buf_.resize(sizeof(Response) + kInline);
  return true;
}

bool PluginClient::send(const PluginDef& def, std::string_view args, int fd) {
  if (def.name.size() + def.path.size() + def.symbol.size() + def.hash.size() > kMaxDef)
    return false;
  Request h{kMagic,
            fd >= 0 ? kInFd : 0,
            args.size(),
            {static_cast<uint32_t>(def.name.size()), static_cast<uint32_t>(def.path.size()),
             static_cast<uint32_t>(def.symbol.size()), static_cast<uint32_t>(def.hash.size())}};
  auto part = [](const std::string& s) { return iovec{const_cast<char*>(s.data()), s.size()}; };
  iovec iov[6] = {{&h, sizeof h},   part(def.name), part(def.path),
                  part(def.symbol), part(def.hash), {const_cast<char*>(args.data()), 0}};
  if (fd < 0) iov[5].iov_len = args.size();
  return send_msg(sock_, iov, 6, fd);
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

PluginClient::Reply PluginClient::call(const PluginDef& def, std::string_view args,
                                       const std::shared_ptr<Region>& region) {
  Reply out;
  if (def.name.size() + def.path.size() + def.symbol.size() + def.hash.size() > kMaxDef) {
    out.status = Status::kLoadError;
    out.text = "plugin path and name are too long";
    return out;
  }
  std::shared_ptr<Region> copy;  // arguments built here (a call from Lua) that are large
  int fd = -1;
  try {
    if (region) {
      fd = region->fd();
    } else if (args.size() > kInline) {
      copy = Region::create(args.size());
      std::memcpy(copy->data(), args.data(), args.size());
      fd = copy->fd();
    }
  } catch (const std::exception& e) {
    out.text = e.what();
    return out;
  }
  // A host that died between calls ran nothing of ours: start another and send again.
  for (int attempt = 0;; ++attempt) {
    std::string why;
    if (sock_ < 0 && !start(why)) {
      out.status = Status::kLoadError;
      out.text = why;
      return out;
    }
    if (send(def, args, fd)) break;
    why = reap();
    if (attempt == 1) {
      out.status = Status::kDied;
      out.text = why;
      return out;
    }
  }
  int rfd;
  ssize_t n = recv_msg(sock_, buf_, &rfd);
  Response h{};
  if (n >= static_cast<ssize_t>(sizeof h)) std::memcpy(&h, buf_.data(), sizeof h);
  size_t inline_size = (h.flags & kInFd) ? 0 : h.size;
  if (n <= 0 || n < static_cast<ssize_t>(sizeof h) || sizeof h + inline_size != size_t(n) ||
      ((h.flags & kInFd) && rfd < 0)) {
    if (rfd >= 0) close(rfd);
    if (n > 0) kill(pid_, SIGKILL);  // it spoke nonsense: start afresh next time
    out.status = Status::kDied;
    out.text = reap();
    return out;
  }
  out.status = static_cast<Status>(h.status);
  try {
    if (h.flags & kInFd) {
      out.region = Region::open(rfd, h.size);
    } else {
      if (rfd >= 0) close(rfd);
      out.text.assign(buf_.data() + sizeof h, inline_size);
    }
  } catch (const std::exception& e) {
    out.status = Status::kError;
    out.text = e.what();
  }
  return out;
}

}  // namespace skyworker
