// HTTP client on the host's one loop: a libcurl multi handle whose sockets are watched by
// uv_poll_t handles and whose timeouts run on a uv_timer_t. No threads, nothing blocks.
//
// request() starts a transfer and returns a wait id; the loop completes the id when the transfer
// ends (libcurl callbacks only record bytes and complete ids), and take() hands out the response.
// Pure C++: the Lua face is bindings/http.cpp and stdlib/sky/http.lua.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/core/loop.hpp"

namespace skyhost {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  HttpHeaders headers;           // sent in this order
  std::string body;              // sent when non-empty, or always for POST/PUT/PATCH
  uint64_t timeout_ms = 30000;   // whole transfer, connect included; must be > 0
  bool follow_redirects = true;  // at most 10
  /// Non-empty: libcurl signs the request with AWS Signature Version 4 (CURLOPT_AWS_SIGV4),
  /// "provider1[:provider2[:region[:service]]]", e.g. "aws:amz:us-east-1:ec2", with
  /// `username` as the access key id and `password` as the secret key. A session token goes in
  /// an X-Amz-Security-Token header, which is signed with the others.
  std::string aws_sigv4;
  std::string username;
  std::string password;
};

struct HttpResponse {
  /// False when the transfer itself failed (refused, timed out, reset...); `error` says why.
  bool ok = false;
  long status = 0;
  HttpHeaders headers;  // of the final response, as received (names as the server spelled them)
  std::string body;
  std::string effective_url;
  /// "<METHOD> <url>: <curl's reason>: <detail>" when !ok.
  std::string error;
  /// Short class of the failure: "timeout", "connect", "resolve", "tls", "send", "receive",
  /// "other"; empty when ok.
  std::string error_kind;
};

class HttpClient {
 public:
  explicit HttpClient(Loop& loop);
  /// Aborts every transfer still in flight; their waits never complete. Poll and timer handles
  /// are closed here and freed by their close callbacks, so `loop` must still run afterwards
  /// (Loop's destructor does).
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Starts a transfer. Throws std::invalid_argument for a malformed request (bad method, URL,
  /// header, or a scheme other than http/https); transport failures come back in the response.
  WaitId request(HttpRequest req);

  /// The response of a completed transfer, moved out (the id is then forgotten); nullopt while
  /// it is still in flight. Throws std::out_of_range for an unknown id.
  std::optional<HttpResponse> take(WaitId id);

  /// Aborts a transfer in flight, or drops an unclaimed response. Its wait never completes.
  /// Returns whether `id` was known.
  bool cancel(WaitId id);

  /// Transfers started and not finished yet.
  size_t in_flight() const;
  /// Responses finished and not taken yet.
  size_t unclaimed() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace skyhost
