// The host's one event loop: a libuv loop plus the bookkeeping the Lua driver needs — which
// waits completed since it last looked, and whether SIGINT/SIGTERM arrived.
//
// Nothing here runs Lua. libuv callbacks call complete(); the driver
// (stdlib/sky/internal/sched.lua) calls poll() between resumes, outside every callback, and resumes
// the coroutines waiting on what completed.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace skyhost {

using WaitId = uint64_t;

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* uv() { return &loop_; }

  /// A new wait id, not yet complete.
  WaitId new_wait() { return ++last_wait_; }
  /// Marks `id` complete; the driver sees it at its next poll(). Safe from any libuv callback.
  void complete(WaitId id) { completed_.push_back(id); }

  /// Runs hooks registered with on_before_poll (they flush batched writes), then one loop
  /// iteration (blocking only if `block` and nothing completed yet), then moves the completed
  /// ids into `out`. Returns false when asked to block with nothing in the loop that could ever
  /// complete a wait (no active handle): the caller would otherwise spin.
  bool poll(bool block, std::vector<WaitId>& out);

  /// A hook run at the start of each poll(), e.g. flushing frames queued by the script.
  void on_before_poll(std::function<void()> fn) { before_poll_.push_back(std::move(fn)); }

  /// A timer that completes a new wait after `ms` milliseconds.
  WaitId sleep(uint64_t ms);
  /// Stops the timer of a sleep() wait that has not completed; false if `id` is none.
  bool cancel(WaitId id);

  /// Installs SIGINT/SIGTERM handlers. `on_signal` runs inside the signal handler and must be
  /// async-signal-safe (the runtime uses it to set a Lua hook, as the `lua` program does).
  /// The handlers stay installed until the process exits, also after this loop is gone: a late
  /// Ctrl-C during teardown or exit must neither kill the process nor change its exit status.
  void watch_signals(void (*on_signal)(int));
  /// How many SIGINT/SIGTERM arrived since watch_signals.
  int interrupts() const { return interrupts_.load(); }
  /// The first signal that arrived (0 if none): it decides the exit status (130 or 143), so a
  /// SIGTERM after a Ctrl-C does not turn 130 into 143.
  int first_signal() const { return first_signal_.load(); }

  /// Live handles other than the loop's own wakeup handle (leak check at shutdown).
  int live_handles();

 private:
  static void on_posix_signal(int sig);

  struct Sleep;

  uv_loop_t loop_{};
  uv_async_t wakeup_{};
  std::map<WaitId, Sleep*> sleeps_;  // pending timers of sleep(), closed properly at shutdown
  WaitId last_wait_ = 0;
  std::vector<WaitId> completed_;
  std::vector<std::function<void()>> before_poll_;
  static inline std::atomic<int> interrupts_{0};
  static inline std::atomic<int> first_signal_{0};
  // Read by the signal handler, which may run on any thread: atomics, cleared by ~Loop.
  static inline std::atomic<Loop*> signal_loop_{nullptr};
  static inline std::atomic<void (*)(int)> signal_hook_{nullptr};
};

}  // namespace skyhost
