// How a request becomes an easy handle's options, and how its response is collected.
#include "host/http/http_transfer.hpp"

#include <strings.h>

#include <cstring>
#include <stdexcept>

namespace skyhost {

namespace {

/// RFC 9110 token characters: what a method or a header name may contain.
bool is_token(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 32 || c >= 127 || std::strchr("\"(),/:;<=>?@[\\]{}", c) != nullptr) return false;
  }
  return true;
}

bool has_line_break(const std::string& s) {
  return s.find_first_of(std::string("\r\n\0", 3)) != std::string::npos;
}

bool iequals(const std::string& a, const char* b) {
  return strcasecmp(a.c_str(), b) == 0;
}

std::string trim(const char* p, size_t n) {
  while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
  return std::string(p, n);
}

/// Throws unless `url` parses and its scheme is http or https.
void check_url(const std::string& url) {
  CURLU* u = curl_url();
  CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  char* scheme = nullptr;
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  std::string s = scheme != nullptr ? scheme : "";
  curl_free(scheme);
  curl_url_cleanup(u);
  if (rc != CURLUE_OK) {
    throw std::invalid_argument("bad URL '" + url + "': " + curl_url_strerror(rc));
  }
  if (s != "http" && s != "https") {
    throw std::invalid_argument("bad URL '" + url + "': scheme must be http or https");
  }
}

}  // namespace

void check_http_request(const HttpRequest& r) {
  if (!is_token(r.method)) throw std::invalid_argument("bad HTTP method '" + r.method + "'");
  check_url(r.url);
  for (const auto& [name, value] : r.headers) {
    if (!is_token(name)) throw std::invalid_argument("bad header name '" + name + "'");
    if (has_line_break(value)) {
      throw std::invalid_argument("header '" + name + "' has a line break or NUL in its value");
    }
  }
  if (r.timeout_ms == 0) throw std::invalid_argument("timeout must be positive");
  if (!r.aws_sigv4.empty() && (r.username.empty() || r.password.empty())) {
    throw std::invalid_argument("AWS SigV4 signing needs an access key id and a secret key");
  }
}

namespace {

const char* error_kind(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_CONNECT:
      return "connect";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return "resolve";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return "tls";
    case CURLE_SEND_ERROR:
      return "send";
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return "receive";
    case CURLE_TOO_MANY_REDIRECTS:
      return "redirect";
    default:
      return "other";
  }
}

size_t on_body(char* data, size_t size, size_t n, void* userp) {
  static_cast<HttpTransfer*>(userp)->resp.body.append(data, size * n);
  return size * n;
}

/// Header lines of every response arrive here, redirects and "100 Continue" included; a status
/// line starts the list again, so only the final response's headers remain.
size_t on_header(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<HttpTransfer*>(userp);
  size_t len = size * n;
  HttpHeaders& h = t->resp.headers;
  if (len >= 5 && std::memcmp(data, "HTTP/", 5) == 0) {
    h.clear();
  } else if (len > 0 && (data[0] == ' ' || data[0] == '\t') && !h.empty()) {
    h.back().second += " " + trim(data, len);  // obsolete line folding
  } else if (const void* colon = std::memchr(data, ':', len)) {
    size_t k = static_cast<const char*>(colon) - data;
    h.emplace_back(std::string(data, k), trim(data + k + 1, len - k - 1));
  }
  return len;
}

}  // namespace

void finish_http_transfer(HttpTransfer& t, CURLcode rc) {
  HttpResponse& r = t.resp;
  char* url = nullptr;
  curl_easy_getinfo(t.easy, CURLINFO_EFFECTIVE_URL, &url);
  r.effective_url = url != nullptr ? url : t.req.url;
  if (rc == CURLE_OK) {
    r.ok = true;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &r.status);
    return;
  }
  r.ok = false;
  // libcurl's error buffer says more than curl_easy_strerror when it has anything.
  r.error = t.req.method + " " + t.req.url + ": " +
            (t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(rc));
  r.error_kind = error_kind(rc);
}

void setup_http_transfer(HttpTransfer& t) {
  CURL* e = t.easy;
  const HttpRequest& q = t.req;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_URL, q.url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(q.timeout_ms));
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, q.follow_redirects ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "skyhost");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  if (!q.aws_sigv4.empty()) {
    // libcurl computes the signature itself (it reads X-Amz-Date from the headers when given).
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, q.aws_sigv4.c_str());
    curl_easy_setopt(e, CURLOPT_USERNAME, q.username.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, q.password.c_str());
  }

  bool has_body = !q.body.empty() || q.method == "POST" || q.method == "PUT" || q.method == "PATCH";
  if (q.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    // The body lives in t.req, which outlives the transfer: no copy.
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(q.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, q.body.data());
    if (q.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q.method.c_str());
  } else if (q.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q.method.c_str());
  }

  bool has_type = false, has_expect = false;
  for (const auto& [name, value] : q.headers) {
    has_type = has_type || iequals(name, "Content-Type");
    has_expect = has_expect || iequals(name, "Expect");
    // "Name;" is libcurl's spelling of a header with an empty value.
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    t.headers = curl_slist_append(t.headers, line.c_str());
  }
  // libcurl would claim a form body and wait for "100 Continue" on big ones: neither is ours.
  // (A signed request keeps it: libcurl's signer would sign the removal as a header too.)
  if (has_body && !has_type && q.aws_sigv4.empty()) {
    t.headers = curl_slist_append(t.headers, "Content-Type:");
  }
  // libcurl 7.88 would sign the "Expect:" that removes its header as a header of its own; it
  // sends "Expect: 100-continue" only for bodies above 1 MiB, which a signed API call never is.
  if (!has_expect && q.aws_sigv4.empty()) t.headers = curl_slist_append(t.headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
}

}  // namespace skyhost
