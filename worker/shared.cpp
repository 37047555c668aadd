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

std::optional<TaskMsg> TaskQueue::pop() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return closed_ || !q_.empty(); });
  if (q_.empty()) return std::nullopt;
  TaskMsg t = std::move(q_.front());
  q_.pop_front();
  return t;
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
      if (buf_.size() == 0) {
        done_ = true;
        cv_.notify_all();
        return;
      }
      chunk.clear();
      std::swap(chunk, buf_.data());
    }
    const char* p = chunk.data();
    size_t left = chunk.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // the host is gone; the reader sees EOF and ends the worker
        std::lock_guard lock(mu_);
        done_ = true;
        cv_.notify_all();
        return;
      }
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

void Output::drain(int ms) {
  close();
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return done_; });
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
