// Tasks and nodes of one pool: which task runs where, results matched to requests, retries when a
// node is lost. Pure C++; task arguments and results are opaque codec bytes.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "host/core/events.hpp"
#include "host/core/loop.hpp"
#include "host/links/link.hpp"

namespace skyhost {

using TaskId = uint64_t;
using ClosureId = uint64_t;
using BatchId = uint64_t;

struct Outcome {
  bool ok = false;
  wire::Status status = wire::Status::kFailed;
  // codec values: the task's results, or on failure the value it raised (maybe none)
  wire::Payload payload;
  // the large strings of the results that came apart, in order (wire::Blob)
  std::vector<wire::Blob> blobs;
  uint64_t exec_ns = 0;
  int node = -1;
  std::string message;    // a failure's: the worker's error message, or why the host failed it
  std::string traceback;  // a failure's traceback on the node ("" when the host failed it)
};

/// Tasks submitted together and awaited together: one wait completes when all are done, or at
/// the first failure (the rest of the batch is then dropped from the queue) unless the batch
/// collects every outcome.
struct Batch {
  WaitId wait = 0;
  std::vector<TaskId> tasks;
  size_t remaining = 0;
  size_t failures = 0;  // tasks that ended in failure so far
  bool failed = false;
  bool collect_all = false;  // no fail-fast: wait for every task, failed or not
  size_t limit = 0;          // most tasks of this batch running at once; 0: no limit
  size_t running = 0;
  std::deque<TaskId> queued;  // a limited batch's tasks wait here, not in the shared queue
};

/// A worker's Ready frame: where it runs and how many tasks it runs at once.
struct NodeInfo {
  std::string hostname;
  uint64_t worker_pid = 0;
  int executors = 0;
  bool ready = false;  // false until the frame arrived
};

class Scheduler {
 public:
  struct Options {
    int pool_id = 0;
    int concurrency = 4;  // tasks running at once per node; 0: as many as the node reports
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
  /// Where the nodes added from now on receive the large strings of their results (wire::Blob);
  /// without one each is received into a buffer and copied.
  void set_blob_store(std::shared_ptr<wire::BlobStore> store) { blob_store_ = std::move(store); }
  /// Completes once every node so far is ready, or one failed before it was.
  WaitId ready_wait();
  /// Why the pool could not become ready ("" if it did).
  const std::string& start_error() const { return start_error_; }
  /// What a node said in its Ready frame (checked on arrival); empty until then.
  const NodeInfo& node_info(int node) const { return nodes_.at(node)->info; }
  int node_count() const { return static_cast<int>(nodes_.size()); }
  int pid(int node) const { return nodes_.at(node)->link->pid(); }
  bool node_alive(int node) const { return nodes_.at(node)->alive; }
  /// Why a node was lost ("" while it is alive).
  const std::string& lost_reason(int node) const { return nodes_.at(node)->lost_reason; }
  int alive_count() const { return node_count() - lost_; }
  Link& link(int node) { return *nodes_.at(node)->link; }

  /// A closure (codec bytes) under an id; the same bytes get the same id. Throws wire::Error,
  /// changing nothing, if it does not fit in a frame.
  ClosureId define(std::string bytes);
  /// A new batch; add tasks to it, then await batch(id).wait. `limit` > 0 caps how many of its
  /// tasks run at once; `collect_all` waits for every task even after a failure.
  BatchId new_batch(size_t limit = 0, bool collect_all = false);
  /// Queues a task; `pin_node` >= 0 runs it on that node only (broadcast). A task running
  /// longer than `timeout_ms` (0: no limit) is stopped by its worker and fails as kTimedOut.
  TaskId submit(BatchId batch, ClosureId fn, std::string args, int pin_node = -1,
                uint32_t timeout_ms = 0);
  const Batch& batch(BatchId id) const { return batches_.at(id); }
  /// The task's outcome; valid once its batch's wait completed (a dropped task has none).
  const Outcome* outcome(TaskId id) const;
  /// Forgets a batch and its tasks' outcomes. Its tasks still queued never run; those still
  /// running are cancelled on their nodes (nobody waits for them any more).
  void release(BatchId id);

  /// Renews every worker's dead-man lease each `interval_ms` (0 stops renewing).
  void set_lease_interval(uint64_t interval_ms);
  /// The events raised since the last call, oldest first.
  std::vector<Event> take_events() { return std::exchange(events_, {}); }
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
    NodeInfo info;
    std::string last_words;  // what a worker said in a Fatal frame before it stopped
    bool ready = false;
    bool alive = true;
    bool draining = false;  // its provider announced its end: it is sent no new tasks
    std::string lost_reason;
    int executors = 0;  // as the node's Ready said
    int running = 0;
    std::unordered_set<ClosureId> defined;
    std::deque<TaskId> pinned;
    std::unordered_set<TaskId> in_flight;
    std::vector<wire::Blob> blobs;  // received for the Result that comes next
    size_t blob_bytes = 0;
  };
  struct Task {
    BatchId batch = 0;
    ClosureId fn = 0;
    // Shared with the links' output while a frame is written from it (large arguments are not
    // copied into the output buffer) and kept for a re-run until the task ends.
    std::shared_ptr<const std::string> args;
    int pin = -1;
    uint32_t timeout_ms = 0;
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
  void finish(TaskId id, Task& t, wire::Status status, wire::Payload payload, uint64_t exec_ns,
              int node, std::string message = {}, std::string traceback = {},
              std::vector<wire::Blob> blobs = {});
  void fail_task(TaskId id, Task& t, const std::string& message, int node);
  void dispatch();
  bool send_one(Node& n);
  TaskId next_task(Node& n);
  void batch_task_ended(Task& t);
  void emit(Event e) { events_.push_back(std::move(e)); }
  void check_ready();
  void fail_queued(const std::string& message);
  std::string lost_summary() const;

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
  int lost_ = 0;  // nodes no longer alive
  WaitId ready_wait_ = 0;
  bool ready_reported_ = false;
  std::string start_error_;
  bool task_events_ = false;
  bool shutting_down_ = false;
  WaitId gone_wait_ = 0;
  uv_timer_t* grace_timer_ = nullptr;
  uv_timer_t* lease_timer_ = nullptr;
  std::vector<Event> events_;  // raised since the driver last took them
  std::shared_ptr<wire::BlobStore> blob_store_;
};

}  // namespace skyhost
