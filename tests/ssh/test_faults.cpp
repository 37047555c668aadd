// Failures: a host dying mid-channel, a dead link found by keepalives, sessions destroyed or
// closed with operations in flight (run this file under ASan too: -DSKYHOST_SANITIZE=ON).
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "host/ssh/session.hpp"
#include "tests/ssh/testbed.hpp"

using namespace skyhost::ssh;
using namespace skyhost::ssh::test;

namespace {

std::unique_ptr<Session> connected(Loop& loop, SessionOptions o) {
  auto s = std::make_unique<Session>(loop.get(), o);
  bool done = false;
  Status st;
  s->connect([&](const Status& x) {
    st = x;
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }, 30));
  INFO(st.error);
  REQUIRE(st.ok());
  return s;
}

// Brings the bed back to 3 healthy hosts when a test that breaks one ends (also on failure).
struct RepairBed {
  ~RepairBed() { bed("up 3"); }
};

struct LostWatch {
  int lost = 0;
  std::string reason;
  int exits = 0;
  ExitInfo exit;
};

}  // namespace

TEST_CASE("faults: host killed mid-channel -> on_lost once, channel fails", "[faults]") {
  RepairBed repair;
  Loop loop;
  auto s = connected(loop, options_for(3));
  LostWatch w;
  s->on_lost([&](const std::string& why) {
    ++w.lost;
    w.reason = why;
  });
  Channel ch = s->exec("cat");  // a long-lived stream, as the worker protocol is
  size_t echoed = 0;
  ch.on_data([&](std::string_view d) { echoed += d.size(); });
  ch.on_exit([&](const ExitInfo& e) {
    ++w.exits;
    w.exit = e;
  });
  ch.write("ping\n");
  REQUIRE(loop.run_until([&] { return echoed == 5; }, 10));
  REQUIRE(bed("kill 3") == 0);  // sshd is PID 1 of the host: everything on it dies
  REQUIRE(loop.run_until([&] { return w.lost == 1 && w.exits == 1; }, 10));
  INFO(w.reason);
  REQUIRE(w.reason.find("h3 (10.203.0.13:22): connection lost") == 0);
  REQUIRE(w.exit.error == w.reason);
  REQUIRE_FALSE(s->is_ready());
  // later operations fail at once, from the loop
  int failed = 0;
  s->run("true", {}, [&](RunResult r) { failed += !r.exit.error.empty(); });
  ch.write("more", [&](const Status& st) { failed += !st.ok(); });
  REQUIRE(loop.run_until([&] { return failed == 2; }, 5));
  loop.run_for(0.3);
  REQUIRE(w.lost == 1);
  REQUIRE(w.exits == 1);
}

TEST_CASE("faults: dead link (cable out) detected by keepalives", "[faults][keepalive]") {
  RepairBed repair;
  Loop loop;
  SessionOptions o = options_for(2);
  o.keepalive_interval = 2;  // the minimum libssh2 allows
  o.keepalive_count = 1;     // lost after 2 * 1 + 1 = 3 s of silence
  auto s = connected(loop, o);
  LostWatch w;
  s->on_lost([&](const std::string& why) {
    ++w.lost;
    w.reason = why;
  });
  Channel ch = s->exec("sleep 60");  // silent: only keepalives show that the host is there
  ch.on_exit([&](const ExitInfo& e) {
    ++w.exits;
    w.exit = e;
  });
  loop.run_for(4.5);  // > the limit: keepalives are answered, nothing is lost
  REQUIRE(w.lost == 0);
  REQUIRE(s->stats().keepalives_sent >= 1);

  REQUIRE(bed("link 2 down") == 0);
  double t0 = loop.now();
  REQUIRE(loop.run_until([&] { return w.lost == 1; }, 10));
  double took = loop.now() - t0;
  INFO(w.reason);
  REQUIRE(took < 4.5);
  REQUIRE((w.reason.find("keepalive") != std::string::npos ||
           w.reason.find("timed out") != std::string::npos));
  REQUIRE(w.exits == 1);
}

TEST_CASE("faults: frozen host (TCP alive, sshd stopped) detected by keepalives",
          "[faults][keepalive]") {
  RepairBed repair;
  Loop loop;
  SessionOptions o = options_for(1);
  o.keepalive_interval = 2;
  o.keepalive_count = 1;
  auto s = connected(loop, o);
  LostWatch w;
  s->on_lost([&](const std::string& why) {
    ++w.lost;
    w.reason = why;
  });
  // no channel at all: the idle path (input not read) must still see the answers
  loop.run_for(4.5);
  REQUIRE(w.lost == 0);
  REQUIRE(s->stats().keepalives_sent >= 1);
  REQUIRE(bed("freeze 1") == 0);
  REQUIRE(loop.run_until([&] { return w.lost == 1; }, 10));
  INFO(w.reason);
  REQUIRE(w.reason.find("no answer from the server") != std::string::npos);
  REQUIRE(bed("thaw 1") == 0);
}

TEST_CASE("faults: destroying sessions mid-operation is safe", "[faults][destroy]") {
  Loop loop;
  SECTION("right after connect()") {
    auto s = std::make_unique<Session>(loop.get(), options_for(1));
    bool called = false;
    s->connect([&](const Status&) { called = true; });
    s->exec("echo x").on_exit([&](const ExitInfo&) { called = true; });
    s.reset();
    loop.run_for(0.3);
    REQUIRE_FALSE(called);
  }
  SECTION("during the handshake, at every stage") {
    for (int step = 0; step < 12; ++step) {
      auto s = std::make_unique<Session>(loop.get(), options_for(1));
      bool called = false;
      s->connect([&](const Status&) { called = true; });
      for (int i = 0; i < step && !called; ++i) uv_run(loop.get(), UV_RUN_ONCE);
      s.reset();
      loop.run_for(0.05);
    }
  }
  SECTION("while resolving a name") {
    SessionOptions o = options_for(1);
    o.host = "10.203.11";
    auto s = std::make_unique<Session>(loop.get(), o);
    s->connect([](const Status&) {});
    uv_run(loop.get(), UV_RUN_NOWAIT);
    s.reset();
    loop.run_for(0.3);
  }
  SECTION("while retrying a refused port") {
    SessionOptions o = options_for(1);
    o.port = 2222;
    auto s = std::make_unique<Session>(loop.get(), o);
    s->connect([](const Status&) {});
    loop.run_for(0.3);
    s.reset();
    loop.run_for(0.1);
  }
  SECTION("from inside on_data while streaming") {
    std::unique_ptr<Session> s = connected(loop, options_for(2));
    Channel ch = s->exec("head -c 50000000 /dev/zero");
    size_t got = 0;
    ch.on_data([&](std::string_view d) {
      got += d.size();
      if (got > (4u << 20)) s.reset();  // destroys the session inside its own callback
    });
    REQUIRE(loop.run_until([&] { return !s; }, 20));
    ch.write("ignored");  // the session is gone: a no-op
    loop.run_for(0.1);
  }
  SECTION("from inside on_exit and from a write callback") {
    std::unique_ptr<Session> s = connected(loop, options_for(2));
    Channel ch = s->exec("cat");
    bool destroyed = false;
    ch.write(std::string(1 << 20, 'x'), [&](const Status&) {
      s.reset();
      destroyed = true;
    });
    ch.write(std::string(1 << 20, 'y'), [&](const Status&) { FAIL_CHECK("called after destroy"); });
    REQUIRE(loop.run_until([&] { return destroyed; }, 20));
    loop.run_for(0.1);

    s = connected(loop, options_for(2));
    Channel c2 = s->exec("true");
    c2.on_exit([&](const ExitInfo&) { s.reset(); });
    REQUIRE(loop.run_until([&] { return !s; }, 20));
  }
  SECTION("dropping a channel handle mid-stream, then using the session") {
    std::unique_ptr<Session> s = connected(loop, options_for(3));
    {
      Channel ch = s->exec("head -c 100000000 /dev/zero");
      size_t got = 0;
      ch.on_data([&](std::string_view d) { got += d.size(); });
      REQUIRE(loop.run_until([&] { return got > (1u << 20); }, 20));
    }
    bool done = false;
    RunResult r;
    s->run("echo after", {}, [&](RunResult x) {
      r = std::move(x);
      done = true;
    });
    REQUIRE(loop.run_until([&] { return done; }, 20));
    REQUIRE(r.out == "after\n");
  }
}

TEST_CASE("faults: close() with channels in flight", "[faults]") {
  Loop loop;
  auto s = connected(loop, options_for(1));
  int lost = 0, closed = 0, exits = 0;
  std::string why;
  s->on_lost([&](const std::string&) { ++lost; });
  Channel ch = s->exec("sleep 30");
  ch.on_exit([&](const ExitInfo& e) {
    ++exits;
    why = e.error;
  });
  loop.run_for(0.2);
  s->close([&] { ++closed; });
  s->close([&] { ++closed; });
  REQUIRE(loop.run_until([&] { return closed == 2 && exits == 1; }, 10));
  REQUIRE(why.find("session closed") != std::string::npos);
  REQUIRE(lost == 0);
  REQUIRE_FALSE(s->is_ready());
}

TEST_CASE("faults: close() while still connecting", "[faults]") {
  Loop loop;
  SessionOptions o = options_for(1);
  o.port = 2222;  // refused: the session keeps retrying
  Session s(loop.get(), o);
  int connects = 0, closed = 0, exits = 0;
  std::string connect_error, exit_error;
  s.connect([&](const Status& st) {
    ++connects;
    connect_error = st.error;
  });
  Channel ch = s.exec("true");
  ch.on_exit([&](const ExitInfo& e) {
    ++exits;
    exit_error = e.error;
  });
  loop.run_for(0.3);
  s.close([&] { ++closed; });
  REQUIRE(loop.run_until([&] { return closed == 1 && connects == 1 && exits == 1; }, 5));
  REQUIRE(connect_error.find("session closed before connect finished") != std::string::npos);
  REQUIRE(exit_error.find("session closed") != std::string::npos);
}
