#include "host/links/scheduler.hpp"

#include <algorithm>
#include <chrono>

namespace skyhost {

namespace {

double seconds(uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

}  // namespace

Scheduler::Scheduler(Loop& loop, Options opts) : loop_(loop), opts_(opts) {
  if (opts_.concurrency < 0) opts_.concurrency = 0;
  if (opts_.prefetch < 0) opts_.prefetch = 0;
  ready_wait_ = loop_.new_wait();
}

Scheduler::~Scheduler() {
  for (uv_timer_t* t : {grace_timer_, lease_timer_}) {
    if (t == nullptr) continue;
    uv_close(reinterpret_cast<uv_handle_t*>(t),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  // Destroying the links kills any worker still running: a pool never outlives its scheduler.
}

// Refused when submitted, so that a value too large to send is an error the script can catch
// (not one thrown later, from the loop, while flushing frames).
void Scheduler::check_fits(size_t body, const char* what) const {
  if (body + wire::kFrameOverhead > opts_.max_frame)
    throw wire::Error(std::string(what) + " take " + wire::size_text(body) +
                      ", more than the frame limit of " + wire::size_text(opts_.max_frame) +
                      " (max_frame)");
}

int Scheduler::add_node(std::unique_ptr<Link> link, std::string init) {
  check_fits(init.size(), "the node's settings");
  link->set_max_frame(opts_.max_frame);
  link->set_blob_store(blob_store_);
  auto node = std::make_unique<Node>();
  node->index = static_cast<int>(nodes_.size());
  node->link = std::move(link);
  Node* n = node.get();
  n->link->on_frame = [this, n](const wire::Frame& f) { on_frame(*n, f); };
  n->link->on_closed = [this, n](const std::string& reason) { on_lost(*n, reason); };
  auto& w = n->link->out();
  size_t mark = w.begin_frame(wire::Msg::kInit);
  w.put_raw(init.data(), init.size());
  w.end_frame(mark);
  n->link->flush();
  nodes_.push_back(std::move(node));
  return n->index;
}

WaitId Scheduler::ready_wait() {
  check_ready();
  return ready_wait_;
}

void Scheduler::check_ready() {
  if (ready_reported_) return;
  bool all = true;
  for (auto& n : nodes_) all = all && n->ready;
  if (all || !start_error_.empty()) {
    ready_reported_ = true;
    loop_.complete(ready_wait_);
  }
}

ClosureId Scheduler::define(std::string bytes) {
  auto it = closure_ids_.find(bytes);
  if (it != closure_ids_.end()) return it->second;
  check_fits(bytes.size(), "the function and its upvalues");
  ClosureId id = ++last_closure_;
  closure_ids_.emplace(bytes, id);
  closures_.emplace(id, std::move(bytes));
  return id;
}

BatchId Scheduler::new_batch(size_t limit, bool collect_all) {
  BatchId id = ++last_batch_;
  Batch& b = batches_[id];
  b.wait = loop_.new_wait();
  b.limit = limit;
  b.collect_all = collect_all;
  if (limit > 0) limited_.push_back(id);
  return id;
}

TaskId Scheduler::submit(BatchId batch, ClosureId fn, std::string args, int pin_node,
                         uint32_t timeout_ms) {
  check_fits(args.size(), "the task's arguments");
  TaskId id = ++last_task_;
  Task& t = tasks_[id];
  t.batch = batch;
  t.fn = fn;
  t.args = std::make_shared<const std::string>(std::move(args));
  t.pin = pin_node;
  t.timeout_ms = timeout_ms;
  Batch& b = batches_.at(batch);
  b.tasks.push_back(id);
  b.remaining++;
  if (!nodes_.empty() && alive_count() == 0) {
    // Nothing could ever run it: fail now rather than queue it for ever.
    fail_task(id, t, "no live nodes left in the pool (" + lost_summary() + ")", -1);
    return id;
  }
  if (pin_node >= 0) {
    Node& n = *nodes_.at(pin_node);
    if (!n.alive) {
      fail_task(id, t, "node " + std::to_string(pin_node) + " is gone", pin_node);
      return id;
    }
    n.pinned.push_back(id);
  } else if (b.limit > 0) {
    b.queued.push_back(id);
  } else {
    queue_.push_back(id);
  }
  return id;
}

const Outcome* Scheduler::outcome(TaskId id) const {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || !it->second.done || it->second.dropped) return nullptr;
  return &it->second.outcome;
}

void Scheduler::release(BatchId id) {
  auto it = batches_.find(id);
  if (it == batches_.end()) return;
  if (it->second.limit > 0) std::erase(limited_, id);
  for (TaskId t : it->second.tasks) {
    auto tt = tasks_.find(t);
    if (tt == tasks_.end()) continue;
    if (tt->second.done || tt->second.node < 0) {
      tasks_.erase(tt);
      continue;
    }
    // Still running: nobody waits for it, so its node stops it. The task is forgotten when its
    // (cancelled) result arrives, which also frees its place in the node's window.
    tt->second.batch = 0;
    Node& n = *nodes_.at(tt->second.node);
    if (n.alive) {
      auto& w = n.link->out();
      size_t mark = w.begin_frame(wire::Msg::kCancel);
      w.put_u64(t);
      w.end_frame(mark);
    }
  }
  batches_.erase(it);
}

std::string Scheduler::lost_summary() const {
  std::string out;
  for (auto& n : nodes_) {
    if (n->alive) continue;
    if (!out.empty()) out += "; ";
    out += "node " + std::to_string(n->index) + ": " + n->lost_reason;
  }
  return out;
}

void Scheduler::flush() {
  dispatch();
  for (auto& n : nodes_) {
    if (n->alive) n->link->flush();
  }
}

TaskId Scheduler::next_task(Node& n) {
  auto take = [&](std::deque<TaskId>& q) -> TaskId {
    while (!q.empty()) {
      TaskId id = q.front();
      q.pop_front();
      auto it = tasks_.find(id);
      if (it != tasks_.end() && !it->second.done) return id;  // else dropped with its batch
    }
    return 0;
  };
  if (TaskId id = take(n.pinned)) return id;
  if (n.draining) return 0;  // a broadcast's task can run nowhere else; shared work can
  if (TaskId id = take(queue_)) return id;
  for (BatchId bid : limited_) {
    Batch& b = batches_.at(bid);
    if (b.running >= b.limit) continue;
    if (TaskId id = take(b.queued)) return id;
  }
  return 0;
}

void Scheduler::batch_task_ended(Task& t) {
  auto it = batches_.find(t.batch);
  if (it != batches_.end() && it->second.running > 0) it->second.running--;
}

bool Scheduler::send_one(Node& n) {
  TaskId id = next_task(n);
  if (id == 0) return false;
  {
    auto it = tasks_.find(id);
    Task& t = it->second;
    auto& w = n.link->out();
    if (n.defined.insert(t.fn).second) {
      const std::string& body = closures_.at(t.fn);
      size_t mark = w.begin_frame(wire::Msg::kDef);
      w.put_u64(t.fn);
      w.put_raw(body.data(), body.size());
      w.end_frame(mark);
    }
    size_t mark = w.begin_frame(wire::Msg::kTask);
    w.put_u64(id);
    w.put_u64(t.fn);
    w.put_varint(t.timeout_ms);
    if (t.args->size() >= wire::Writer::kRefMin) {
      w.put_ref(t.args->data(), t.args->size());  // written from where it is
      n.link->keep(t.args);
    } else {
      w.put_raw(t.args->data(), t.args->size());
    }
    w.end_frame(mark);
    t.node = n.index;
    t.attempts++;
    n.running++;
    n.in_flight.insert(id);
    if (auto b = batches_.find(t.batch); b != batches_.end()) b->second.running++;
    if (task_events_) emit(Event("TaskStarted", opts_.pool_id, n.index, id));
    return true;
  }
}

void Scheduler::dispatch() {
  if (shutting_down_) return;
  // Round robin, one task per node per pass, so work spreads over the nodes.
  bool progress = true;
  while (progress) {
    progress = false;
    for (auto& n : nodes_) {
      int executors = opts_.concurrency > 0 ? opts_.concurrency : std::max(1, n->executors);
      if (n->alive && n->ready && n->running < executors + opts_.prefetch && send_one(*n))
        progress = true;
    }
  }
}

void Scheduler::on_frame(Node& n, const wire::Frame& f) {
  wire::Reader r(f.body);
  switch (f.type) {
    case wire::Msg::kReady:
      // hostname, pid, executors: refused here if malformed, never later
      n.info.hostname = std::string(r.get_string());
      n.info.worker_pid = r.get_varint();
      n.executors = static_cast<int>(std::min<uint64_t>(r.get_varint(), 1 << 16));
      n.info.executors = n.executors;
      n.info.ready = true;
      n.ready = true;
      check_ready();
      break;
    case wire::Msg::kBlob: {
      // Bounded like one frame: together, a result's large strings take at most max_frame.
      if (f.body.size() < wire::kBlobMin || n.blob_bytes + f.body.size() > opts_.max_frame)
        throw wire::Error("a large string sent apart of " + wire::size_text(f.body.size()) +
                          (f.body.size() < wire::kBlobMin ? ", too small" : ", past max_frame"));
      n.blobs.push_back(n.link->take_blob(f.body));
      n.blob_bytes += f.body.size();
      break;
    }
    case wire::Msg::kResult:
      on_result(n, r);
      break;
    case wire::Msg::kLog: {
      TaskId id = r.get_u64();
      Event e("Log", opts_.pool_id, n.index, id);
      e.text = r.get_string();
      e.stream = (!r.empty() && r.get_u8() == 2) ? "stderr" : "stdout";
      emit(std::move(e));
      break;
    }
    case wire::Msg::kMetric: {
      uint64_t count = r.get_varint();
      for (uint64_t i = 0; i < count; i++) {
        Event e("Metric", opts_.pool_id, n.index);
        e.name = r.get_string();
        e.value = r.get_f64();
        e.unit = r.get_string();
        emit(std::move(e));
      }
      break;
    }
    case wire::Msg::kNotice: {
      // The node's provider will end it soon (a spot interruption notice): no new work goes
      // there, while what runs may finish; the pool starts its replacement.
      Event e("SpotNotice", opts_.pool_id, n.index);
      e.name = std::string(r.get_string().substr(0, 64));
      e.text = std::string(r.get_string().substr(0, 64));
      if (n.draining) break;  // one notice per node
      n.draining = true;
      emit(std::move(e));
      break;
    }
    case wire::Msg::kFatal: {
      Event e("Log", opts_.pool_id, n.index);
      e.ok = false;
      e.text = r.get_string();
      n.last_words = e.text.substr(0, 1000);
      emit(std::move(e));
      break;
    }
    default:
      throw wire::Error("unexpected message type " + std::to_string(int(f.type)));
  }
}

void Scheduler::on_result(Node& n, wire::Reader& r) {
  std::vector<wire::Blob> blobs = std::exchange(n.blobs, {});  // they belong to this result
  n.blob_bytes = 0;
  TaskId id = r.get_u64();
  uint8_t code = r.get_u8();
  auto status =
      code <= uint8_t(wire::Status::kCancelled) ? wire::Status(code) : wire::Status::kFailed;
  uint64_t exec_ns = r.get_u64();
  if (n.in_flight.erase(id) == 0) return;  // not ours to deliver: never a result twice
  n.running--;
  auto it = tasks_.find(id);
  if (it != tasks_.end() && !it->second.done && it->second.node == n.index) {
    batch_task_ended(it->second);
    if (it->second.batch == 0) {
      tasks_.erase(it);  // its batch was released while it ran
    } else if (status != wire::Status::kOk) {
      std::string message, traceback;
      try {
        message = r.get_string();
        traceback = r.get_string();
      } catch (const wire::Error&) {
        fail_task(id, it->second, "the worker sent a malformed failure", n.index);
        dispatch();
        return;
      }
      // A failure's body (worker/executor.cpp): message, traceback, then maybe the table the task
      // raised, decoded later as data.
      finish(id, it->second, status, n.link->take({r.position(), r.remaining()}), exec_ns, n.index,
             std::move(message), std::move(traceback));
    } else {
      // A large result keeps the buffer it was read into: no copy before it is decoded.
      finish(id, it->second, status, n.link->take({r.position(), r.remaining()}), exec_ns, n.index,
             {}, {}, std::move(blobs));
    }
  }
  dispatch();
}

void Scheduler::finish(TaskId id, Task& t, wire::Status status, wire::Payload payload,
                       uint64_t exec_ns, int node, std::string message, std::string traceback,
                       std::vector<wire::Blob> blobs) {
  bool ok = status == wire::Status::kOk;
  t.done = true;
  t.outcome = Outcome{ok,      status, std::move(payload), std::move(blobs),
                      exec_ns, node,   std::move(message), std::move(traceback)};
  t.args.reset();
  if (task_events_) {
    Event e("TaskCompleted", opts_.pool_id, node, id);
    e.duration = seconds(exec_ns);
    e.ok = ok;
    emit(std::move(e));
  }
  auto bit = batches_.find(t.batch);
  if (bit == batches_.end()) return;
  Batch& b = bit->second;
  b.remaining--;
  if (!ok) b.failures++;
  if (!ok && !b.collect_all && !b.failed) {
    b.failed = true;
    // Fail fast: the script sees the first error at once, and what has not started never will.
    // What is running is cancelled: the commands it started on its node are stopped (a rank of
    // a torchrun whose peer failed would otherwise wait for it for ever).
    for (TaskId other : b.tasks) {
      Task& o = tasks_.at(other);
      if (!o.done && o.node < 0) o.done = o.dropped = true;
      if (!o.done && o.node >= 0 && nodes_.at(o.node)->alive) {
        auto& w = nodes_.at(o.node)->link->out();
        size_t mark = w.begin_frame(wire::Msg::kCancel);
        w.put_u64(other);
        w.end_frame(mark);
      }
    }
    loop_.complete(b.wait);
  } else if (b.remaining == 0 && !b.failed) {
    loop_.complete(b.wait);
  }
}

void Scheduler::fail_task(TaskId id, Task& t, const std::string& message, int node) {
  finish(id, t, wire::Status::kFailed, wire::Payload(), 0, node, message);
}

void Scheduler::on_lost(Node& n, const std::string& reason) {
  if (!n.alive) return;
  n.alive = false;
  lost_++;
  n.blobs.clear();  // no result will claim them: free them now, not when the pool ends
  n.blob_bytes = 0;
  n.lost_reason = reason.empty() ? "worker exited" : reason;
  if (!n.last_words.empty()) n.lost_reason = n.last_words + " (" + n.lost_reason + ")";
  bool expected = shutting_down_;
  if (!expected) {
    const std::string& why = n.lost_reason;
    Event lost("InstanceLost", opts_.pool_id, n.index);
    lost.ok = false;
    lost.text = why;
    emit(std::move(lost));
    if (!n.ready && start_error_.empty()) {
      start_error_ = "node " + std::to_string(n.index) + " failed to start: " + why;
      check_ready();
    }
    // Tasks that were running there run again elsewhere, at most `retries` more times.
    for (TaskId id : n.in_flight) {
      auto it = tasks_.find(id);
      if (it == tasks_.end() || it->second.done) continue;
      Task& t = it->second;
      batch_task_ended(t);
      if (t.pin < 0 && t.attempts <= opts_.retries) {
        t.node = -1;
        auto b = batches_.find(t.batch);
        if (b != batches_.end() && b->second.limit > 0)
          b->second.queued.push_front(id);
        else
          queue_.push_front(id);
      } else {
        fail_task(id, t, "node " + std::to_string(n.index) + " was lost: " + why, n.index);
      }
    }
    while (!n.pinned.empty()) {
      TaskId id = n.pinned.front();
      n.pinned.pop_front();
      auto it = tasks_.find(id);
      if (it != tasks_.end() && !it->second.done) {
        fail_task(id, it->second, "node " + std::to_string(n.index) + " was lost: " + why, n.index);
      }
    }
    n.in_flight.clear();
    n.running = 0;
    // Nothing can run the queues any more: fail them rather than wait forever.
    if (alive_count() == 0) fail_queued("no live nodes left in the pool (" + lost_summary() + ")");
    dispatch();
  }
  if (shutting_down_ && all_gone()) loop_.complete(gone_wait_);
}

void Scheduler::fail_queued(const std::string& message) {
  auto fail_all = [&](std::deque<TaskId>& q) {
    while (!q.empty()) {
      TaskId id = q.front();
      q.pop_front();
      auto it = tasks_.find(id);
      if (it != tasks_.end() && !it->second.done) fail_task(id, it->second, message, -1);
    }
  };
  fail_all(queue_);
  for (BatchId b : limited_) fail_all(batches_.at(b).queued);
}

void Scheduler::set_lease_interval(uint64_t interval_ms) {
  if (lease_timer_ == nullptr) {
    lease_timer_ = new uv_timer_t;
    uv_timer_init(loop_.uv(), lease_timer_);
    lease_timer_->data = this;
  }
  uv_timer_stop(lease_timer_);
  if (interval_ms == 0) return;
  uv_timer_start(
      lease_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Scheduler*>(t->data);
        if (self->shutting_down_) return;
        for (auto& n : self->nodes_) {
          if (!n->alive) continue;
          auto& w = n->link->out();
          size_t mark = w.begin_frame(wire::Msg::kLease);
          w.end_frame(mark);
          n->link->flush();
        }
      },
      interval_ms, interval_ms);
  // The lease never keeps the loop alive by itself.
  uv_unref(reinterpret_cast<uv_handle_t*>(lease_timer_));
}

bool Scheduler::all_gone() const {
  for (auto& n : nodes_) {
    if (!n->link->gone()) return false;
  }
  return true;
}

WaitId Scheduler::shutdown(uint64_t grace_ms) {
  if (shutting_down_) return gone_wait_;
  shutting_down_ = true;
  gone_wait_ = loop_.new_wait();
  for (auto& n : nodes_) {
    auto& w = n->link->out();
    w.clear();
    size_t mark = w.begin_frame(wire::Msg::kShutdown);
    w.end_frame(mark);
    n->link->flush();
    n->link->close();
  }
  if (all_gone()) {
    loop_.complete(gone_wait_);
    return gone_wait_;
  }
  grace_timer_ = new uv_timer_t;
  uv_timer_init(loop_.uv(), grace_timer_);
  grace_timer_->data = this;
  uv_timer_start(
      grace_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Scheduler*>(t->data);
        for (auto& n : self->nodes_) n->link->kill();
      },
      grace_ms, 0);
  return gone_wait_;
}

}  // namespace skyhost
