// Stops the tasks that must stop — past their timeout, or cancelled by the host because nobody
// waits for them any more — and keeps the node's executors available meanwhile. A stopped task's
// Lua code meets an error at its next instruction (a hook, as the `lua` program does for Ctrl-C);
// the processes it started (os.execute, io.popen: children of its executor thread) are killed;
// an executor that still has not come back after a grace period is replaced by a new one.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "worker/shared.hpp"

struct lua_State;

namespace skyworker {

/// One executor thread and the task it runs.
struct Slot {
  std::mutex mu;  // a task's start and end against a decision to stop it
  pid_t tid = 0;  // the executor thread: its child processes are its task's commands
  lua_State* L = nullptr;
  uint64_t task = 0;  // running now, 0 when idle
  int64_t started_ms = 0;
  int64_t deadline_ms = 0;  // 0: none
  uint32_t timeout_ms = 0;
  std::atomic<uint8_t> stop{0};  // a wire::Status once the task must stop
  int64_t stop_ms = 0;
  bool answered = false;  // its Result is already sent
  bool replaced = false;  // another executor took its place; this one ends after its task
  // Its child processes were killed (a stopped task's commands, and with them the executor's
  // plugin host): the next task starts a new plugin host before it uses one.
  bool killed_children = false;
};

class Supervisor {
 public:
  explicit Supervisor(Shared& shared) : shared_(shared) {}
  /// Starts `executors` executor threads and the watchdog.
  void start(int executors);
  /// The host cancelled a task: a queued one is dropped, a running one stopped. Either way the
  /// host gets one Result saying kCancelled.
  void cancel(uint64_t task);
  /// Next task for an executor (blocks); empty when the queue closes or the executor was
  /// replaced. The task counts as running on `slot` from the moment it leaves the queue.
  std::optional<TaskMsg> next(Slot& slot);
  /// The task on `slot` ended. Returns whether the executor still has to send its Result (a
  /// stopped task's was sent when it was stopped).
  bool end(Slot& slot);

 private:
  void watch();
  void spawn();
  void stop(Slot& slot, skyhost::wire::Status why, int64_t now);
  void answer(uint64_t task, skyhost::wire::Status why, const std::string& message, int64_t ms);

  Shared& shared_;
  std::mutex mu_;  // slots_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace skyworker
