// host/http against a real local server: tests/support/http_echo.py on 127.0.0.1, started here
// with a port-file handshake and killed by PID at the end of each test.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "host/core/loop.hpp"
#include "host/http/http.hpp"

using namespace skyhost;
namespace fs = std::filesystem;

namespace {

class EchoServer {
 public:
  EchoServer() {
    char tmpl[] = "/tmp/skyhost-http-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    std::string script =
        (fs::path(__FILE__).parent_path().parent_path() / "support" / "http_echo.py").string();
    std::string port_file = dir_ + "/port";
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int devnull = open("/dev/null", O_WRONLY);  // it also prints the port: keep that quiet
      dup2(devnull, 1);
      execl("/usr/bin/python3", "python3", script.c_str(), "--port-file", port_file.c_str(),
            "--lifetime", "120", static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!fs::exists(port_file)) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      REQUIRE(waitpid(pid_, nullptr, WNOHANG) == 0);  // still running
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ifstream(port_file) >> port_;
    REQUIRE(port_ > 0);
  }
  ~EchoServer() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    fs::remove_all(dir_);
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

/// Runs the loop until every id completed; fails after `limit_ms`.
void wait_all(Loop& loop, const std::vector<WaitId>& ids, uint64_t limit_ms = 20000) {
  std::set<WaitId> pending(ids.begin(), ids.end());
  // A watchdog of our own rather than loop.sleep, so that no handle outlives the wait.
  auto* watchdog = new uv_timer_t;
  bool expired = false;
  uv_timer_init(loop.uv(), watchdog);
  watchdog->data = &expired;
  uv_timer_start(
      watchdog, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, limit_ms, 0);
  std::vector<WaitId> done;
  while (!pending.empty() && !expired) {
    done.clear();
    loop.poll(true, done);
    for (WaitId id : done) pending.erase(id);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(watchdog),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  REQUIRE_FALSE(expired);
}

HttpResponse fetch(Loop& loop, HttpClient& c, HttpRequest req) {
  WaitId id = c.request(std::move(req));
  wait_all(loop, {id});
  auto r = c.take(id);
  REQUIRE(r.has_value());
  return std::move(*r);
}

HttpRequest get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  return r;
}

nlohmann::json echoed(const HttpResponse& r) {
  REQUIRE(r.ok);
  REQUIRE(r.status == 200);
  return nlohmann::json::parse(r.body);
}

std::string header(const nlohmann::json& doc, const std::string& name) {
  for (const auto& pair : doc["headers"]) {
    if (pair[0] == name) return pair[1];
  }
  return "(none)";
}

}  // namespace

TEST_CASE("http: GET and POST reach the server with their headers and body", "[http]") {
  EchoServer server;
  Loop loop;
  HttpClient c(loop);

  HttpRequest g = get(server.url("/echo?a=1"));
  g.headers = {{"X-First", "1"}, {"X-Empty", ""}, {"X-Second", "two"}};
  auto doc = echoed(fetch(loop, c, g));
  CHECK(doc["method"] == "GET");
  CHECK(doc["query"] == "a=1");
  CHECK(header(doc, "X-First") == "1");
  CHECK(header(doc, "X-Empty") == "");
  CHECK(header(doc, "X-Second") == "two");

  HttpRequest p = get(server.url("/echo"));
  p.method = "POST";
  p.body = std::string("bin\0ary", 7);
  doc = echoed(fetch(loop, c, p));
  CHECK(doc["method"] == "POST");
  CHECK(doc["body_len"] == 7);
  CHECK(header(doc, "Content-Type") == "(none)");  // libcurl's form default is suppressed

  p.method = "PUT";
  CHECK(echoed(fetch(loop, c, p))["method"] == "PUT");
  HttpRequest d = get(server.url("/echo"));
  d.method = "DELETE";
  CHECK(echoed(fetch(loop, c, d))["method"] == "DELETE");
  HttpRequest h = get(server.url("/echo"));
  h.method = "HEAD";
  auto head = fetch(loop, c, h);
  CHECK(head.status == 200);
  CHECK(head.body.empty());
}

TEST_CASE("http: status codes are responses; headers keep their order and repeats", "[http]") {
  EchoServer server;
  Loop loop;
  HttpClient c(loop);
  auto r = fetch(loop, c, get(server.url("/status/404")));
  CHECK(r.ok);
  CHECK(r.status == 404);
  CHECK(r.body == R"({"status": 404})");

  r = fetch(loop, c, get(server.url("/headers")));
  std::vector<std::string> names;
  for (const auto& [name, value] : r.headers) names.push_back(name + "=" + value);
  auto at = std::find(names.begin(), names.end(), "Set-Cookie=a=1");
  REQUIRE(at != names.end());
  CHECK(std::vector<std::string>(at, at + 5) ==
        std::vector<std::string>{"Set-Cookie=a=1", "X-Multi=one", "Set-Cookie=b=2", "X-Multi=two",
                                 "X-Mixed-Case=Value"});

  r = fetch(loop, c, get(server.url("/redirect?to=/echo")));
  CHECK(r.status == 200);
  CHECK(r.effective_url == server.url("/echo"));
  // Only the final response's headers are kept.
  CHECK(std::none_of(r.headers.begin(), r.headers.end(),
                     [](const auto& h) { return h.first == "Location"; }));
  HttpRequest nofollow = get(server.url("/redirect?to=/echo"));
  nofollow.follow_redirects = false;
  CHECK(fetch(loop, c, nofollow).status == 302);
}

TEST_CASE("http: transport failures name the URL and the reason", "[http]") {
  EchoServer server;
  Loop loop;
  HttpClient c(loop);

  HttpRequest slow = get(server.url("/delay?ms=3000"));
  slow.timeout_ms = 200;
  auto start = std::chrono::steady_clock::now();
  auto r = fetch(loop, c, slow);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
  CHECK_FALSE(r.ok);
  CHECK(r.error_kind == "timeout");
  CHECK_THAT(r.error, Catch::Contains("GET " + server.url("/delay?ms=3000")) &&
                          Catch::Contains("timed out"));

  r = fetch(loop, c, get("http://127.0.0.1:1/nothing"));
  CHECK_FALSE(r.ok);
  CHECK(r.error_kind == "connect");
  CHECK_THAT(r.error, Catch::StartsWith("GET http://127.0.0.1:1/nothing: "));

  r = fetch(loop, c, get(server.url("/close")));
  CHECK_FALSE(r.ok);
  CHECK(r.error_kind == "receive");
}

TEST_CASE("http: malformed requests are refused up front", "[http]") {
  Loop loop;
  HttpClient c(loop);
  auto refuse = [&](HttpRequest r) {
    CHECK_THROWS_AS(c.request(std::move(r)), std::invalid_argument);
  };
  refuse(get("ftp://127.0.0.1/"));
  refuse(get("not a url"));
  refuse(get(""));
  HttpRequest r = get("http://127.0.0.1:1/");
  r.method = "G T";
  refuse(r);
  r = get("http://127.0.0.1:1/");
  r.headers = {{"X-A", "a\r\nX-B: b"}};
  refuse(r);
  r.headers = {{"Bad Name", "x"}};
  refuse(r);
  r.headers = {};
  r.timeout_ms = 0;
  refuse(r);
  CHECK(c.in_flight() == 0);
  CHECK_THROWS_AS(c.take(12345), std::out_of_range);
}

TEST_CASE("http: 10 MiB down and up", "[http]") {
  EchoServer server;
  Loop loop;
  HttpClient c(loop);
  const size_t n = 10 * 1024 * 1024;
  auto big = fetch(loop, c, get(server.url("/big?bytes=" + std::to_string(n))));
  REQUIRE(big.body.size() == n);
  for (size_t i : {size_t{0}, size_t{250}, size_t{251}, n / 2, n - 1}) {
    CHECK(static_cast<unsigned char>(big.body[i]) == i % 251);
  }
  auto chunked = fetch(loop, c, get(server.url("/big?chunked=1&bytes=" + std::to_string(n))));
  CHECK(chunked.body == big.body);
  HttpRequest up = get(server.url("/raw"));
  up.method = "POST";
  up.body = big.body;
  auto back = fetch(loop, c, up);
  CHECK(back.body.size() == n);
  CHECK(back.body == big.body);
}

TEST_CASE("http: transfers overlap on one loop", "[http]") {
  EchoServer server;
  Loop loop;
  HttpClient c(loop);
  auto start = std::chrono::steady_clock::now();
  std::vector<WaitId> ids;
  for (int i = 0; i < 4; i++) ids.push_back(c.request(get(server.url("/delay?ms=300"))));
  CHECK(c.in_flight() == 4);
  wait_all(loop, ids);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::milliseconds(900));
  for (WaitId id : ids) CHECK(c.take(id)->status == 200);
  CHECK(c.in_flight() == 0);
  CHECK(c.unclaimed() == 0);
}

TEST_CASE("http: cancel and teardown with transfers in flight leave no handle", "[http]") {
  EchoServer server;
  Loop loop;
  int before = loop.live_handles();
  {
    HttpClient c(loop);
    WaitId a = c.request(get(server.url("/delay?ms=2000")));
    WaitId b = c.request(get(server.url("/delay?ms=2000")));
    WaitId quick = c.request(get(server.url("/echo")));
    wait_all(loop, {quick});
    CHECK_FALSE(c.take(a).has_value());  // still in flight
    CHECK(c.cancel(a));
    CHECK_FALSE(c.cancel(a));
    CHECK(c.in_flight() == 1);
    (void)b;  // left in flight: the destructor aborts it
  }
  std::vector<WaitId> done;
  loop.poll(false, done);  // runs the close callbacks
  CHECK(done.empty());
  CHECK(loop.live_handles() == before);
}
