#include "worker/shell.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <lua.hpp>
#include <string>
#include <vector>

#include "worker/capture.hpp"
#include "worker/executor.hpp"
#include "worker/lines.hpp"
#include "worker/node.hpp"

extern char** environ;

namespace skyworker {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kQuiet = milliseconds(200);       // then a line without newline goes out
constexpr auto kAfterExit = milliseconds(2000);  // reading output of what escaped the group

// ---- the registry: fixed slots, so that a signal handler can walk it -------------------------

constexpr int kSlots = 1024;
struct Slot {
  std::atomic<pid_t> pgid{0};
  std::atomic<uint64_t> task{0};
};
Slot g_slots[kSlots];

constexpr int kCancelled = 256;  // recently cancelled tasks, so a late sky.sh does not start
std::atomic<uint64_t> g_cancelled[kCancelled];
std::atomic<unsigned> g_cancel_next{0};

int register_group(pid_t pgid, uint64_t task) {
  for (int i = 0; i < kSlots; i++) {
    pid_t empty = 0;
    if (g_slots[i].pgid.compare_exchange_strong(empty, -1)) {
      g_slots[i].task.store(task);
      g_slots[i].pgid.store(pgid);
      return i;
    }
  }
  return -1;
}

bool cancelled(uint64_t task) {
  if (task == 0) return false;
  for (auto& c : g_cancelled) {
    if (c.load() == task) return true;
  }
  return false;
}

// ---- one command ------------------------------------------------------------------------------

struct Pipe {
  int fd = -1;
  Stream stream = kStdout;
  LineSplitter split;
  std::string tail;
  size_t cap = 0;
  Clock::time_point last;

  void keep(std::string_view data) {
    tail.append(data);
    if (tail.size() > 2 * cap) tail.erase(0, tail.size() - cap);
  }
  std::string_view kept() const {
    std::string_view v(tail);
    return v.size() > cap ? v.substr(v.size() - cap) : v;
  }
};

struct Job {
  Shared* shared = nullptr;
  uint64_t task = 0;
  Pipe out[2];
  std::string input;
  size_t input_off = 0;
  int in_fd = -1;

  void line(Pipe& o, std::string_view text) {
    if (shared != nullptr) send_log(shared->out, task, o.stream, text);
  }
  void drain(Pipe& o) {
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = read(o.fd, buf, sizeof buf);
      if (n > 0) {
        std::string_view d(buf, static_cast<size_t>(n));
        o.last = Clock::now();
        o.keep(d);
        o.split.feed(d, [&](std::string_view l) { line(o, l); });
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      o.split.flush([&](std::string_view l) { line(o, l); });
      close(o.fd);
      o.fd = -1;
      return;
    }
  }
  void feed_input() {
    while (in_fd >= 0) {
      if (input_off == input.size()) {
        close(in_fd);
        in_fd = -1;
        return;
      }
      size_t n = std::min<size_t>(input.size() - input_off, 64 * 1024);
      ssize_t w = write(in_fd, input.data() + input_off, n);
      if (w > 0) {
        input_off += static_cast<size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && errno == EAGAIN) {
        return;
      } else {  // the command stopped reading: the rest of its input is not wanted
        close(in_fd);
        in_fd = -1;
        return;
      }
    }
  }
};

[[noreturn]] void child_fail(int status_fd, int err) {
  ssize_t n = write(status_fd, &err, sizeof err);
  (void)n;
  _exit(127);
}

/// The child between fork and exec: async-signal-safe calls only.
[[noreturn]] void child(pid_t parent, int in, int out, int err, int status_fd, const char* cwd,
                        char* const* argv, char* const* envp) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // if the worker dies unannounced, the shell goes with it
  if (getppid() != parent) _exit(127);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT}) sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) child_fail(status_fd, errno);
  if (cwd != nullptr && chdir(cwd) != 0) child_fail(status_fd, errno);
  execve("/bin/sh", argv, envp);
  child_fail(status_fd, errno);
}

/// vfork: the calling thread waits until the child has exec'd (or failed to), and no page tables
/// are copied, so starting a command costs the same however large the worker is.
[[gnu::noinline]] pid_t spawn(int in, int out, int err, int status_fd, const char* cwd,
                              char* const* argv, char* const* envp) {
  pid_t parent = getpid();
  pid_t pid = vfork();
  if (pid == 0) child(parent, in, out, err, status_fd, cwd, argv, envp);
  return pid;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

bool has_exited(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

/// shell.run(cmd, env, cwd, timeout, stdin, tail_bytes) → {code, signal, stdout, stderr,
/// timed_out}. env: table name → string (added to the node's environment) or nil.
int l_run(lua_State* L) {
  std::string cmd = luaL_checkstring(L, 1);
  const char* cwd = luaL_optstring(L, 3, nullptr);
  double timeout = luaL_optnumber(L, 4, 0);
  size_t in_len = 0;
  const char* in_data = luaL_optlstring(L, 5, nullptr, &in_len);
  auto cap = static_cast<size_t>(luaL_optinteger(L, 6, 1 << 20));

  // The environment: the node's, with the task's additions (built here: the child may not
  // allocate between fork and exec).
  std::vector<std::string> env;
  std::vector<std::string> added;
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      added.push_back(std::string(luaL_checkstring(L, -2)) + "=" + luaL_checkstring(L, -1));
      lua_pop(L, 1);
    }
  }
  for (char** e = environ; *e != nullptr; e++) {
    std::string_view kv(*e);
    bool replaced = false;
    for (auto& a : added) {
      size_t eq = a.find('=');
      if (kv.size() > eq && kv.substr(0, eq + 1) == std::string_view(a).substr(0, eq + 1)) {
        replaced = true;
      }
    }
    if (!replaced) env.emplace_back(kv);
  }
  env.insert(env.end(), added.begin(), added.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string arg0 = "sh", arg1 = "-c";
  char* argv[] = {arg0.data(), arg1.data(), cmd.data(), nullptr};

  Job job;
  job.shared = current_shared();
  job.task = current_task();
  if (cancelled(job.task)) return luaL_error(L, "sky.sh: the task was cancelled");
  job.out[0].stream = kStdout;
  job.out[1].stream = kStderr;
  int pout[2], perr[2], pin[2] = {-1, -1}, pstat[2];
  if (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC) || pipe2(pstat, O_CLOEXEC)) {
    return luaL_error(L, "sky.sh: cannot create pipes: %s", std::strerror(errno));
  }
  int devnull = -1;
  if (in_data != nullptr) {
    if (pipe2(pin, O_CLOEXEC) != 0) return luaL_error(L, "sky.sh: %s", std::strerror(errno));
    job.input.assign(in_data, in_len);
  } else {
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  pid_t pid = spawn(in_data != nullptr ? pin[0] : devnull, pout[1], perr[1], pstat[1], cwd, argv,
                    envp.data());
  int fork_errno = errno;
  for (int fd : {pout[1], perr[1], pin[0], pstat[1], devnull}) {
    if (fd >= 0) close(fd);
  }
  if (pid < 0) {
    for (int fd : {pout[0], perr[0], pin[1], pstat[0]}) {
      if (fd >= 0) close(fd);
    }
    return luaL_error(L, "sky.sh: cannot start /bin/sh: %s", std::strerror(fork_errno));
  }
  setpgid(pid, pid);  // also here, so the group exists before anyone kills it
  int slot = register_group(pid, job.task);
  if (cancelled(job.task)) kill(-pid, SIGKILL);  // cancelled while it started
  int exec_err = 0;
  if (read(pstat[0], &exec_err, sizeof exec_err) != sizeof exec_err) exec_err = 0;
  close(pstat[0]);
  if (exec_err != 0) {
    waitpid(pid, nullptr, 0);
    if (slot >= 0) g_slots[slot].pgid.store(0);
    for (int fd : {pout[0], perr[0], pin[1]}) {
      if (fd >= 0) close(fd);
    }
    if (cwd != nullptr && exec_err == ENOENT) {
      return luaL_error(L, "sky.sh: cannot change to directory '%s': %s", cwd,
                        std::strerror(exec_err));
    }
    return luaL_error(L, "sky.sh: cannot run '%s': %s", cmd.c_str(), std::strerror(exec_err));
  }
  job.out[0].fd = pout[0];
  job.out[1].fd = perr[0];
  job.in_fd = pin[1];
  for (int fd : {pout[0], perr[0], pin[1]}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  for (auto& o : job.out) o.cap = cap;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));

  auto start = Clock::now();
  auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(timeout > 0 ? timeout : 0));
  bool timed_out = false, exited = false;
  Clock::time_point exit_time;
  job.feed_input();
  while (job.out[0].fd >= 0 || job.out[1].fd >= 0 || !exited) {
    auto now = Clock::now();
    if (!exited && timeout > 0 && now >= deadline) {
      kill(-pid, SIGKILL);
      timed_out = true;
      timeout = 0;
    }
    if (exited && now - exit_time >= kAfterExit) break;  // something left the group; stop
    milliseconds wait(-1);
    auto sooner = [&](Clock::time_point t) {
      auto ms = std::chrono::duration_cast<milliseconds>(t - now) + milliseconds(1);
      if (ms < milliseconds(0)) ms = milliseconds(0);
      if (wait.count() < 0 || ms < wait) wait = ms;
    };
    if (!exited && timeout > 0) sooner(deadline);
    if (exited) sooner(exit_time + kAfterExit);
    if (!exited && pidfd < 0) sooner(now + milliseconds(50));
    for (auto& o : job.out) {
      if (o.fd >= 0 && o.split.pending()) sooner(o.last + kQuiet);
    }
    pollfd p[4] = {{job.out[0].fd, POLLIN, 0},
                   {job.out[1].fd, POLLIN, 0},
                   {job.in_fd, POLLOUT, 0},
                   {exited ? -1 : pidfd, POLLIN, 0}};
    if (poll(p, 4, static_cast<int>(wait.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (job.out[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
        job.drain(job.out[i]);
    }
    if (job.in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) job.feed_input();
    now = Clock::now();
    for (auto& o : job.out) {
      if (o.fd >= 0 && o.split.pending() && now - o.last >= kQuiet) {
        o.split.flush([&](std::string_view l) { job.line(o, l); });
      }
    }
    if (!exited && has_exited(pid)) {
      exited = true;
      exit_time = now;
      kill(-pid, SIGKILL);  // whatever the command left running in its group ends with it
      if (job.in_fd >= 0) {
        close(job.in_fd);
        job.in_fd = -1;
      }
    }
  }
  // Unregistered before the shell is reaped: its pid (and group id) cannot be reused until then.
  if (slot >= 0) g_slots[slot].pgid.store(0);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
  for (auto& o : job.out) {
    if (o.fd < 0) continue;
    o.split.flush([&](std::string_view l) { job.line(o, l); });
    close(o.fd);
  }
  if (job.in_fd >= 0) close(job.in_fd);

  lua_createtable(L, 0, 5);
  if (WIFSIGNALED(status)) {
    lua_pushinteger(L, 128 + WTERMSIG(status));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, signal_name(WTERMSIG(status)).c_str());
    lua_setfield(L, -2, "signal");
  } else {
    lua_pushinteger(L, WEXITSTATUS(status));
    lua_setfield(L, -2, "code");
  }
  const char* names[2] = {"stdout", "stderr"};
  for (int i = 0; i < 2; i++) {
    auto kept = job.out[i].kept();
    lua_pushlstring(L, kept.data(), kept.size());
    lua_setfield(L, -2, names[i]);
  }
  if (timed_out) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "timed_out");
  }
  lua_pushnumber(L, std::chrono::duration<double>(Clock::now() - start).count());
  lua_setfield(L, -2, "seconds");
  return 1;
}

/// shell.free_port() → a TCP port free on this node now (for a torchrun's master).
int l_free_port(lua_State* L) {
  int port = free_port();
  if (port == 0) return luaL_error(L, "no free TCP port on this node");
  lua_pushinteger(L, port);
  return 1;
}

int open_shell(lua_State* L) {
  const luaL_Reg fns[] = {{"run", l_run}, {"free_port", l_free_port}, {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace

void preload_shell(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_shell);
  lua_setfield(L, -2, "skyworker.shell");
  lua_pop(L, 1);
}

void kill_all_commands() noexcept {
  for (auto& s : g_slots) {
    pid_t g = s.pgid.load();
    if (g > 0) kill(-g, SIGKILL);
  }
}

void kill_task_commands(uint64_t task) noexcept {
  if (task == 0) return;
  g_cancelled[g_cancel_next.fetch_add(1) % kCancelled].store(task);
  for (auto& s : g_slots) {
    pid_t g = s.pgid.load();
    if (g > 0 && s.task.load() == task) kill(-g, SIGKILL);
  }
}

}  // namespace skyworker
