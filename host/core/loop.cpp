#include "host/core/loop.hpp"

#include <csignal>
#include <stdexcept>

namespace skyhost {

Loop::Loop() {
  if (uv_loop_init(&loop_) != 0) throw std::runtime_error("cannot initialise the event loop");
  // The wakeup handle lets a signal handler end a blocking poll; unref'd so it never keeps the
  // loop alive by itself.
  uv_async_init(&loop_, &wakeup_, [](uv_async_t*) {});
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup_));
}

struct Loop::Sleep {
  uv_timer_t timer;
  Loop* loop;
  WaitId id;
};

Loop::~Loop() {
  // The handler stays installed (only counting from now on): restoring SIG_DFL here let a
  // Ctrl-C that arrived while the process was exiting kill it with status -2 instead of 130.
  Loop* self = this;
  if (signal_loop_.compare_exchange_strong(self, nullptr)) signal_hook_.store(nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
  for (auto& [id, s] : sleeps_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&s->timer),
             [](uv_handle_t* h) { delete static_cast<Sleep*>(h->data); });
  }
  sleeps_.clear();
  // Owners have closed their handles by now, but a killed worker's process handle closes only
  // once the kernel reports its exit: let the loop run until then, and force whatever is still
  // open after two seconds.
  uv_timer_t guard;
  uv_timer_init(&loop_, &guard);
  uv_timer_start(
      &guard,
      [](uv_timer_t* t) {
        uv_walk(
            t->loop,
            [](uv_handle_t* h, void*) {
              if (!uv_is_closing(h)) uv_close(h, nullptr);
            },
            nullptr);
      },
      2000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&guard));
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&guard))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

bool Loop::poll(bool block, std::vector<WaitId>& out) {
  for (auto& fn : before_poll_) fn();
  bool wait = block && completed_.empty() && interrupts_.load() == 0;
  // uv_run returns at once when no active handle is left; blocking then would be a busy loop.
  bool alive = !wait || uv_loop_alive(&loop_) != 0;
  uv_run(&loop_, wait ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  // Completions made while running the hooks above or the loop are delivered together.
  for (auto& fn : before_poll_) fn();
  out.insert(out.end(), completed_.begin(), completed_.end());
  completed_.clear();
  return alive || !out.empty();
}

WaitId Loop::sleep(uint64_t ms) {
  auto* s = new Sleep{{}, this, new_wait()};
  sleeps_.emplace(s->id, s);
  uv_timer_init(&loop_, &s->timer);
  s->timer.data = s;
  uv_timer_start(
      &s->timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<Sleep*>(t->data);
        s->loop->complete(s->id);
        s->loop->sleeps_.erase(s->id);
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Sleep*>(h->data); });
      },
      ms, 0);
  return s->id;
}

bool Loop::cancel(WaitId id) {
  auto it = sleeps_.find(id);
  if (it == sleeps_.end()) return false;
  Sleep* s = it->second;
  sleeps_.erase(it);
  uv_timer_stop(&s->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->timer),
           [](uv_handle_t* h) { delete static_cast<Sleep*>(h->data); });
  return true;
}

void Loop::on_posix_signal(int sig) {
  interrupts_.fetch_add(1);
  int none = 0;
  first_signal_.compare_exchange_strong(none, sig);
  if (auto hook = signal_hook_.load()) hook(sig);
  if (Loop* loop = signal_loop_.load()) uv_async_send(&loop->wakeup_);  // async-signal-safe
}

void Loop::watch_signals(void (*on_signal)(int)) {
  signal_loop_.store(this);
  signal_hook_.store(on_signal);
  struct sigaction sa {};
  sa.sa_handler = &Loop::on_posix_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Loop::live_handles() {
  int n = 0;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        if (!uv_is_closing(h)) ++*static_cast<int*>(arg);
      },
      &n);
  return n - 1;  // the wakeup handle
}

}  // namespace skyhost
