// The codec's plain values without Lua, for plugins: argument bytes read as sky_value views
// (strings point into the bytes, nothing is copied) and results written as codec bytes through
// the sky_api callbacks. The byte layout is bindings/codec.cpp's; tests/unit/test_plugin_values
// checks both directions against it.
#pragma once

#include <skyhost/plugin.h>

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include "worker/shm.hpp"

namespace skyworker {

/// Views of a codec value list. Valid while the parser and the bytes live.
class ArgViews {
 public:
  /// Parses `bytes`; throws skyhost::wire::Error for malformed input or a value a plugin cannot
  /// take (a function, a table with a metatable, a cycle).
  void parse(std::string_view bytes);
  const sky_value* data() const { return top_; }
  size_t size() const { return n_; }

 private:
  void value(sky_value& out, int depth);
  void table(sky_value& out, int depth);
  sky_value* alloc(size_t n);

  std::pmr::monotonic_buffer_resource arena_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  sky_value* top_ = nullptr;
  size_t n_ = 0;
  struct Ref {
    const sky_value* v;
    bool done;
  };
  std::vector<Ref> refs_;
};

/// Where a result's bytes go: the heap while small, then a growing shared region.
class OutBuf {
 public:
  static constexpr size_t kInline = 64 * 1024;
  /// n more bytes at the end; returns where they start (valid until the next call).
  char* grow(size_t n);
  void append(const void* p, size_t n);
  /// Inserts bytes at `at` (rare: a value count above 127).
  void insert(size_t at, const char* p, size_t n);
  char* data() { return region_ ? region_->data() : heap_.data(); }
  size_t size() const { return size_; }
  /// The finished bytes' region (trimmed to size), or null when they are on the heap.
  std::shared_ptr<Region> take_region();
  std::string_view view() { return {data(), size_}; }

 private:
  std::string heap_;
  std::shared_ptr<Region> region_;
  size_t size_ = 0;
};

/// Builds a codec value list from sky_api calls (see plugin.h for the rules).
class ResultWriter {
 public:
  ResultWriter();
  /// The callbacks a plugin gets; `call` must be this writer's call().
  static const sky_api* api();
  sky_call* call();
  /// After the plugin returned: false with why() set if the results are unusable.
  bool finish();
  bool failed() const { return failed_; }
  const std::string& why() const { return why_; }
  OutBuf& out() { return out_; }

  // sky_api operations
  void scalar(const char* bytes, size_t n, bool is_key_nil_or_nan = false);
  void put_int(int64_t v);
  void put_float(double v);
  char* put_string(size_t n);
  void open(size_t narr, size_t nhash);
  void fail(std::string why);

 private:
  struct Open {
    uint64_t left;  // values still to come
    bool map;
  };
  bool key_next() const {
    return !stack_.empty() && stack_.back().map && stack_.back().left % 2 == 0;
  }
  void done_value();
  void varint(uint64_t v);

  OutBuf out_;
  std::vector<Open> stack_;
  uint64_t count_ = 0;
  bool failed_ = false;
  std::string why_;
};

}  // namespace skyworker
