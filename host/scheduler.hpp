// Tasks and nodes of one pool: which task runs where, results matched to requests, retries when a
// node is lost. Pure C++; task arguments and results are opaque codec bytes.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "host/events.hpp"
#include "host/link.hpp"
#include "host/loop.hpp"

namespace skyhost {

using TaskId = uint64_t;
using ClosureId = uint64_t;
using BatchId = uint64_t;

struct Outcome {
  bool ok = false;
  std::string payload;  // codec values; on failure two wire strings: message, traceback
  uint64_t exec_ns = 0;
  int node = -1;
};

/// Tasks submitted together and awaited together: one wait completes when all are done, or at
/// the first failure (the rest of the batch is then dropped from the queue).
struct Batch {
  WaitId wait = 0;
  std::vector<TaskId> tasks;
  size_t remaining = 0;
  bool failed = false;
  size_t limit = 0;  // most tasks of this batch running at once; 0: no limit
  size_t running = 0;
  std::deque<TaskId> queued;  // a limited batch's tasks wait here, not in the shared queue
};

class Scheduler {
 public:
  struct Options {
    int pool_id = 0;
    int concurrency = 4;  // tasks running at once per node
    int prefetch = 32;    // tasks queued on a node beyond those running, to hide round trips
    int retries = 1;      // re-runs of a task whose node was lost
    uint32_t max_frame = wire::kMaxFrame;  // largest frame either way (a task, a result)
  };
  Scheduler(Loop& loop, Options opts);
  ~Scheduler();

  /// Adds a node reached through `link` and sends it `init` (codec values). Returns its index.
  /// Throws wire::Error if `init` does not fit in a frame.
  int add_node(std::unique_ptr<Link> link, std::string init);
  uint32_t max_frame() const { return opts_.max_frame; }
  /// Completes once every node so far is ready, or one failed before it was.
  WaitId ready_wait();
  /// Why the pool could not become ready ("" if it did).
  const std::string& start_error() const { return start_error_; }
  /// The Ready info each node sent (checked on arrival): wire string hostname, varint pid,
  /// varint executors.
  const std::string& node_info(int node) const { return nodes_.at(node)->info; }
  int node_count() const { return static_cast<int>(nodes_.size()); }
  int pid(int node) const { return nodes_.at(node)->link->pid(); }
  bool node_alive(int node) const { return nodes_.at(node)->alive; }
  Link& link(int node) { return *nodes_.at(node)->link; }

  /// A closure (codec bytes) under an id; the same bytes get the same id. Throws wire::Error,
  /// changing nothing, if it does not fit in a frame.
  ClosureId define(std::string bytes);
  /// A new batch; add tasks to it, then await batch(id).wait. `limit` > 0 caps how many of its
  /// tasks run at once.
  BatchId new_batch(size_t limit = 0);
  /// Queues a task; `pin_node` >= 0 runs it on that node only (broadcast). Throws wire::Error,
  /// changing nothing, if its arguments do not fit in a frame.
  TaskId submit(BatchId batch, ClosureId fn, std::string args, int pin_node = -1);
  const Batch& batch(BatchId id) const { return batches_.at(id); }
  /// The task's outcome; valid once its batch's wait completed (a dropped task has none).
  const Outcome* outcome(TaskId id) const;
  /// Forgets a batch and its tasks' outcomes.
  void release(BatchId id);

  /// Renews every worker's dead-man lease each `interval_ms` (0 stops renewing).
  void set_lease_interval(uint64_t interval_ms);
  /// Report TaskStarted/TaskCompleted events (off by default: they cost on the hot path).
  void set_task_events(bool on) { task_events_ = on; }
  /// Sends queued frames. Called before each poll and after each batch of received frames.
  void flush();
  /// Stops every node: asks each to shut down; returns a wait that completes when all are gone
  /// or after `grace_ms`, when the stragglers are killed.
  WaitId shutdown(uint64_t grace_ms);
  bool all_gone() const;

 private:
  struct Node {
    int index = 0;
    std::unique_ptr<Link> link;
    std::string info;
    std::string last_words;  // what a worker said in a Fatal frame before it stopped
    bool ready = false;
    bool alive = true;
    int running = 0;
    std::unordered_set<ClosureId> defined;
    std::deque<TaskId> pinned;
    std::unordered_set<TaskId> in_flight;
  };
  struct Task {
    BatchId batch = 0;
    ClosureId fn = 0;
    std::string args;
    int pin = -1;
    int node = -1;
    int attempts = 0;
    bool done = false;
    bool dropped = false;  // never ran: its batch failed first
    Outcome outcome;
  };

  void on_frame(Node& n, const wire::Frame& f);
  void on_lost(Node& n, const std::string& reason);
  void on_result(Node& n, wire::Reader& r);
  void check_fits(size_t body, const char* what) const;
  void finish(TaskId id, Task& t, bool ok, std::string payload, uint64_t exec_ns, int node);
  void fail_task(TaskId id, Task& t, const std::string& message, int node);
  void dispatch();
  bool send_one(Node& n);
  TaskId next_task(Node& n);
  void batch_task_ended(Task& t);
  void emit(Event e) { events_.push_back(std::move(e)); }
  void check_ready();

  Loop& loop_;
  Options opts_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unordered_map<TaskId, Task> tasks_;
  std::unordered_map<BatchId, Batch> batches_;
  std::unordered_map<std::string, ClosureId> closure_ids_;
  std::unordered_map<ClosureId, std::string> closures_;
  std::deque<TaskId> queue_;
  std::vector<BatchId> limited_;
  TaskId last_task_ = 0;
  BatchId last_batch_ = 0;
  ClosureId last_closure_ = 0;
  WaitId ready_wait_ = 0;
  bool ready_reported_ = false;
  std::string start_error_;
  bool task_events_ = false;
  bool shutting_down_ = false;
  WaitId gone_wait_ = 0;
  uv_timer_t* grace_timer_ = nullptr;
  uv_timer_t* lease_timer_ = nullptr;

 public:
  /// Events raised since the driver last took them.
  std::vector<Event> events_;
};

}  // namespace skyhost
