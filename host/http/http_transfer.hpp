// Private to host/http*.cpp: one transfer — the easy handle, the request it was made from and the
// response as it arrives — and how a request becomes libcurl options.
#pragma once

#include <curl/curl.h>

#include "host/http/http.hpp"

namespace skyhost {

/// One transfer in flight: its easy handle and what has arrived so far.
struct HttpTransfer {
  WaitId id = 0;
  CURL* easy = nullptr;
  HttpRequest req;
  HttpResponse resp;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {0};

  HttpTransfer() = default;
  HttpTransfer(const HttpTransfer&) = delete;
  HttpTransfer& operator=(const HttpTransfer&) = delete;
  ~HttpTransfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

/// Throws std::invalid_argument unless the request can be sent (see HttpClient::request).
void check_http_request(const HttpRequest& r);
/// Sets t.easy's options from t.req; the response is collected into t.resp.
void setup_http_transfer(HttpTransfer& t);
/// Fills t.resp's status or error once libcurl reported the transfer done with `rc`.
void finish_http_transfer(HttpTransfer& t, CURLcode rc);

}  // namespace skyhost
