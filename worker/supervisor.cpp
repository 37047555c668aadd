#include "worker/supervisor.hpp"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <lua.hpp>
#include <string>
#include <thread>

#include "worker/executor.hpp"
#include "worker/shell.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Msg;
using skyhost::wire::Status;
using skyhost::wire::Writer;

// How long a stopped task gets to unwind before its commands are killed again and, after
// kReplaceMs, its executor is given up and replaced.
constexpr int64_t kRekillMs = 500;
constexpr int64_t kReplaceMs = 2000;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string reason(Status why, uint32_t timeout_ms) {
  if (why == Status::kTimedOut) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "timed out after %g s", timeout_ms / 1000.0);
    return buf;
  }
  return "cancelled";
}

/// Runs in the executor thread at the stopped task's next instruction. The hook stays set, so a
/// task that catches the error meets it again as soon as it runs another instruction.
void stop_hook(lua_State* L, lua_Debug*) {
  Slot* slot = *static_cast<Slot**>(lua_getextraspace(L));
  auto why = slot != nullptr ? Status(slot->stop.load()) : Status::kCancelled;
  luaL_error(L, "task %s", reason(why, slot != nullptr ? slot->timeout_ms : 0).c_str());
}

/// Children of a thread or process, from /proc (the kernel lists each thread's own children).
void children_of(const std::string& task_dir, std::vector<pid_t>& out) {
  std::ifstream f(task_dir + "/children");
  pid_t pid = 0;
  while (f >> pid) out.push_back(pid);
}

/// Kills every process the executor thread `tid` started, and their descendants.
void kill_commands(pid_t tid) {
  std::vector<pid_t> found;
  children_of("/proc/self/task/" + std::to_string(tid), found);
  for (size_t i = 0; i < found.size() && found.size() < 4096; i++) {
    std::string dir = "/proc/" + std::to_string(found[i]) + "/task";
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') children_of(dir + "/" + e->d_name, found);
      }
      closedir(d);
    }
  }
  for (pid_t p : found) kill(p, SIGKILL);
}

}  // namespace

void Supervisor::start(int executors) {
  for (int i = 0; i < executors; i++) spawn();
  std::thread([this] { watch(); }).detach();
}

void Supervisor::spawn() {
  auto slot = std::make_unique<Slot>();
  Slot* s = slot.get();
  {
    std::lock_guard lock(mu_);
    slots_.push_back(std::move(slot));
  }
  std::thread([this, s] {
    {
      std::lock_guard lock(s->mu);
      s->tid = static_cast<pid_t>(syscall(SYS_gettid));
    }
    run_executor(shared_, *this, *s);
  }).detach();
}

std::optional<TaskMsg> Supervisor::next(Slot& slot) {
  {
    std::lock_guard lock(slot.mu);
    if (slot.replaced) return std::nullopt;
  }
  bool timed = false;
  auto task = shared_.tasks.pop([&](const TaskMsg& t) {
    std::lock_guard lock(slot.mu);
    slot.task = t.id;
    slot.started_ms = now_ms();
    slot.timeout_ms = t.timeout_ms;
    slot.deadline_ms = t.timeout_ms > 0 ? slot.started_ms + t.timeout_ms : 0;
    slot.stop = 0;
    slot.answered = false;
    timed = t.timeout_ms > 0;
  });
  if (timed) cv_.notify_one();
  return task;
}

bool Supervisor::end(Slot& slot) {
  std::lock_guard lock(slot.mu);
  lua_sethook(slot.L, nullptr, 0, 0);
  slot.task = 0;
  slot.deadline_ms = 0;
  return !slot.answered;
}

void Supervisor::cancel(uint64_t task) {
  bool queued = shared_.tasks.remove(task, [&] {
    // Not queued: running now, or already finished (its Result is on the way).
    std::lock_guard lock(mu_);
    for (auto& s : slots_) {
      std::lock_guard sl(s->mu);
      if (s->task == task) stop(*s, Status::kCancelled, now_ms());
    }
  });
  if (queued) answer(task, Status::kCancelled, "task cancelled", 0);
  cv_.notify_one();
}

void Supervisor::answer(uint64_t task, Status why, const std::string& message, int64_t ms) {
  shared_.out.frame(Msg::kResult, [&](Writer& w) {
    w.put_u64(task);
    w.put_u8(static_cast<uint8_t>(why));
    w.put_u64(static_cast<uint64_t>(ms) * 1000000);
    w.put_string(message);
    w.put_string("");
  });
}

/// Called with slot.mu held, for the task running on it.
void Supervisor::stop(Slot& slot, Status why, int64_t now) {
  if (slot.stop != 0) return;
  slot.stop = static_cast<uint8_t>(why);
  slot.stop_ms = now;
  if (slot.L != nullptr)
    lua_sethook(slot.L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  kill_commands(slot.tid);
  slot.killed_children = true;
  kill_task_commands(slot.task);  // sky.sh commands, in process groups of their own
  // The host learns now, whether or not the task's code comes back soon.
  answer(slot.task, why, "task " + reason(why, slot.timeout_ms), now - slot.started_ms);
  slot.answered = true;
}

void Supervisor::watch() {
  std::unique_lock lock(mu_);
  for (;;) {
    bool busy = false;
    int64_t now = now_ms();
    size_t n = slots_.size();
    for (size_t i = 0; i < n; i++) {
      Slot& s = *slots_[i];
      bool replace = false;
      {
        std::lock_guard sl(s.mu);
        if (s.task == 0) continue;
        if (s.stop == 0 && s.deadline_ms != 0 && now >= s.deadline_ms) {
          stop(s, Status::kTimedOut, now);
        }
        if (s.stop == 0) {
          busy = busy || s.deadline_ms != 0;
          continue;
        }
        if (s.replaced) continue;  // given up: it ends when it ends
        busy = true;
        if (now - s.stop_ms >= kRekillMs) {
          kill_commands(s.tid);
          s.killed_children = true;
        }
        if (now - s.stop_ms >= kReplaceMs) {
          // Stuck in code no hook reaches (a C call that does not return): give the node its
          // executor back; this thread ends whenever its task does.
          s.replaced = true;
          replace = true;
        }
      }
      if (replace) {
        lock.unlock();
        spawn();
        lock.lock();
      }
    }
    if (busy) {
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    } else {
      cv_.wait(lock);
    }
  }
}

}  // namespace skyworker
