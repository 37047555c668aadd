// State the worker's threads share: the task queue, the closures the host defined, and the
// output stream. The reader thread fills the first two; executors drain them and write results;
// the writer thread sends what the executors wrote, many frames per write.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "host/links/wire.hpp"
#include "worker/shm.hpp"

namespace skyworker {

struct TaskMsg {
  uint64_t id = 0;
  uint64_t fn = 0;
  uint32_t timeout_ms = 0;  // 0: no limit
  Bytes args;               // large arguments are in shared memory, for a plugin host to map
};

class TaskQueue {
 public:
  void push(TaskMsg t);
  /// Blocks for the next task; empty once closed. `taken` runs under the queue's lock, so that
  /// a task is always either queued or taken (remove() never misses one in between).
  std::optional<TaskMsg> pop(const std::function<void(const TaskMsg&)>& taken = nullptr);
  /// Removes a queued task and returns true; otherwise runs `absent` under the queue's lock.
  bool remove(uint64_t id, const std::function<void()>& absent);
  /// The next task if there is one and `take(task, queued)` accepts it; never blocks. `queued`
  /// counts the tasks waiting, this one included.
  template <typename Take>
  std::optional<TaskMsg> pop_if(Take&& take) {
    std::lock_guard lock(mu_);
    if (q_.empty() || !take(q_.front(), q_.size())) return std::nullopt;
    TaskMsg t = std::move(q_.front());
    q_.pop_front();
    return t;
  }
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

/// Frames to send. Executors append under the lock; the writer thread swaps the buffer out and
/// sends it with writev, referenced bytes (large strings, shared memory) from where they are.
class Output {
 public:
  explicit Output(int fd) : fd_(fd) {}
  /// Appends one frame: `fill` writes the body into the writer. If that throws (no memory, a
  /// frame past kMaxFrame), nothing of the frame stays. Returns the frame's batch number, for
  /// wait_written: a body whose refs point at the caller's memory must wait for it.
  /// `blobs`: large strings sent apart, each in a kBlob frame just before this one, written from
  /// where they are; nothing else comes between them (the host gives them to this frame).
  template <typename Fill>
  uint64_t frame(skyhost::wire::Msg type, Fill&& fill,
                 const std::vector<std::string_view>& blobs = {}) {
    std::lock_guard lock(mu_);
    size_t first = buf_.data().size();
    size_t mark = first;
    try {
      for (std::string_view b : blobs) {
        mark = buf_.begin_frame(skyhost::wire::Msg::kBlob);
        buf_.put_ref(b.data(), b.size());
        buf_.end_frame(mark);
      }
      mark = buf_.begin_frame(type);
      fill(buf_);
      buf_.end_frame(mark);
    } catch (...) {
      buf_.truncate(first);
      throw;
    }
    cv_.notify_one();
    return batch_;
  }
  /// Appends one frame whose body ends with the bytes of `tail`, which are written from where
  /// they are, not copied (a plugin's large result); the frame keeps `tail` alive until it is
  /// written. Throws wire::Error past the frame limit.
  template <typename Fill>
  void frame(skyhost::wire::Msg type, Fill&& fill, std::shared_ptr<const Region> tail) {
    frame(type, [&](skyhost::wire::Writer& w) {
      fill(w);
      w.put_ref(tail->data(), tail->size());
      keep_.push_back(tail);
    });
  }
  /// Appends whole frames built elsewhere, back to back.
  void frames(std::string_view bytes) {
    std::lock_guard lock(mu_);
    buf_.put_raw(bytes.data(), bytes.size());
    cv_.notify_one();
  }
  /// The writer thread's loop; returns when closed and drained, or on a write error.
  void run();
  void close();
  /// Waits until everything queued so far is written (or the writer stopped); false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  /// Waits until the frames of batch `batch` (what frame() returned) are written, or the writer
  /// has stopped (the host is gone): after that the memory their refs point at may go.
  void wait_written(uint64_t batch);
  /// Closes, then waits up to `ms` for the writer to send what is queued (a Fatal frame
  /// before the worker exits). Any thread.
  void drain(int ms);

 private:
  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  skyhost::wire::Writer buf_;
  std::vector<std::shared_ptr<const void>> keep_;  // what buf_'s refs point into, if owned
  uint64_t batch_ = 1;                             // the batch buf_ holds
  uint64_t written_ = 0;                           // the last batch written
  bool closed_ = false;
  bool writing_ = false;
  bool stopped_ = false;
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
