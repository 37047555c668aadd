#include "worker/shared.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace skyworker {

void TaskQueue::push(TaskMsg t) {
  {
    std::lock_guard lock(mu_);
    q_.push_back(std::move(t));
  }
  cv_.notify_one();
}

std::optional<TaskMsg> TaskQueue::pop(const std::function<void(const TaskMsg&)>& taken) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return closed_ || !q_.empty(); });
  if (q_.empty()) return std::nullopt;
  TaskMsg t = std::move(q_.front());
  q_.pop_front();
  if (taken) taken(t);
  return t;
}

bool TaskQueue::remove(uint64_t id, const std::function<void()>& absent) {
  std::lock_guard lock(mu_);
  for (auto it = q_.begin(); it != q_.end(); ++it) {
    if (it->id == id) {
      q_.erase(it);
      return true;
    }
  }
  absent();
  return false;
}

void TaskQueue::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void Closures::define(uint64_t id, std::string bytes) {
  std::lock_guard lock(mu_);
  map_[id] = std::make_shared<const std::string>(std::move(bytes));
}

std::shared_ptr<const std::string> Closures::get(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = map_.find(id);
  return it == map_.end() ? nullptr : it->second;
}

namespace {

// Writes `iov` whole, resuming after partial writes. False when the host is gone.
bool write_all(int fd, std::vector<iovec>& iov) {
  size_t i = 0;
  while (i < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t n = ::writev(fd, iov.data() + i, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the host is gone; the reader sees EOF and ends the worker
    auto left = static_cast<size_t>(n);
    while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (left > 0) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return true;
}

}  // namespace

void Output::run() {
  skyhost::wire::Writer chunk;
  std::vector<std::shared_ptr<const void>> keep;
  std::vector<iovec> iov;
  uint64_t batch = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      written_ = batch;
      writing_ = false;
      keep.clear();  // under the lock: whoever waits for these frames may free their memory
      idle_cv_.notify_all();
      cv_.wait(lock, [&] { return closed_ || buf_.size() > 0; });
      if (buf_.size() == 0) {
        stopped_ = true;
        idle_cv_.notify_all();
        cv_.notify_all();
        return;
      }
      chunk.clear();
      std::swap(chunk, buf_);
      keep.swap(keep_);
      batch = batch_++;
      writing_ = true;
    }
    iov.clear();
    chunk.segments([&](const char* p, size_t n) { iov.push_back({const_cast<char*>(p), n}); });
    if (!write_all(fd_, iov)) {
      std::lock_guard lock(mu_);
      writing_ = false;
      stopped_ = true;
      idle_cv_.notify_all();
      cv_.notify_all();
      return;
    }
  }
}

void Output::wait_written(uint64_t batch) {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return stopped_ || written_ >= batch; });
}

bool Output::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout,
                           [&] { return stopped_ || (!writing_ && buf_.size() == 0); });
}

void Output::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void Output::drain(int ms) {
  close();
  std::unique_lock lock(mu_);
  idle_cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopped_; });
}

void fatal(Shared& shared, const std::string& why, int status) {
  std::fprintf(stderr, "skyworker: %s\n", why.c_str());
  try {
    shared.out.frame(skyhost::wire::Msg::kFatal,
                     [&](skyhost::wire::Writer& w) { w.put_string(why.substr(0, 4096)); });
  } catch (...) {  // no memory even for that: stderr has it
  }
  shared.out.drain(2000);
  std::_Exit(status);
}

}  // namespace skyworker
