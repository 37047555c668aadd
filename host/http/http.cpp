#include "host/http/http.hpp"

#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "host/core/completions.hpp"
#include "host/http/http_transfer.hpp"

namespace skyhost {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("cannot initialise libcurl");
    }
  });
}

}  // namespace

/// A socket libcurl asked us to watch. Heap-allocated; freed by the poll handle's close callback,
/// which may run after the client is gone, so it never touches `impl` there.
struct HttpPollSocket {
  uv_poll_t poll{};
  curl_socket_t fd = CURL_SOCKET_BAD;
  HttpClient::Impl* impl = nullptr;
};

struct HttpClient::Impl {
  Loop& loop;
  CURLM* multi = nullptr;
  uv_timer_t* timer = nullptr;  // heap: freed by its close callback
  std::unordered_map<WaitId, std::unique_ptr<HttpTransfer>> active;
  Completions<HttpResponse> done;
  std::unordered_set<HttpPollSocket*> sockets;

  explicit Impl(Loop& l) : loop(l), done(l) {}

  static int on_socket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    auto* s = static_cast<HttpPollSocket*>(socketp);
    if (what == CURL_POLL_REMOVE) {
      if (s != nullptr) {
        self->close_socket(s);
        curl_multi_assign(self->multi, fd, nullptr);
      }
      return 0;
    }
    if (s == nullptr) {
      s = new HttpPollSocket;
      s->fd = fd;
      s->impl = self;
      if (uv_poll_init_socket(self->loop.uv(), &s->poll, fd) != 0) {
        delete s;
        return -1;  // libcurl fails the transfer using this socket
      }
      s->poll.data = s;
      self->sockets.insert(s);
      curl_multi_assign(self->multi, fd, s);
    }
    int events = 0;
    if ((what & CURL_POLL_IN) != 0) events |= UV_READABLE;
    if ((what & CURL_POLL_OUT) != 0) events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, &Impl::on_poll);
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    if (timeout_ms < 0) {
      uv_timer_stop(self->timer);
    } else {
      // Even a 0 ms timeout goes through the loop: libcurl must not be re-entered from here.
      uv_timer_start(self->timer, &Impl::on_timeout, static_cast<uint64_t>(timeout_ms), 0);
    }
    return 0;
  }

  static void on_poll(uv_poll_t* h, int status, int events) {
    auto* s = static_cast<HttpPollSocket*>(h->data);
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
    if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
    s->impl->action(s->fd, flags);
  }

  static void on_timeout(uv_timer_t* t) {
    static_cast<Impl*>(t->data)->action(CURL_SOCKET_TIMEOUT, 0);
  }

  void action(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi, fd, flags, &running);
    collect();
  }

  void close_socket(HttpPollSocket* s) {
    sockets.erase(s);
    uv_poll_stop(&s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll),
             [](uv_handle_t* h) { delete static_cast<HttpPollSocket*>(h->data); });
  }

  /// Moves every finished transfer's response to `done` and completes its wait.
  void collect() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* easy = m->easy_handle;
      CURLcode rc = m->data.result;  // `m` is invalid once the handle is removed
      HttpTransfer* t = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
      finish_http_transfer(*t, rc);
      curl_multi_remove_handle(multi, easy);
      WaitId id = t->id;
      HttpResponse resp = std::move(t->resp);
      active.erase(id);  // cleans up the easy handle
      done.finish(id, std::move(resp));
    }
  }
};

HttpClient::HttpClient(Loop& loop) : impl_(std::make_unique<Impl>(loop)) {
  global_init();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) throw std::runtime_error("cannot create a libcurl multi handle");
  impl_->timer = new uv_timer_t;
  uv_timer_init(loop.uv(), impl_->timer);
  impl_->timer->data = impl_.get();
  CURLM* m = impl_->multi;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, impl_.get());
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, impl_.get());
}

HttpClient::~HttpClient() {
  Impl& d = *impl_;
  for (auto& [id, t] : d.active) curl_multi_remove_handle(d.multi, t->easy);
  d.active.clear();
  curl_multi_cleanup(d.multi);  // may still report sockets removed: on_socket closes them
  for (HttpPollSocket* s : std::unordered_set<HttpPollSocket*>(d.sockets)) d.close_socket(s);
  uv_close(reinterpret_cast<uv_handle_t*>(d.timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

WaitId HttpClient::request(HttpRequest req) {
  check_http_request(req);
  auto t = std::make_unique<HttpTransfer>();
  t->easy = curl_easy_init();
  if (t->easy == nullptr) throw std::runtime_error("cannot create a libcurl easy handle");
  t->req = std::move(req);
  setup_http_transfer(*t);
  t->id = impl_->done.begin();
  WaitId id = t->id;
  CURLMcode rc = curl_multi_add_handle(impl_->multi, t->easy);
  if (rc != CURLM_OK) {
    throw std::runtime_error(std::string("cannot start the transfer: ") + curl_multi_strerror(rc));
  }
  impl_->active.emplace(id, std::move(t));
  return id;
}

std::optional<HttpResponse> HttpClient::take(WaitId id) {
  std::optional<HttpResponse> r = impl_->done.take(id);
  if (!r && impl_->active.count(id) == 0) {
    throw std::out_of_range("no HTTP request with id " + std::to_string(id));
  }
  return r;
}

bool HttpClient::cancel(WaitId id) {
  if (impl_->done.discard(id)) return true;
  auto it = impl_->active.find(id);
  if (it == impl_->active.end()) return false;
  curl_multi_remove_handle(impl_->multi, it->second->easy);
  impl_->active.erase(it);
  return true;
}

size_t HttpClient::in_flight() const {
  return impl_->active.size();
}

size_t HttpClient::unclaimed() const {
  return impl_->done.unclaimed();
}

}  // namespace skyhost
