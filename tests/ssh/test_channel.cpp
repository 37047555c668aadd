// Exec channels: streaming both ways, stderr, exit status and signals, timeouts, EOF rules,
// run() and uploads.
#include <catch2/catch.hpp>
#include <string>

#include "host/ssh/session.hpp"
#include "tests/ssh/testbed.hpp"

using namespace skyhost::ssh;
using namespace skyhost::ssh::test;

namespace {

// A connected session to host i on `loop`.
std::unique_ptr<Session> connected(Loop& loop, int i, SessionOptions o = {}) {
  if (o.host.empty()) o = options_for(i);
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

RunResult run(Loop& loop, Session& s, const std::string& cmd, RunOptions o = {}) {
  RunResult res;
  bool done = false;
  s.run(cmd, o, [&](RunResult r) {
    res = std::move(r);
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }, 60));
  return res;
}

// deterministic pseudo-random bytes (xorshift), so the checksum means something
std::string pattern(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

}  // namespace

TEST_CASE("channel: 100 MiB through cat, stdin to stdout, checksum", "[channel]") {
  Loop loop;
  auto s = connected(loop, 1);
  constexpr size_t kChunk = 1 << 20;
  constexpr int kChunks = 100;
  Channel ch = s->exec("cat");
  Fnv sent, got;
  size_t received = 0, max_pending = 0;
  int written = 0, acked = 0, failed = 0;
  bool exited = false;
  ExitInfo exit;
  ch.on_data([&](std::string_view d) {
    got.add(d);
    received += d.size();
  });
  ch.on_exit([&](const ExitInfo& e) {
    exit = e;
    exited = true;
  });
  // keep ~8 MiB queued: write more whenever a chunk has been handed to SSH
  std::function<void()> feed = [&] {
    while (written < kChunks && ch.pending_bytes() < 8 * kChunk) {
      std::string chunk = pattern(kChunk, static_cast<uint64_t>(written));
      sent.add(chunk);
      ++written;
      ch.write(std::move(chunk), [&](const Status& st) {
        if (!st.ok()) ++failed;  // no REQUIRE in a callback: it would throw through libuv
        ++acked;
        feed();
      });
      max_pending = std::max(max_pending, ch.pending_bytes());
    }
    if (written == kChunks && acked == kChunks) ch.send_eof();
  };
  feed();
  REQUIRE(loop.run_until([&] { return exited; }, 120));
  INFO(exit.error);
  REQUIRE(exit.ok());
  REQUIRE(acked == kChunks);
  REQUIRE(failed == 0);
  REQUIRE(received == kChunk * kChunks);
  REQUIRE(got.h == sent.h);
  REQUIRE(max_pending <= 9 * kChunk);
}

TEST_CASE("channel: stdout, stderr and exit status", "[channel]") {
  Loop loop;
  auto s = connected(loop, 2);
  RunResult r = run(loop, *s, "echo out; echo err >&2; exit 7");
  REQUIRE(r.exit.error.empty());
  REQUIRE(r.exit.code == 7);
  REQUIRE_FALSE(r.exit.ok());
  REQUIRE(r.out == "out\n");
  REQUIRE(r.err == "err\n");

  RunResult sig = run(loop, *s, "kill -TERM $$; sleep 5");
  REQUIRE(sig.exit.signal == "TERM");
  REQUIRE(sig.exit.code == -1);

  RunOptions in;
  in.input = "line one\nline two\n";
  RunResult wc = run(loop, *s, "wc -l", in);
  REQUIRE(wc.exit.ok());
  REQUIRE(wc.out == "2\n");
}

TEST_CASE("channel: many channels at once on one session", "[channel]") {
  Loop loop;
  auto s = connected(loop, 3);
  int done = 0;
  bool all_ok = true;
  for (int i = 0; i < 20; ++i) {
    s->run("echo " + std::to_string(i), {}, [&, i](RunResult r) {
      all_ok = all_ok && r.exit.ok() && r.out == std::to_string(i) + "\n";
      ++done;
    });
  }
  REQUIRE(loop.run_until([&] { return done == 20; }, 60));
  REQUIRE(all_ok);
}

TEST_CASE("channel: output is truncated at max_output", "[channel]") {
  Loop loop;
  auto s = connected(loop, 1);
  RunOptions o;
  o.max_output = 1000;
  RunResult r = run(loop, *s, "head -c 100000 /dev/zero", o);
  REQUIRE(r.exit.ok());
  REQUIRE(r.out.size() == 1000);
  REQUIRE(r.truncated);
}

TEST_CASE("channel: timeout ends the command with timed_out", "[channel]") {
  Loop loop;
  auto s = connected(loop, 1);
  RunOptions o;
  o.timeout = 0.5;
  double t0 = loop.now();
  RunResult r = run(loop, *s, "sleep 10", o);
  double took = loop.now() - t0;
  REQUIRE(r.exit.timed_out);
  REQUIRE(r.exit.error.find("timed out after 0.5 s") != std::string::npos);
  REQUIRE(took < 3);
  // the session is still usable
  REQUIRE(run(loop, *s, "echo still").out == "still\n");
}

TEST_CASE("channel: writes after EOF or close fail, each callback once", "[channel]") {
  Loop loop;
  auto s = connected(loop, 2);
  Channel ch = s->exec("cat > /dev/null");
  int exits = 0;
  std::vector<std::string> results;
  ch.on_exit([&](const ExitInfo&) { ++exits; });
  ch.write("abc", [&](const Status& st) { results.push_back(st.ok() ? "ok" : st.error); });
  ch.send_eof();
  ch.write("late", [&](const Status& st) { results.push_back(st.ok() ? "ok" : st.error); });
  REQUIRE(loop.run_until([&] { return exits == 1 && results.size() == 2; }, 20));
  REQUIRE(results[0].find("past EOF") != std::string::npos);  // reported first: deferred
  REQUIRE(results[1] == "ok");

  Channel c2 = s->exec("sleep 30");
  ExitInfo e2;
  int exits2 = 0;
  c2.on_exit([&](const ExitInfo& e) {
    e2 = e;
    ++exits2;
  });
  loop.run_for(0.2);
  c2.close();
  c2.close();
  REQUIRE_FALSE(c2.is_open());
  REQUIRE(loop.run_until([&] { return exits2 == 1; }, 10));
  REQUIRE(e2.error.find("channel closed") != std::string::npos);
  loop.run_for(0.2);
  REQUIRE(exits2 == 1);
  REQUIRE(exits == 1);
}

TEST_CASE("upload: bytes and a file, renamed into place with the mode", "[upload]") {
  Loop loop;
  auto s = connected(loop, 3);
  std::string data = pattern(3 << 20, 42);
  Status st1 = Status::failure("not run"), st2 = Status::failure("not run");
  int done = 0;
  s->upload_bytes(data, "/tmp/up-bytes", {0600, 60}, [&](const Status& st) {
    st1 = st;
    ++done;
  });
  std::string local = temp_path("upload");
  write_file(local, pattern(10 << 20, 7));
  s->upload_file(local, "/tmp/dir with space/up'file", {0755, 60}, [&](const Status& st) {
    st2 = st;
    ++done;
  });
  REQUIRE(loop.run_until([&] { return done == 2; }, 60));
  INFO(st1.error);
  REQUIRE(st1.ok());
  // the directory does not exist: a clear failure with the remote error
  INFO(st2.error);
  REQUIRE_FALSE(st2.ok());
  REQUIRE(st2.error.find("upload of " + local) != std::string::npos);
  REQUIRE(st2.error.find("failed (exit status 1): sh: 1: cannot create") != std::string::npos);

  REQUIRE(run(loop, *s, "mkdir -p '/tmp/dir with space'").exit.ok());
  done = 0;
  s->upload_file(local, "/tmp/dir with space/up'file", {0755, 60}, [&](const Status& st) {
    st2 = st;
    ++done;
  });
  REQUIRE(loop.run_until([&] { return done == 1; }, 60));
  INFO(st2.error);
  REQUIRE(st2.ok());
  std::string local_sum = sh("sha256sum < '" + local + "'");
  RunResult remote = run(loop, *s,
                         "sha256sum < \"/tmp/dir with space/up'file\"; "
                         "stat -c %a \"/tmp/dir with space/up'file\" /tmp/up-bytes; "
                         "ls /tmp | grep -c skyhost-tmp");
  REQUIRE(remote.out == local_sum + "755\n600\n0\n");
  Fnv a, b;
  a.add(data);
  RunResult back = run(loop, *s, "cat /tmp/up-bytes");
  b.add(back.out);
  REQUIRE(a.h == b.h);
  // the file lives on h3's private /tmp, not on this machine's
  REQUIRE(sh("ls /tmp/up-bytes 2>/dev/null").empty());
  sh("rm -f '" + local + "'");

  Status missing;
  done = 0;
  s->upload_file("/nonexistent/file", "/tmp/x", {}, [&](const Status& st) {
    missing = st;
    ++done;
  });
  REQUIRE(loop.run_until([&] { return done == 1; }, 10));
  REQUIRE(missing.error.find("cannot upload /nonexistent/file") != std::string::npos);
}

TEST_CASE("channel: a channel the server refuses fails alone, the session goes on", "[channel]") {
  Loop loop;
  auto s = connected(loop, 1);
  // the test hosts allow 64 sessions per connection (MaxSessions): the 65th open is refused
  std::vector<Channel> held;
  int ended = 0, refused = 0;
  std::string why;
  for (int i = 0; i < 66; ++i) {
    held.push_back(s->exec("sleep 3"));
    held.back().on_exit([&](const ExitInfo& e) {
      ++ended;
      if (e.error.find("cannot open a session channel") != std::string::npos) {
        ++refused;
        why = e.error;
      }
    });
  }
  REQUIRE(loop.run_until([&] { return refused >= 2; }, 20));
  INFO(why);
  REQUIRE(why.find("h1 (10.203.0.11:22): cannot open a session channel") == 0);
  REQUIRE(s->is_ready());
  REQUIRE(loop.run_until([&] { return ended == 66; }, 20));
  REQUIRE(refused == 2);
  REQUIRE(run(loop, *s, "echo fine").out == "fine\n");
}
