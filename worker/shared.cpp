#include "worker/shared.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
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

void Output::end_frame(size_t mark, std::shared_ptr<const Region> tail) {
  size_t len = buf_.size() - mark - skyhost::wire::kHeader + tail->size();
  if (len > skyhost::wire::kMaxFrame) {
    buf_.data().resize(mark);
    throw skyhost::wire::Error("a result of " + std::to_string(len) +
                               " bytes exceeds the frame limit");
  }
  for (size_t i = 0; i < skyhost::wire::kHeader; ++i)
    buf_.data()[mark + i] = static_cast<char>((len >> (8 * i)) & 0xff);
  tails_.push_back({buf_.size(), std::move(tail)});
}

namespace {

bool write_all(int fd, const char* p, size_t left) {
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the host is gone; the reader sees EOF and ends the worker
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

void Output::run() {
  std::string chunk;
  auto stop = [&] {
    std::lock_guard lock(mu_);
    writing_ = false;
    stopped_ = true;
    idle_cv_.notify_all();
    cv_.notify_all();
  };
  std::vector<Tail> tails;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      writing_ = false;
      idle_cv_.notify_all();
      cv_.wait(lock, [&] { return closed_ || buf_.size() > 0; });
      if (buf_.size() == 0) {
        // Closed with nothing left to write; stop() would take mu_ a second time.
        stopped_ = true;
        idle_cv_.notify_all();
        cv_.notify_all();
        return;
      }
      chunk.clear();
      std::swap(chunk, buf_.data());
      tails.swap(tails_);
      writing_ = true;
    }
    size_t at = 0;
    for (const Tail& t : tails) {
      if (!write_all(fd_, chunk.data() + at, t.at - at)) return stop();
      if (!write_all(fd_, t.bytes->data(), t.bytes->size())) return stop();
      at = t.at;
    }
    tails.clear();
    if (!write_all(fd_, chunk.data() + at, chunk.size() - at)) return stop();
  }
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
