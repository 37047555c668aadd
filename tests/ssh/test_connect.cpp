// Connecting: addresses, retries, host key checking, authentication errors.
#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "host/ssh/keygen.hpp"
#include "host/ssh/session.hpp"
#include "tests/ssh/testbed.hpp"

using namespace skyhost::ssh;
using namespace skyhost::ssh::test;

namespace {

struct Outcome {
  bool done = false;
  Status status;
};

// connect() and wait for its result
Outcome connect_once(Loop& loop, Session& s, double timeout = 30) {
  Outcome out;
  s.connect([&out](const Status& st) {
    out.status = st;
    out.done = true;
  });
  REQUIRE(loop.run_until([&] { return out.done; }, timeout));
  return out;
}

RunResult run_once(Loop& loop, Session& s, const std::string& cmd, double timeout = 30) {
  RunResult res;
  bool done = false;
  s.run(cmd, {}, [&](RunResult r) {
    res = std::move(r);
    done = true;
  });
  REQUIRE(loop.run_until([&] { return done; }, timeout));
  return res;
}

// the bed's entry for host i, as "type base64"
std::string real_host_key(int i) {
  std::string kh = read_file(known_hosts());
  std::string ip = host_ip(i);
  size_t at = kh.find("," + ip + ",");
  REQUIRE(at != std::string::npos);
  size_t start = kh.find(' ', at) + 1;
  size_t end = kh.find('\n', start);
  return kh.substr(start, end - start);
}

}  // namespace

TEST_CASE("connect: exec hostname on one host", "[connect]") {
  Loop loop;
  Session s(loop.get(), options_for(1));
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE(c.status.ok());
  REQUIRE(s.is_ready());
  REQUIRE(s.host_key().rfind("ssh-ed25519 ", 0) == 0);
  REQUIRE(s.host_key_fingerprint().rfind("SHA256:", 0) == 0);
  RunResult r = run_once(loop, s, "hostname");
  INFO(r.exit.error);
  REQUIRE(r.exit.ok());
  REQUIRE(r.out == "h1\n");
  REQUIRE(r.err.empty());
  REQUIRE(s.stats().connect_attempts == 1);
}

TEST_CASE("connect: three hosts concurrently on one loop", "[connect]") {
  Loop loop;
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<RunResult> results(3);
  int finished = 0;
  for (int i = 1; i <= 3; ++i) {
    sessions.push_back(std::make_unique<Session>(loop.get(), options_for(i)));
    sessions.back()->connect([](const Status&) {});
    // exec before connect has finished: the channel opens once the session is ready
    sessions.back()->run("hostname", {}, [&results, &finished, i](RunResult r) {
      results[i - 1] = std::move(r);
      ++finished;
    });
  }
  REQUIRE(loop.run_until([&] { return finished == 3; }, 30));
  for (int i = 1; i <= 3; ++i) {
    INFO(results[i - 1].exit.error);
    REQUIRE(results[i - 1].exit.ok());
    REQUIRE(results[i - 1].out == "h" + std::to_string(i) + "\n");
  }
}

TEST_CASE("connect: IPv6 literal", "[connect]") {
  std::string ip6 = host_ip6(2);
  if (ip6.empty()) {
    WARN("SKIPPED: the test hosts have no IPv6 address");
    return;
  }
  Loop loop;
  SessionOptions o = options_for(2);
  o.host = "[" + ip6 + "]";
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE(c.status.ok());
  REQUIRE(run_once(loop, s, "hostname").out == "h2\n");
}

TEST_CASE("connect: a host name goes through uv_getaddrinfo", "[connect]") {
  // "10.203.11" is not an inet_pton literal, so the session resolves it with getaddrinfo,
  // which maps it (inet_aton's a.b.c form) to 10.203.0.11 without any DNS query.
  std::string ip = host_ip(1);
  REQUIRE(ip == "10.203.0.11");
  Loop loop;
  SessionOptions o = options_for(1);
  o.host = "10.203.11";
  o.pinned_host_keys = {real_host_key(1)};  // known_hosts has no entry under that name
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE(c.status.ok());
  REQUIRE(s.describe() == "h1 (10.203.0.11:22)");
  REQUIRE(run_once(loop, s, "hostname").out == "h1\n");
}

TEST_CASE("connect: nothing listening -> retries with backoff, fails after the deadline",
          "[connect]") {
  Loop loop;
  SessionOptions o = options_for(1);
  o.port = 2222;  // h1 is up, but nothing listens there: every attempt is refused
  o.connect_timeout = 1.5;
  o.retry_initial = 0.05;
  o.retry_max = 0.4;
  Session s(loop.get(), o);
  double t0 = loop.now();
  Outcome c = connect_once(loop, s, 10);
  double took = loop.now() - t0;
  INFO(c.status.error);
  REQUIRE_FALSE(c.status.ok());
  REQUIRE(c.status.error.find("h1 (10.203.0.11:2222): cannot connect within 1.5 s") == 0);
  REQUIRE(c.status.error.find("Connection refused") != std::string::npos);
  REQUIRE(s.stats().connect_attempts >= 4);  // 0, .05, .15, .35, .75, 1.15 ...
  REQUIRE(took >= 1.0);
  REQUIRE(took < 3.0);
}

TEST_CASE("connect: an address where no machine answers times out per attempt", "[connect]") {
  Loop loop;
  SessionOptions o = options_for(1);
  o.host = "10.203.0.250";  // in the test subnet, behind our bridge, but no such host
  REQUIRE(bed("assert-local " + o.host) == 0);
  o.connect_timeout = 1.2;
  o.attempt_timeout = 0.5;
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s, 10);
  INFO(c.status.error);
  REQUIRE_FALSE(c.status.ok());
  REQUIRE(c.status.error.find("cannot connect within 1.2 s") != std::string::npos);
  REQUIRE(c.status.timed_out);
}

TEST_CASE("host keys: strict refuses an unknown host", "[hostkey]") {
  Loop loop;
  SessionOptions o = options_for(1);
  o.known_hosts_file = temp_path("kh-empty");
  write_file(o.known_hosts_file, "# nothing here\n");
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE_FALSE(c.status.ok());
  REQUIRE(c.status.error.find("host key verification failed") != std::string::npos);
  REQUIRE(c.status.error.find("10.203.0.11 is not in " + o.known_hosts_file) != std::string::npos);
  REQUIRE(s.stats().connect_attempts == 1);  // not retried
  sh("rm -f '" + o.known_hosts_file + "'");
}

TEST_CASE("host keys: accept-new records the host, then strict accepts it", "[hostkey]") {
  Loop loop;
  SessionOptions o = options_for(2);
  o.known_hosts_file = temp_path("kh-new");  // does not exist yet
  o.host_key_check = HostKeyCheck::accept_new;
  {
    Session s(loop.get(), o);
    Outcome c = connect_once(loop, s);
    INFO(c.status.error);
    REQUIRE(c.status.ok());
  }
  std::string recorded = read_file(o.known_hosts_file);
  REQUIRE(recorded == "10.203.0.12 " + real_host_key(2) + "\n");
  o.host_key_check = HostKeyCheck::strict;
  Session again(loop.get(), o);
  Outcome c2 = connect_once(loop, again);
  INFO(c2.status.error);
  REQUIRE(c2.status.ok());
  REQUIRE(read_file(o.known_hosts_file) == recorded);  // nothing appended twice
  sh("rm -f '" + o.known_hosts_file + "'");
}

TEST_CASE("host keys: a changed key is refused with the line and the fix", "[hostkey]") {
  Loop loop;
  KeyPair impostor = generate_ed25519("");
  SessionOptions o = options_for(1);
  o.known_hosts_file = temp_path("kh-changed");
  write_file(o.known_hosts_file, "# test file\n10.203.0.11 " + impostor.public_key + "\n");
  for (auto mode : {HostKeyCheck::strict, HostKeyCheck::accept_new}) {
    o.host_key_check = mode;
    Session s(loop.get(), o);
    Outcome c = connect_once(loop, s);
    INFO(c.status.error);
    REQUIRE_FALSE(c.status.ok());
    REQUIRE(c.status.error.find("REMOTE HOST KEY CHANGED for 10.203.0.11") != std::string::npos);
    REQUIRE(c.status.error.find(o.known_hosts_file + ":2 records a different key") !=
            std::string::npos);
    REQUIRE(c.status.error.find("ssh-keygen -R '10.203.0.11' -f " + o.known_hosts_file) !=
            std::string::npos);
  }
  sh("rm -f '" + o.known_hosts_file + "'");
}

TEST_CASE("host keys: hashed known_hosts entries (ssh-keygen -H)", "[hostkey]") {
  Loop loop;
  SessionOptions o = options_for(3);
  o.known_hosts_file = temp_path("kh-hashed");
  KeyPair impostor = generate_ed25519("");
  write_file(o.known_hosts_file,
             "10.203.0.11 " + impostor.public_key + "\n10.203.0.13 " + real_host_key(3) + "\n");
  sh("ssh-keygen -q -H -f '" + o.known_hosts_file + "' 2>&1; rm -f '" + o.known_hosts_file +
     ".old'");
  REQUIRE(read_file(o.known_hosts_file).rfind("|1|", 0) == 0);
  {
    Session s(loop.get(), o);
    Outcome c = connect_once(loop, s);
    INFO(c.status.error);
    REQUIRE(c.status.ok());
  }
  o.host = host_ip(1);
  Session changed(loop.get(), o);
  Outcome c = connect_once(loop, changed);
  INFO(c.status.error);
  REQUIRE(c.status.error.find(o.known_hosts_file + ":1 records a different key") !=
          std::string::npos);
  sh("rm -f '" + o.known_hosts_file + "'");
}

TEST_CASE("host keys: pinned keys from a provider", "[hostkey]") {
  Loop loop;
  SessionOptions o = options_for(2);
  o.known_hosts_file.clear();
  KeyPair other = generate_ed25519("");
  o.pinned_host_keys = {other.public_key, real_host_key(2) + " h2"};
  {
    Session s(loop.get(), o);
    Outcome c = connect_once(loop, s);
    INFO(c.status.error);
    REQUIRE(c.status.ok());
  }
  o.pinned_host_keys = {other.public_key};
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE_FALSE(c.status.ok());
  REQUIRE(c.status.error.find("is not one of the 1 key(s) reported for this machine") !=
          std::string::npos);
}

TEST_CASE("auth: a key the server does not know is refused with a clear message", "[auth]") {
  Loop loop;
  KeyPair stranger = generate_ed25519("stranger");
  SessionOptions o = options_for(1);
  o.private_key = stranger.private_key;
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE_FALSE(c.status.ok());
  REQUIRE(c.status.error.find("h1 (10.203.0.11:22): authentication as root failed") == 0);
  REQUIRE(c.status.error.find(stranger.fingerprint) != std::string::npos);
  REQUIRE(s.stats().connect_attempts == 1);
}

TEST_CASE("auth: identity file", "[auth]") {
  Loop loop;
  SessionOptions o = options_for(3);
  o.private_key.clear();
  o.identity_file = state_dir() + "/id_ed25519";
  Session s(loop.get(), o);
  Outcome c = connect_once(loop, s);
  INFO(c.status.error);
  REQUIRE(c.status.ok());
  REQUIRE(run_once(loop, s, "hostname").out == "h3\n");
}

TEST_CASE("connect: called twice reports an error for the second call", "[connect]") {
  Loop loop;
  Session s(loop.get(), options_for(1));
  int calls = 0;
  std::string second;
  s.connect([&](const Status&) { ++calls; });
  s.connect([&](const Status& st) {
    ++calls;
    second = st.error;
  });
  REQUIRE(loop.run_until([&] { return calls == 2; }, 20));
  REQUIRE(second.find("connect() called twice") != std::string::npos);
}
