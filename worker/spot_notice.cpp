#include "worker/spot_notice.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "host/links/wire.hpp"

namespace skyworker {

namespace {

constexpr int kTimeoutMs = 2000;        // a link-local service answers in milliseconds
constexpr size_t kMaxAnswer = 16384;    // headers and body: a notice is a hundred bytes
constexpr size_t kMaxField = 64;        // action and time, as sent to the host
constexpr int kPollSeconds = 5;         // AWS's advice for the instance-action item
constexpr int kMaxBackoffSeconds = 60;  // no metadata service at all: ask now and then

struct Answer {
  int status = 0;  // 0: no answer (refused, timed out, malformed)
  std::string body;
};

/// Waits until `fd` is ready for `events`; false after kTimeoutMs or on an error.
bool wait_fd(int fd, short events) {
  pollfd p{fd, events, 0};
  int r;
  do r = poll(&p, 1, kTimeoutMs);
  while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & (events | POLLHUP)) != 0;
}

int connect_to(const sockaddr_in& a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (!wait_fd(fd, POLLOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/// The status line, Content-Length and body of an HTTP/1.1 answer; nothing else is needed.
Answer parse_answer(const std::string& raw) {
  Answer a;
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 9, "HTTP/1.1 ") != 0 && raw.compare(0, 9, "HTTP/1.0 ") != 0) return a;
  if (head_end == std::string::npos || raw.size() < 12) return a;
  int status = std::atoi(raw.substr(9, 3).c_str());
  std::string head = raw.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t body_at = head_end + 4;
  size_t cl = head.find("\r\ncontent-length:");
  size_t length = raw.size() - body_at;  // without one, the body ends with the connection
  if (cl != std::string::npos) {
    length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (length > raw.size() - body_at) return a;  // cut short
  }
  a.status = status;
  a.body = raw.substr(body_at, length);
  return a;
}

/// One request on a connection of its own (Connection: close), short timeouts, bounded answer.
Answer request(const sockaddr_in& addr, const std::string& host, const char* method,
               const char* path, const std::string& header) {
  int fd = connect_to(addr);
  if (fd < 0) return {};
  std::string req = std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nConnection: close\r\nContent-Length: 0\r\n" + header + "\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT)) continue;
    if (n <= 0) {
      close(fd);
      return {};
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  while (raw.size() < kMaxAnswer) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLIN)) continue;
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return parse_answer(raw);
}

/// The string value of `"key": "..."` in a flat JSON object, cut to kMaxField printable bytes.
std::string json_field(const std::string& body, const char* key) {
  size_t at = body.find(std::string("\"") + key + "\"");
  if (at == std::string::npos) return "";
  at = body.find(':', at);
  if (at == std::string::npos) return "";
  at = body.find('"', at);
  if (at == std::string::npos) return "";
  std::string v;
  for (size_t i = at + 1; i < body.size() && body[i] != '"' && v.size() < kMaxField; i++) {
    if (body[i] >= 0x20 && body[i] < 0x7f) v += body[i];
  }
  return v;
}

bool parse_addr(const std::string& text, sockaddr_in& out) {
  std::string host = text;
  int port = 80;
  if (size_t colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    port = std::atoi(text.c_str() + colon + 1);
  }
  out = {};
  out.sin_family = AF_INET;
  out.sin_port = htons(static_cast<uint16_t>(port));
  return port > 0 && port < 65536 && inet_pton(AF_INET, host.c_str(), &out.sin_addr) == 1;
}

void watch(Shared* shared, sockaddr_in addr, std::string host) {
  int wait = 0;  // seconds before the next question
  for (;;) {
    std::this_thread::sleep_for(std::chrono::seconds(wait));
    Answer token = request(addr, host, "PUT", "/latest/api/token",
                           "X-aws-ec2-metadata-token-ttl-seconds: 300\r\n");
    Answer item;
    if (token.status == 200 && !token.body.empty() && token.body.size() < 200) {
      item = request(addr, host, "GET", "/latest/meta-data/spot/instance-action",
                     "X-aws-ec2-metadata-token: " + token.body + "\r\n");
    }
    SpotNotice notice;
    if (item.status == 200 && parse_spot_notice(item.body, notice)) {
      std::fprintf(stderr, "skyworker: spot interruption notice: %s at %s\n", notice.action.c_str(),
                   notice.time.c_str());
      shared->out.frame(skyhost::wire::Msg::kNotice, [&](skyhost::wire::Writer& w) {
        w.put_string(notice.action);
        w.put_string(notice.time);
      });
      return;  // one notice per node: the host takes it from here
    }
    // 404 (no notice yet) keeps the pace; no service at all backs off, up to a minute
    wait = item.status != 0 ? kPollSeconds : std::min(kMaxBackoffSeconds, wait + kPollSeconds);
  }
}

}  // namespace

bool parse_spot_notice(const std::string& body, SpotNotice& out) {
  out.action = json_field(body, "action");
  out.time = json_field(body, "time");
  return !out.action.empty();
}

void start_spot_watch(Shared& shared, const std::string& addr) {
  sockaddr_in a;
  if (!parse_addr(addr, a)) {
    std::fprintf(stderr, "skyworker: --spot-notice %s is not an IPv4 address[:port]\n",
                 addr.c_str());
    return;
  }
  std::thread(watch, &shared, a, addr).detach();
}

}  // namespace skyworker
