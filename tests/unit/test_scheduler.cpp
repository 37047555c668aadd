// host/links/scheduler: dispatch, results, failures, node loss — driven frame by frame through an
// in-memory link standing in for a worker's stream.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "host/links/scheduler.hpp"

using namespace skyhost;
using wire::Msg;

namespace {

struct FakeLink : Link {
  struct Sent {
    Msg type;
    uint64_t task = 0;        // for kTask and kCancel
    uint64_t fn = 0;          // for kTask and kDef
    uint64_t timeout_ms = 0;  // for kTask
    std::string args;         // for kTask
  };
  std::vector<Sent> sent;
  bool closed = false;
  bool is_gone = false;
  size_t refs_flushed = 0;  // large pieces written from elsewhere, not copied into out_

  void flush() override {
    // As a real link writes it: the buffer with the bytes its refs point at in their places.
    refs_flushed += out_.refs().size();
    std::string all;
    out_.segments([&](const char* p, size_t n) { all.append(p, n); });
    wire::FrameDecoder d;
    d.feed(all.data(), all.size());
    wire::Frame f;
    while (d.next(f)) {
      wire::Reader r(f.body);
      Sent s;
      s.type = f.type;
      if (f.type == Msg::kTask) {
        s.task = r.get_u64();
        s.fn = r.get_u64();
        s.timeout_ms = r.get_varint();
        s.args.assign(r.position(), r.remaining());
      } else if (f.type == Msg::kCancel) {
        s.task = r.get_u64();
      } else if (f.type == Msg::kDef) {
        s.fn = r.get_u64();
      }
      sent.push_back(s);
    }
    out_.clear();
    out_keep_.clear();
  }
  void close() override { closed = true; }
  void kill() override { drop("killed"); }
  bool gone() const override { return is_gone; }

  void ready(int executors = 1) {
    wire::Writer w;
    w.put_string("host");
    w.put_varint(1);
    w.put_varint(static_cast<uint64_t>(executors));
    on_frame(wire::Frame{Msg::kReady, w.data()});
  }
  void result(uint64_t task, bool ok, const std::string& body = "") {
    result(task, ok ? wire::Status::kOk : wire::Status::kFailed, body);
  }
  void result(uint64_t task, wire::Status status, const std::string& body = "") {
    wire::Writer w;
    w.put_u64(task);
    w.put_u8(static_cast<uint8_t>(status));
    w.put_u64(1000);
    if (status == wire::Status::kOk) {
      w.put_raw(body.data(), body.size());
    } else {
      w.put_string("boom");
      w.put_string("trace");
    }
    std::string b = w.take();
    on_frame(wire::Frame{Msg::kResult, b});
  }
  // Bytes from the worker's stream, through the links' one frame splitter.
  std::string deliver(const std::string& bytes) { return receive(bytes.data(), bytes.size()); }
  void drop(const std::string& why) {
    if (is_gone) return;
    is_gone = true;
    on_closed(why);
  }
  std::vector<uint64_t> tasks(Msg type = Msg::kTask) const {
    std::vector<uint64_t> out;
    for (auto& s : sent) {
      if (s.type == type) out.push_back(s.task);
    }
    return out;
  }
  int count(Msg m) const {
    return static_cast<int>(
        std::count_if(sent.begin(), sent.end(), [&](const Sent& s) { return s.type == m; }));
  }
};

struct Fixture {
  Loop loop;
  std::unique_ptr<Scheduler> sched;
  std::vector<FakeLink*> links;

  explicit Fixture(int nodes, Scheduler::Options o = {}) {
    sched = std::make_unique<Scheduler>(loop, o);
    for (int i = 0; i < nodes; i++) {
      auto l = std::make_unique<FakeLink>();
      links.push_back(l.get());
      sched->add_node(std::move(l), "init");
    }
  }
  void all_ready() {
    for (auto* l : links) l->ready();
  }
  std::vector<WaitId> poll() {
    std::vector<WaitId> ids;
    loop.poll(false, ids);
    return ids;
  }
  bool completed(WaitId id) {
    auto ids = poll();
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  }
};

}  // namespace

TEST_CASE("every node gets Init, and the pool is ready once all nodes are", "[scheduler]") {
  Fixture f(2);
  for (auto* l : f.links) REQUIRE(l->count(Msg::kInit) == 1);
  WaitId ready = f.sched->ready_wait();
  f.links[0]->ready(3);
  REQUIRE_FALSE(f.completed(ready));
  REQUIRE_FALSE(f.sched->node_info(1).ready);
  f.links[1]->ready();
  REQUIRE(f.completed(ready));
  REQUIRE(f.sched->start_error().empty());
  const NodeInfo& info = f.sched->node_info(0);  // what its Ready frame said
  REQUIRE(info.ready);
  REQUIRE(info.hostname == "host");
  REQUIRE(info.worker_pid == 1);
  REQUIRE(info.executors == 3);
}

TEST_CASE("a node dying before it is ready fails the start with a reason", "[scheduler]") {
  Fixture f(2);
  WaitId ready = f.sched->ready_wait();
  f.links[0]->ready();
  f.links[1]->drop("worker exited with status 2");
  REQUIRE(f.completed(ready));
  REQUIRE(f.sched->start_error() == "node 1 failed to start: worker exited with status 2");
}

TEST_CASE("nothing is sent before a node is ready; tasks spread round robin", "[scheduler]") {
  Fixture f(3);
  ClosureId fn = f.sched->define("fn");
  BatchId b = f.sched->new_batch();
  for (int i = 0; i < 6; i++) f.sched->submit(b, fn, "args");
  f.sched->flush();
  for (auto* l : f.links) REQUIRE(l->tasks().empty());
  f.all_ready();
  f.sched->flush();
  for (auto* l : f.links) {
    REQUIRE(l->tasks().size() == 2);
    REQUIRE(l->count(Msg::kDef) == 1);  // the function goes once per node
  }
}

TEST_CASE("the same closure bytes get the same id", "[scheduler]") {
  Fixture f(1);
  REQUIRE(f.sched->define("a") == f.sched->define("a"));
  REQUIRE(f.sched->define("a") != f.sched->define("b"));
}

TEST_CASE("at most concurrency + prefetch tasks are in flight per node", "[scheduler]") {
  Fixture f(1, Scheduler::Options{0, 2, 1, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  for (int i = 0; i < 10; i++) f.sched->submit(b, fn, "");
  f.sched->flush();
  auto first = f.links[0]->tasks();
  REQUIRE(first.size() == 3);
  f.links[0]->result(first[0], true, std::string(1, '\0'));  // a zero-value list
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() == 4);
}

TEST_CASE("a batch completes when its last task does, outcomes in order", "[scheduler]") {
  Fixture f(2);
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t1 = f.sched->submit(b, fn, "");
  TaskId t2 = f.sched->submit(b, fn, "");
  f.sched->flush();
  WaitId w = f.sched->batch(b).wait;
  f.links[1]->result(t2, true, "two");
  REQUIRE_FALSE(f.completed(w));
  f.links[0]->result(t1, true, "one");
  REQUIRE(f.completed(w));
  REQUIRE(f.sched->outcome(t1)->payload == "one");
  REQUIRE(f.sched->outcome(t2)->payload == "two");
  REQUIRE(f.sched->outcome(t2)->node == 1);
  f.sched->release(b);
  REQUIRE(f.sched->outcome(t1) == nullptr);
}

TEST_CASE("the first failure completes the batch and drops its queued tasks", "[scheduler]") {
  Fixture f(1, Scheduler::Options{0, 1, 0, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t1 = f.sched->submit(b, fn, "");
  f.sched->submit(b, fn, "");
  f.sched->submit(b, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() == 1);
  f.links[0]->result(t1, false);
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE_FALSE(f.sched->outcome(t1)->ok);
  f.sched->release(b);
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() == 1);  // the other two never went out
}

TEST_CASE("a result is delivered once: duplicates and strangers are ignored", "[scheduler]") {
  Fixture f(2);
  f.all_ready();
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, f.sched->define("fn"), "");
  f.sched->flush();
  FakeLink* runner = f.links[0]->tasks().empty() ? f.links[1] : f.links[0];
  FakeLink* other = runner == f.links[0] ? f.links[1] : f.links[0];
  other->result(t, true, "from the wrong node");
  REQUIRE_FALSE(f.completed(f.sched->batch(b).wait));
  runner->result(t, true, "right");
  runner->result(t, true, "again");
  REQUIRE(f.sched->outcome(t)->payload == "right");
}

TEST_CASE("tasks of a lost node run again elsewhere, within retries", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t1 = f.sched->submit(b, fn, "");
  TaskId t2 = f.sched->submit(b, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks() == std::vector<uint64_t>{t1});
  f.links[0]->drop("connection reset");
  f.sched->flush();
  auto ev = f.sched->take_events();
  REQUIRE(std::any_of(ev.begin(), ev.end(), [](const Event& e) {
    return e.type == "InstanceLost" && e.node == 0 && e.text == "connection reset";
  }));
  f.links[1]->result(t2, true, "b");
  f.sched->flush();
  REQUIRE(f.links[1]->tasks() == std::vector<uint64_t>{t2, t1});  // t1 retried on node 1
  f.links[1]->result(t1, true, "a");
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE(f.sched->outcome(t1)->payload == "a");
}

TEST_CASE("past its retries a task fails naming the lost node", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 0});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, f.sched->define("fn"), "");
  f.sched->flush();
  FakeLink* runner = f.links[0]->tasks().empty() ? f.links[1] : f.links[0];
  runner->drop("host unreachable");
  REQUIRE(f.completed(f.sched->batch(b).wait));
  const Outcome* o = f.sched->outcome(t);
  REQUIRE_FALSE(o->ok);
  REQUIRE(o->message.find("was lost: host unreachable") != std::string::npos);
}

TEST_CASE("pinned tasks run on their node and fail if it is lost", "[scheduler]") {
  Fixture f(2);
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t0 = f.sched->submit(b, fn, "", 0);
  TaskId t1 = f.sched->submit(b, fn, "", 1);
  f.sched->flush();
  REQUIRE(f.links[0]->tasks() == std::vector<uint64_t>{t0});
  REQUIRE(f.links[1]->tasks() == std::vector<uint64_t>{t1});
  f.links[1]->drop("gone");
  f.links[0]->result(t0, true, "x");
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE_FALSE(f.sched->outcome(t1)->ok);
}

TEST_CASE("when every node is lost, queued work fails instead of waiting", "[scheduler]") {
  Fixture f(1, Scheduler::Options{0, 1, 0, 0});
  f.all_ready();
  ClosureId fn = f.sched->define("fn");
  BatchId running = f.sched->new_batch();
  f.sched->submit(running, fn, "");
  BatchId waiting = f.sched->new_batch();
  TaskId queued = f.sched->submit(waiting, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() == 1);
  f.links[0]->drop("gone");
  auto done = f.poll();
  REQUIRE(std::count(done.begin(), done.end(), f.sched->batch(waiting).wait) == 1);
  REQUIRE(f.sched->outcome(queued)->message == "no live nodes left in the pool (node 0: gone)");
}

TEST_CASE("a task for a pool whose nodes are all lost fails at once, naming why", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 0});
  f.all_ready();
  f.links[0]->drop("worker killed by signal 9");
  f.links[1]->drop("connection reset");
  REQUIRE(f.sched->alive_count() == 0);
  REQUIRE(f.sched->lost_reason(1) == "connection reset");
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, f.sched->define("fn"), "");
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE(f.sched->outcome(t)->message ==
          "no live nodes left in the pool (node 0: worker killed by signal 9; node 1: connection "
          "reset)");
}

TEST_CASE("a task's timeout travels with it; a timed-out task fails without a retry",
          "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 3});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, f.sched->define("fn"), "", -1, 1500);
  f.sched->flush();
  FakeLink* runner = f.links[0]->tasks().empty() ? f.links[1] : f.links[0];
  REQUIRE(runner->sent.back().timeout_ms == 1500);
  runner->result(t, wire::Status::kTimedOut);
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE(f.sched->outcome(t)->status == wire::Status::kTimedOut);
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() + f.links[1]->tasks().size() == 1);
}

TEST_CASE("releasing a batch cancels its running tasks on their nodes", "[scheduler]") {
  Fixture f(1, Scheduler::Options{0, 1, 0, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId running = f.sched->submit(b, fn, "");
  f.sched->submit(b, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks() == std::vector<uint64_t>{running});
  f.sched->release(b);  // the script stopped waiting (an interrupt, an error)
  f.sched->flush();
  REQUIRE(f.links[0]->tasks(Msg::kCancel) == std::vector<uint64_t>{running});
  REQUIRE(f.links[0]->tasks().size() == 1);  // the queued one never goes out
  // The node answers with a cancelled Result, which frees its place for new work.
  f.links[0]->result(running, wire::Status::kCancelled);
  BatchId next = f.sched->new_batch();
  TaskId t = f.sched->submit(next, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().back() == t);
}

TEST_CASE("a batch that collects every outcome does not stop at a failure", "[scheduler]") {
  Fixture f(1, Scheduler::Options{0, 1, 0, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch(0, true);
  ClosureId fn = f.sched->define("fn");
  TaskId t1 = f.sched->submit(b, fn, "");
  TaskId t2 = f.sched->submit(b, fn, "");
  f.sched->flush();
  f.links[0]->result(t1, false);
  REQUIRE_FALSE(f.completed(f.sched->batch(b).wait));
  REQUIRE(f.sched->batch(b).failures == 1);
  f.sched->flush();
  f.links[0]->result(t2, true, std::string(1, '\0'));
  REQUIRE(f.completed(f.sched->batch(b).wait));
  REQUIRE_FALSE(f.sched->outcome(t1)->ok);
  REQUIRE(f.sched->outcome(t2)->ok);
}

TEST_CASE("with concurrency 0 each node's window follows the executors it reports", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 0, 1, 1});
  f.links[0]->ready(3);
  f.links[1]->ready(1);
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  for (int i = 0; i < 20; i++) f.sched->submit(b, fn, "");
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() == 4);  // 3 executors + 1 prefetched
  REQUIRE(f.links[1]->tasks().size() == 2);
}

TEST_CASE("a batch limit caps how many of its tasks run at once", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 4, 4, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch(3);
  ClosureId fn = f.sched->define("fn");
  for (int i = 0; i < 10; i++) f.sched->submit(b, fn, "");
  f.sched->flush();
  size_t sent = f.links[0]->tasks().size() + f.links[1]->tasks().size();
  REQUIRE(sent == 3);
  TaskId first = f.links[0]->tasks().empty() ? f.links[1]->tasks()[0] : f.links[0]->tasks()[0];
  FakeLink* runner = f.links[0]->tasks().empty() ? f.links[1] : f.links[0];
  runner->result(first, true, std::string(1, '\0'));
  f.sched->flush();
  REQUIRE(f.links[0]->tasks().size() + f.links[1]->tasks().size() == 4);
}

TEST_CASE("shutdown asks every node to stop and completes when all are gone", "[scheduler]") {
  Fixture f(2);
  f.all_ready();
  WaitId gone = f.sched->shutdown(5000);
  for (auto* l : f.links) {
    REQUIRE(l->count(Msg::kShutdown) == 1);
    REQUIRE(l->closed);
  }
  f.links[0]->drop("");
  REQUIRE_FALSE(f.completed(gone));
  f.links[1]->drop("");
  REQUIRE(f.completed(gone));
}

TEST_CASE("task events are produced only when asked for", "[scheduler]") {
  Fixture f(1);
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t = f.sched->submit(b, fn, "");
  f.sched->flush();
  f.links[0]->result(t, true, "");
  REQUIRE(f.sched->take_events().empty());
  f.sched->set_task_events(true);
  t = f.sched->submit(b, fn, "");
  f.sched->flush();
  f.links[0]->result(t, true, "");
  std::vector<Event> ev = f.sched->take_events();
  REQUIRE(ev.size() == 2);
  REQUIRE(ev[0].type == "TaskStarted");
  REQUIRE(ev[1].type == "TaskCompleted");
  REQUIRE(ev[1].ok);
  REQUIRE(f.sched->take_events().empty());  // taken once
}

namespace {

std::string frame_bytes(Msg type, const std::string& body) {
  wire::Writer w;
  size_t mark = w.begin_frame(type);
  w.put_raw(body.data(), body.size());
  w.end_frame(mark);
  return w.take();
}

}  // namespace

TEST_CASE("values too large for a frame are refused when submitted, changing nothing",
          "[scheduler]") {
  Scheduler::Options o;
  o.max_frame = 4096;
  Fixture f(1, o);
  f.all_ready();
  CHECK_THROWS_WITH(f.sched->define(std::string(5000, 'f')),
                    "the function and its upvalues take 4.9 KiB (5000 bytes), more than the "
                    "frame limit of 4 KiB (max_frame)");
  ClosureId fn = f.sched->define("fn");
  CHECK(fn == 1);  // the refused one took no id
  BatchId b = f.sched->new_batch();
  CHECK_THROWS_WITH(f.sched->submit(b, fn, std::string(4096, 'a')),
                    "the task's arguments take 4 KiB, more than the frame limit of 4 KiB "
                    "(max_frame)");
  CHECK(f.sched->batch(b).tasks.empty());
  f.sched->submit(b, fn, std::string(4096 - wire::kFrameOverhead, 'a'));  // exactly fits
  f.sched->flush();
  CHECK(f.links[0]->tasks().size() == 1);
  CHECK_THROWS_WITH(f.sched->add_node(std::make_unique<FakeLink>(), std::string(5000, 'i')),
                    Catch::StartsWith("the node's settings take"));
  CHECK(f.sched->node_count() == 1);
}

TEST_CASE("a worker's bad frames end its link with the reason, never the host", "[scheduler]") {
  Scheduler::Options o;
  o.max_frame = 4096;
  SECTION("a malformed Ready") {
    Fixture f(1, o);
    CHECK_THAT(f.links[0]->deliver(frame_bytes(Msg::kReady,
                                               "\x05"
                                               "ab")),
               Catch::StartsWith("bad frame from worker: wire: string of 5 bytes"));
  }
  SECTION("a frame over the limit, refused from its header") {
    Fixture f(1, o);
    CHECK(f.links[0]->deliver(std::string("\x00\x20\x00\x00", 4)) ==
          "bad frame from worker: wire: frame of 8 KiB exceeds the limit of 4 KiB");
  }
  SECTION("a message only the host sends") {
    Fixture f(1, o);
    CHECK(f.links[0]->deliver(frame_bytes(Msg::kTask, "")) ==
          "bad frame from worker: unexpected message type 3");
  }
  SECTION("good frames before a bad one still count") {
    Fixture f(1, o);
    wire::Writer w;
    w.put_string("host");
    w.put_varint(1);
    w.put_varint(1);
    WaitId ready = f.sched->ready_wait();
    CHECK_FALSE(
        f.links[0]->deliver(frame_bytes(Msg::kReady, w.data()) + std::string(4, '\0')).empty());
    CHECK(f.completed(ready));
  }
}

TEST_CASE("a malformed failure from a worker becomes the host's own", "[scheduler]") {
  Fixture f(1);
  f.all_ready();
  ClosureId fn = f.sched->define("fn");
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, fn, "args");
  f.sched->flush();
  wire::Writer w;
  w.put_u64(t);
  w.put_u8(0);
  w.put_u64(1);
  w.put_raw("\x09zz", 3);  // a message string of 9 bytes, 2 there
  CHECK(f.links[0]->deliver(frame_bytes(Msg::kResult, w.data())).empty());
  REQUIRE(f.completed(f.sched->batch(b).wait));
  const Outcome* o = f.sched->outcome(t);
  REQUIRE(o != nullptr);
  CHECK_FALSE(o->ok);
  CHECK(o->message == "the worker sent a malformed failure");
}

TEST_CASE("a worker's failure comes as its message and traceback, the raised value apart",
          "[scheduler]") {
  Fixture f(1);
  f.all_ready();
  BatchId b = f.sched->new_batch();
  TaskId t = f.sched->submit(b, f.sched->define("fn"), "args");
  f.sched->flush();
  f.links[0]->result(t, false);
  REQUIRE(f.completed(f.sched->batch(b).wait));
  const Outcome* o = f.sched->outcome(t);
  REQUIRE(o != nullptr);
  CHECK_FALSE(o->ok);
  CHECK(o->message == "boom");
  CHECK(o->traceback == "trace");
  CHECK(o->payload == "");  // no value raised
}

TEST_CASE("a worker's last words say why it was lost", "[scheduler]") {
  Fixture f(1);
  WaitId ready = f.sched->ready_wait();
  wire::Writer w;
  w.put_string("malformed Init frame from host: it is empty");
  CHECK(f.links[0]->deliver(frame_bytes(Msg::kFatal, w.data())).empty());
  f.links[0]->drop("worker exited with status 3");
  REQUIRE(f.completed(ready));
  CHECK(f.sched->start_error() ==
        "node 0 failed to start: malformed Init frame from host: it is empty (worker exited "
        "with status 3)");
}

TEST_CASE("large arguments are sent from the task's copy, whole, again on a retry", "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 1});
  f.all_ready();
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  std::string big(wire::Writer::kRefMin * 3 + 5, 'a');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>('A' + i % 26);
  TaskId t = f.sched->submit(b, fn, big);
  f.sched->flush();
  FakeLink* first = f.links[0]->sent.empty() ? f.links[1] : f.links[0];
  FakeLink* other = first == f.links[0] ? f.links[1] : f.links[0];
  REQUIRE(first->sent.back().args == big);
  REQUIRE(first->refs_flushed == 1);  // the link's buffer referred to the bytes, no copy
  first->drop("connection reset");
  f.sched->flush();
  REQUIRE(other->tasks() == std::vector<uint64_t>{t});
  REQUIRE(other->sent.back().args == big);
  REQUIRE(other->refs_flushed == 1);
  other->result(t, true, "ok");
  REQUIRE(f.completed(f.sched->batch(b).wait));
}

TEST_CASE("a spot notice drains its node: one event, no new shared work, a broadcast still runs",
          "[scheduler]") {
  Fixture f(2, Scheduler::Options{0, 1, 0, 1});  // one task at a time per node, none queued ahead
  f.all_ready();
  f.sched->take_events();
  wire::Writer w;
  w.put_string(std::string(1000, 't'));  // cut to 64 bytes on arrival
  w.put_string("2026-12-03T17:02:00Z");
  CHECK(f.links[0]->deliver(frame_bytes(Msg::kNotice, w.data())).empty());
  CHECK(f.links[0]->deliver(frame_bytes(Msg::kNotice, w.data())).empty());  // said once
  auto events = f.sched->take_events();
  REQUIRE(events.size() == 1);
  CHECK(events[0].type == "SpotNotice");
  CHECK(events[0].node == 0);
  CHECK(events[0].name == std::string(64, 't'));
  CHECK(events[0].text == "2026-12-03T17:02:00Z");
  BatchId b = f.sched->new_batch();
  ClosureId fn = f.sched->define("fn");
  TaskId t1 = f.sched->submit(b, fn, "1");
  TaskId t2 = f.sched->submit(b, fn, "2");
  TaskId pinned = f.sched->submit(b, fn, "3", 0);
  f.sched->flush();
  CHECK(f.links[0]->tasks() == std::vector<uint64_t>{pinned});
  CHECK(f.links[1]->tasks() == std::vector<uint64_t>{t1});
  f.links[1]->result(t1, true, "ok");
  f.sched->flush();
  CHECK(f.links[1]->tasks() == std::vector<uint64_t>{t1, t2});
  f.links[1]->result(t2, true, "ok");
  f.links[0]->result(pinned, true, "ok");
  REQUIRE(f.completed(f.sched->batch(b).wait));
  CHECK(f.links[0]->tasks().size() == 1);
}
