#include "worker/shared.hpp"

#include <unistd.h>

#include <cerrno>

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

void Output::run() {
  std::string chunk;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return closed_ || buf_.size() > 0; });
      if (buf_.size() == 0) return;
      chunk.clear();
      std::swap(chunk, buf_.data());
    }
    const char* p = chunk.data();
    size_t left = chunk.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the host is gone; the reader sees EOF and ends the worker
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
}

void Output::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace skyworker
