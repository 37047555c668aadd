// State the worker's threads share: the task queue, the closures the host defined, and the
// output stream. The reader thread fills the first two; executors drain them and write results;
// the writer thread sends what the executors wrote, many frames per write.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
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
  std::string args;
};

class TaskQueue {
 public:
  void push(TaskMsg t);
  /// Blocks for the next task; empty once closed.
  std::optional<TaskMsg> pop();
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
  /// Appends one frame: `fill` writes the body into the writer. If that throws (no memory, a
  /// frame past kMaxFrame), nothing of the frame stays.
  template <typename Fill>
  void frame(skyhost::wire::Msg type, Fill&& fill) {
    std::lock_guard lock(mu_);
    size_t mark = buf_.begin_frame(type);
    try {
      fill(buf_);
      buf_.end_frame(mark);
    } catch (...) {
      buf_.data().resize(mark);
      throw;
    }
    cv_.notify_one();
  }
  /// The writer thread's loop; returns when closed and drained, or on a write error.
  void run();
  void close();
  /// Closes, then waits up to `ms` for the writer to send what is queued (a Fatal frame
  /// before the worker exits). Any thread.
  void drain(int ms);

 private:
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  skyhost::wire::Writer buf_;
  bool closed_ = false;
  bool done_ = false;  // the writer has returned
};

struct Shared {
  Shared(int out_fd, uint32_t max_frame) : out(out_fd), max_frame(max_frame) {}
  TaskQueue tasks;
  Closures closures;
  Output out;
  const uint32_t max_frame;  // largest frame either way, as the host set it (--max-frame)
  std::string init;          // codec data: the node's identity, as the host sent it (checked)
};

/// The worker cannot go on: says why on stderr and to the host (a Fatal frame), then exits
/// with `status`.
[[noreturn]] void fatal(Shared& shared, const std::string& why, int status = 3);

}  // namespace skyworker
