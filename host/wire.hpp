// Wire format shared by host and worker: length-framed messages and the primitive encodings
// (varints, fixed-width numbers, byte strings) that the Lua value codec builds on.
//
// A frame is: u32 little-endian length L, then L bytes: one message-type byte and the body.
// Several frames may sit back to back in one buffer; that is how sends are batched.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace skyhost::wire {

/// Raised for anything malformed or truncated; never a crash, never a partial value.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Largest frame accepted (type byte + body). Larger announcements are malformed input.
inline constexpr uint32_t kMaxFrame = 1u << 30;
inline constexpr size_t kHeader = 4;

/// Message types. Host → worker below 64, worker → host from 64.
enum class Msg : uint8_t {
  kInit = 1,      // node identity and settings
  kDef = 2,       // closure definition: u64 cid, closure value
  kTask = 3,      // u64 tid, u64 cid, varint timeout ms (0: none), argument values
  kCancel = 4,    // u64 tid: stop the task (dropped if queued); its Result says kCancelled
  kLease = 5,     // heartbeat renewing the dead-man lease
  kShutdown = 6,  // finish and exit
  kReady = 64,    // worker info values
  kResult = 65,   // u64 tid, u8 Status, u64 exec_ns, values | error (message, traceback[, value])
  kLog = 66,      // u64 tid, string
  kFatal = 67,    // string: the worker cannot go on
};

/// How a task ended, in a Result. Anything but kOk carries an error body: message, traceback,
/// and, when the task raised a table, that table as codec values.
enum class Status : uint8_t {
  kFailed = 0,
  kOk = 1,
  kTimedOut = 2,   // ran past its timeout and was stopped
  kCancelled = 3,  // the host cancelled it
};

/// Growable output buffer. put_* append; begin_frame/end_frame wrap what is written between
/// them in a frame header.
class Writer {
 public:
  void put_u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void put_u32(uint32_t v);
  void put_u64(uint64_t v);
  void put_f64(double v);
  void put_varint(uint64_t v);
  void put_zigzag(int64_t v);
  /// varint length, then the bytes.
  void put_string(std::string_view s);
  void put_raw(const void* p, size_t n);

  /// Starts a frame of `type`; returns a mark to pass to end_frame.
  size_t begin_frame(Msg type);
  /// Patches the length of the frame started at `mark`. Throws Error past kMaxFrame.
  void end_frame(size_t mark);

  const std::string& data() const { return buf_; }
  std::string& data() { return buf_; }
  size_t size() const { return buf_.size(); }
  void clear() { buf_.clear(); }
  std::string take() { return std::move(buf_); }

 private:
  std::string buf_;
};

/// Bounds-checked reader over bytes it does not own. Every get_* throws Error on truncation.
class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  explicit Reader(std::string_view s) : Reader(s.data(), s.size()) {}

  uint8_t get_u8();
  uint32_t get_u32();
  uint64_t get_u64();
  double get_f64();
  uint64_t get_varint();
  int64_t get_zigzag();
  /// A string_view into the underlying bytes (valid as long as they are).
  std::string_view get_string();
  std::string_view get_raw(size_t n);

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const char* position() const { return p_; }

 private:
  void need(size_t n) const;
  const char* p_;
  const char* end_;
};

/// One decoded frame: its type and body (a view into the decoder's buffer).
struct Frame {
  Msg type;
  std::string_view body;
};

/// Incremental frame splitter for a byte stream: feed what arrives, take whole frames.
class FrameDecoder {
 public:
  /// Appends bytes read from the stream.
  void feed(const char* p, size_t n);
  /// Next complete frame, or false when more bytes are needed. Throws Error on a bad header
  /// (length 0 or above kMaxFrame). Bodies returned stay valid until the next feed(), which
  /// is the only call that compacts the buffer.
  bool next(Frame& out);
  /// Bytes held that do not yet form a whole frame.
  size_t pending() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace skyhost::wire
