// State the worker's threads share: the task queue, the closures the host defined, and the
// output stream. The reader thread fills the first two; executors drain them and write results;
// the writer thread sends what the executors wrote, many frames per write.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "host/wire.hpp"

namespace skyworker {

struct TaskMsg {
  uint64_t id = 0;
  uint64_t fn = 0;
  uint32_t timeout_ms = 0;  // 0: no limit
  std::string args;
};

class TaskQueue {
 public:
  void push(TaskMsg t);
  /// Blocks for the next task; empty once closed. `taken` runs under the queue's lock, so that
  /// a task is always either queued or taken (remove() never misses one in between).
  std::optional<TaskMsg> pop(const std::function<void(const TaskMsg&)>& taken = nullptr);
  /// Removes a queued task and returns true; otherwise runs `absent` under the queue's lock.
  bool remove(uint64_t id, const std::function<void()>& absent);
  void close();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TaskMsg> q_;
  bool closed_ = false;
};

class Closures {
 public:
  void define(uint64_t id, std::string bytes);
  std::shared_ptr<const std::string> get(uint64_t id);

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<const std::string>> map_;
};

/// Frames to send. Executors append under the lock; the writer thread swaps the buffer out.
class Output {
 public:
  explicit Output(int fd) : fd_(fd) {}
  /// Appends one frame: `fill` writes the body into the writer.
  template <typename Fill>
  void frame(skyhost::wire::Msg type, Fill&& fill) {
    std::lock_guard lock(mu_);
    size_t mark = buf_.begin_frame(type);
    fill(buf_);
    buf_.end_frame(mark);
    cv_.notify_one();
  }
  /// The writer thread's loop; returns when closed and drained, or on a write error.
  void run();
  void close();

 private:
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  skyhost::wire::Writer buf_;
  bool closed_ = false;
};

struct Shared {
  explicit Shared(int out_fd) : out(out_fd) {}
  TaskQueue tasks;
  Closures closures;
  Output out;
  std::string init;  // codec values: the node's identity, as the host sent it
};

}  // namespace skyworker
