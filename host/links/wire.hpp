// Wire format shared by host and worker: length-framed messages and the primitive encodings
// (varints, fixed-width numbers, byte strings) that the Lua value codec builds on.
//
// A frame is: u32 little-endian length L, then L bytes: one message-type byte and the body.
// Several frames may sit back to back in one buffer; that is how sends are batched.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace skyhost::wire {

/// Raised for anything malformed or truncated; never a crash, never a partial value.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Largest frame there can be (type byte + body); a pool may set a lower limit (max_frame).
/// Larger announcements are malformed input.
inline constexpr uint32_t kMaxFrame = 1u << 30;
inline constexpr size_t kHeader = 4;
/// Bytes a frame adds around what it carries: the type byte, a task's or result's ids, and a
/// task's timeout or a result's status (a varint of at most 5 bytes).
inline constexpr size_t kFrameOverhead = 1 + 8 + 8 + 5;

/// "512 bytes", "1.5 MiB", "1 GiB": a size for messages.
std::string size_text(uint64_t bytes);

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
  kLog = 66,      // u64 tid (0: not a task's), string line, [u8 stream: 1 stdout, 2 stderr]
  kFatal = 67,    // string: the worker cannot go on
  kMetric = 68,   // varint n, n × (string name, f64 value, string unit)
  kBlob = 69,     // the raw bytes of one large string of the Result that follows (see Blob)
  kNotice = 70,   // string action, string time: the node's spot interruption notice (once)
};

/// How a task ended, in a Result. Anything but kOk carries an error body: message, traceback,
/// and, when the task raised a table, that table as codec values.
enum class Status : uint8_t {
  kFailed = 0,
  kOk = 1,
  kTimedOut = 2,   // ran past its timeout and was stopped
  kCancelled = 3,  // the host cancelled it
};

/// Least size of a string sent apart (Blob); a smaller blob is malformed input, since each
/// costs its receiver an allocation.
inline constexpr size_t kBlobMin = 1u << 20;

/// Bytes a Writer sends from where they are instead of copying them: they follow the first
/// `at` bytes of its buffer (see Writer::set_refs).
struct Ref {
  size_t at;
  const char* p;
  size_t n;
};

/// Growable output buffer. put_* append; begin_frame/end_frame wrap what is written between
/// them in a frame header.
class Writer {
 public:
  /// With refs on, put_string records a string of kRefMin bytes or more as a Ref instead of
  /// copying it: the caller keeps those bytes alive until the Writer's content is written (with
  /// writev: see segments()), and must not read data() as if it held everything.
  static constexpr size_t kRefMin = 64 * 1024;
  void set_refs(bool on) { refs_on_ = on; }
  /// With blobs on, a string of kBlobMin bytes or more is meant to go apart, in a kBlob frame of
  /// its own (see Blob): take_blob() records it (the caller keeps it alive, as for refs) and
  /// says so, and the codec then writes only its tag and length.
  void set_blobs(bool on) { blobs_on_ = on; }
  bool take_blob(std::string_view s) {
    if (!blobs_on_ || s.size() < kBlobMin) return false;
    blobs_.push_back(s);
    blob_bytes_ += s.size();
    return true;
  }
  const std::vector<std::string_view>& blobs() const { return blobs_; }
  size_t blob_bytes() const { return blob_bytes_; }
  const std::vector<Ref>& refs() const { return refs_; }
  /// Records the `n` bytes at `p` as a Ref (whatever set_refs says): written from there.
  void put_ref(const char* p, size_t n);
  /// Moves `other`'s bytes and refs to the end of this one; `other` is left empty.
  void append(Writer&& other);
  /// Calls `f(p, n)` for each piece of the content in order: buffer bytes and referenced bytes.
  template <typename F>
  void segments(F&& f) const {
    size_t at = 0;
    for (const Ref& r : refs_) {
      if (r.at > at) f(buf_.data() + at, r.at - at);
      f(r.p, r.n);
      at = r.at;
    }
    if (buf_.size() > at) f(buf_.data() + at, buf_.size() - at);
  }

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

  /// The buffer: everything written but the refs' bytes.
  const std::string& data() const { return buf_; }
  std::string& data() { return buf_; }
  /// Bytes of content, referenced ones included.
  size_t size() const { return buf_.size() + ref_bytes_; }
  void clear() {
    buf_.clear();
    refs_.clear();
    ref_bytes_ = 0;
    blobs_.clear();
    blob_bytes_ = 0;
  }
  /// Drops what was written after the first `mark` bytes of the buffer (refs included).
  void truncate(size_t mark);
  /// The content as one string; throws Error if it has refs (they are not copied here).
  std::string take();

 private:
  std::string buf_;
  std::vector<Ref> refs_;
  size_t ref_bytes_ = 0;
  bool refs_on_ = false;
  std::vector<std::string_view> blobs_;
  size_t blob_bytes_ = 0;
  bool blobs_on_ = false;
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

/// Bytes that own their memory: a copy, or a large frame's buffer taken from a FrameDecoder
/// (FrameDecoder::take) so that a result of a gigabyte is not copied once more.
class Payload {
 public:
  Payload() = default;
  explicit Payload(std::string s) : str_(std::move(s)), len_(str_.size()) {}
  /// Owns `block` (from malloc); its bytes are the `len` from `off` on.
  Payload(char* block, size_t off, size_t len) : block_(block), off_(off), len_(len) {}
  const char* data() const { return (block_ ? block_.get() : str_.data()) + off_; }
  size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  operator std::string_view() const { return {data(), len_}; }
  friend bool operator==(const Payload& a, std::string_view b) { return std::string_view(a) == b; }

 private:
  struct Free {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, Free> block_;
  std::string str_;
  size_t off_ = 0;
  size_t len_ = 0;
};

/// A large string sent apart: its bytes travel as a frame of their own (Msg::kBlob), just
/// before the Result frame whose values refer to it (codec tag kBlob), so that a reader can put
/// them where they will stay (a BlobStore's storage: on the host, the Lua string itself)
/// instead of into a frame buffer that is then copied. Only strings of kBlobMin bytes or more
/// go apart (Writer::take_blob).
struct Blob {
  char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;  // keeps `data` alive
  /// The store's own handle for it (the bindings: a registry reference), 0 for a plain copy.
  int64_t token = 0;
};

/// Where a FrameDecoder puts a blob's bytes as they arrive.
class BlobStore {
 public:
  virtual ~BlobStore() = default;
  /// Writable storage of `n` bytes that the decoder fills. Throws std::bad_alloc if none.
  virtual Blob make(size_t n) = 0;
};

/// One decoded frame: its type and body (a view into the decoder's buffer).
struct Frame {
  Msg type;
  std::string_view body;
};

/// Incremental frame splitter for a byte stream: feed what arrives, take whole frames.
/// What it holds is bounded by what arrived: a header alone reserves nothing, so four bytes
/// that announce a gigabyte cost four bytes (the buffer grows with the bytes, at most doubling).
class FrameDecoder {
 public:
  /// `max_frame`: the largest frame accepted (at most kMaxFrame).
  explicit FrameDecoder(uint32_t max_frame = kMaxFrame) { set_max(max_frame); }
  void set_max(uint32_t max_frame) { max_ = max_frame < kMaxFrame ? max_frame : kMaxFrame; }
  uint32_t max() const { return max_; }
  /// Appends bytes read from the stream. May throw std::bad_alloc. Call next() after each
  /// feed: a header over the limit is reported as soon as it is whole, so at most one read of
  /// such a frame is ever held.
  void feed(const char* p, size_t n);
  /// Room for at least `want` more bytes, to read into directly (then commit() what was read):
  /// a large frame's bytes land where they stay, with no copy (while a blob is being filled:
  /// the rest of its storage, maybe less than `want`). May throw std::bad_alloc. Like
  /// feed(), invalidates the bodies next() returned.
  std::string_view space(size_t want);
  void commit(size_t n) { (in_blob_ && filled_ < blob_.size ? filled_ : size_) += n; }
  /// The bytes of `part` (which ends where the frame next() returned last ends) as a Payload:
  /// a large frame's whole buffer is handed over rather than copied (the bytes after it move
  /// to a new buffer), a small one copied.
  Payload take(std::string_view part);
  /// Next complete frame, or false when more bytes are needed. Throws Error on a bad header
  /// (length 0 or above the limit). Bodies returned stay valid until the next feed(), which
  /// is the only call that compacts the buffer.
  bool next(Frame& out);
  /// With a store set, a kBlob frame's bytes are read into the store's storage, not into the
  /// buffer; next() returns it as a frame whose body is that storage, and take_blob() hands it
  /// over. A kBlob frame under kBlobMin bytes is then an Error.
  void set_store(std::shared_ptr<BlobStore> store) { store_ = std::move(store); }
  /// The blob of the kBlob frame next() returned last (`body`): the store's storage itself, or
  /// without a store a copy of the body.
  Blob take_blob(std::string_view body);
  /// Bytes held that do not yet form a whole frame.
  size_t pending() const { return size_ - pos_ + (in_blob_ ? blob_.size - filled_ : 0); }
  /// Memory the buffer holds (for the tests and fuzz target that bound it).
  size_t capacity() const { return cap_; }

  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;
  ~FrameDecoder();

 private:
  uint32_t check(uint32_t len) const;
  void grow(size_t want);
  bool blob_header(size_t at) const;
  void start_blob(uint32_t len);
  // malloc'd, so that growing a large buffer is a realloc: remapped pages, not a copy that
  // touches every page again (that was 2.5x slower for a 256 MiB result).
  char* buf_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
  size_t pos_ = 0;
  uint32_t max_ = kMaxFrame;
  std::shared_ptr<BlobStore> store_;
  Blob blob_;          // the blob being filled (in_blob_), or the last one next() returned
  size_t filled_ = 0;  // bytes of blob_ received so far
  bool in_blob_ = false;
};

}  // namespace skyhost::wire
