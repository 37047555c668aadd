// Shared memory for large task data: a region is a memfd mapped into this process, which can
// hand its descriptor to another (a plugin host) so that both see the same bytes. Large task
// arguments are read into one straight from the frame, and a plugin writes a large result into
// one that the worker then sends from: the isolation of plugins costs no copy.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "host/links/wire.hpp"

namespace skyworker {

class Region {
 public:
  /// A new writable region of `size` bytes (zeroed). Throws std::runtime_error.
  static std::shared_ptr<Region> create(size_t size);
  /// Maps `size` bytes of the memfd `fd` read-only, taking ownership of fd. Throws.
  static std::shared_ptr<Region> open(int fd, size_t size);
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }
  std::string_view view() const { return {data_, size_}; }
  /// Grows or shrinks a writable region; data() may move.
  void resize(size_t size);

 private:
  Region(int fd, char* data, size_t size, bool writable)
      : fd_(fd), data_(data), size_(size), writable_(writable) {}
  int fd_;
  char* data_;
  size_t size_;
  bool writable_;
};

/// Bytes of a task's arguments: on the heap when small, in a Region when large (so that a
/// plugin host can map them) and shared memory can be had.
class Bytes {
 public:
  static constexpr size_t kShared = 1 << 20;  // from this size on, in shared memory

  void assign(const char* p, size_t n);
  /// Keeps `bytes` where they are, on the heap (a frame's buffer handed over).
  void adopt(skyhost::wire::Payload bytes) {
    big_.reset();
    small_ = std::move(bytes);
  }
  size_t size() const { return big_ ? big_->size() : small_.size(); }
  bool empty() const { return size() == 0; }
  const char* data() const { return big_ ? big_->data() : small_.data(); }
  operator std::string_view() const { return {data(), size()}; }
  /// The region holding the bytes, or null when they are on the heap.
  const std::shared_ptr<Region>& region() const { return big_; }

 private:
  skyhost::wire::Payload small_;
  std::shared_ptr<Region> big_;
};

}  // namespace skyworker
