#include "host/links/wire.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>

namespace skyhost::wire {

namespace {

// Byte-by-byte assembly keeps the format little-endian whatever the host's byte order.
template <typename T>
void store_le(char* dst, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) dst[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

template <typename T>
T load_le(const char* src) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v |= static_cast<T>(static_cast<uint8_t>(src[i])) << (8 * i);
  return v;
}

// A frame buffer larger than this is released once empty.
constexpr size_t kKeep = 4u << 20;

}  // namespace

std::string size_text(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  uint64_t unit = 1024;
  int u = 0;
  for (; bytes >= unit * 1024 && u < 3; ++u) unit *= 1024;
  char b[64];
  if (bytes % unit == 0) {  // "1 GiB"
    std::snprintf(b, sizeof b, "%llu %s", static_cast<unsigned long long>(bytes / unit), units[u]);
  } else {  // "1.1 GiB (1181116006 bytes)": exact where it matters, near a limit
    std::snprintf(b, sizeof b, "%.1f %s (%llu bytes)",
                  static_cast<double>(bytes) / static_cast<double>(unit), units[u],
                  static_cast<unsigned long long>(bytes));
  }
  return b;
}

void Writer::put_u32(uint32_t v) {
  char b[4];
  store_le(b, v);
  buf_.append(b, sizeof b);
}

void Writer::put_u64(uint64_t v) {
  char b[8];
  store_le(b, v);
  buf_.append(b, sizeof b);
}

void Writer::put_f64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_u64(bits);
}

void Writer::put_varint(uint64_t v) {
  char b[10];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  buf_.append(b, n);
}

void Writer::put_zigzag(int64_t v) {
  // Shift as unsigned: left-shifting a negative signed value is not portable.
  uint64_t u = static_cast<uint64_t>(v);
  put_varint((u << 1) ^ (v < 0 ? ~uint64_t{0} : 0));
}

void Writer::put_string(std::string_view s) {
  put_varint(s.size());
  if (refs_on_ && s.size() >= kRefMin) return put_ref(s.data(), s.size());
  buf_.append(s.data(), s.size());
}

void Writer::put_ref(const char* p, size_t n) {
  if (n == 0) return;
  refs_.push_back({buf_.size(), p, n});
  ref_bytes_ += n;
}

void Writer::append(Writer&& other) {
  size_t base = buf_.size();
  if (buf_.empty() && refs_.empty()) {
    buf_ = std::move(other.buf_);
  } else {
    buf_.append(other.buf_);
  }
  for (const Ref& r : other.refs_) refs_.push_back({base + r.at, r.p, r.n});
  ref_bytes_ += other.ref_bytes_;
  other.clear();
}

void Writer::truncate(size_t mark) {
  if (mark >= buf_.size()) return;
  buf_.resize(mark);
  while (!refs_.empty() && refs_.back().at > mark) {
    ref_bytes_ -= refs_.back().n;
    refs_.pop_back();
  }
}

std::string Writer::take() {
  if (!refs_.empty()) throw Error("wire: take() of a writer that holds refs");
  return std::move(buf_);
}

void Writer::put_raw(const void* p, size_t n) {
  buf_.append(static_cast<const char*>(p), n);
}

size_t Writer::begin_frame(Msg type) {
  size_t mark = buf_.size();
  buf_.append(kHeader, '\0');
  put_u8(static_cast<uint8_t>(type));
  return mark;
}

void Writer::end_frame(size_t mark) {
  if (mark > buf_.size() || buf_.size() - mark < kHeader + 1)
    throw Error("wire: end_frame without a matching begin_frame");
  size_t len = buf_.size() - mark - kHeader;
  for (auto r = refs_.rbegin(); r != refs_.rend() && r->at > mark; ++r) len += r->n;
  if (len > kMaxFrame)
    throw Error("wire: frame of " + size_text(len) + " exceeds the limit of " +
                size_text(kMaxFrame));
  store_le(&buf_[mark], static_cast<uint32_t>(len));
}

void Reader::need(size_t n) const {
  if (n > remaining())
    throw Error("wire: truncated input (need " + std::to_string(n) + " bytes, " +
                std::to_string(remaining()) + " left)");
}

uint8_t Reader::get_u8() {
  need(1);
  return static_cast<uint8_t>(*p_++);
}

uint32_t Reader::get_u32() {
  need(4);
  uint32_t v = load_le<uint32_t>(p_);
  p_ += 4;
  return v;
}

uint64_t Reader::get_u64() {
  need(8);
  uint64_t v = load_le<uint64_t>(p_);
  p_ += 8;
  return v;
}

double Reader::get_f64() {
  uint64_t bits = get_u64();
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

uint64_t Reader::get_varint() {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (p_ == end_) throw Error("wire: truncated varint");
    uint8_t b = static_cast<uint8_t>(*p_++);
    // The tenth byte carries only bit 63; anything more would not fit in 64 bits.
    if (shift == 63 && b > 1) throw Error("wire: varint overflows 64 bits");
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  throw Error("wire: varint longer than 10 bytes");
}

int64_t Reader::get_zigzag() {
  uint64_t u = get_varint();
  return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

std::string_view Reader::get_string() {
  uint64_t n = get_varint();
  // Compare before narrowing so a huge declared length cannot wrap around.
  if (n > remaining())
    throw Error("wire: string of " + std::to_string(n) + " bytes but only " +
                std::to_string(remaining()) + " left");
  return get_raw(static_cast<size_t>(n));
}

std::string_view Reader::get_raw(size_t n) {
  need(n);
  std::string_view s(p_, n);
  p_ += n;
  return s;
}

uint32_t FrameDecoder::check(uint32_t len) const {
  if (len == 0) throw Error("wire: frame with length 0");
  if (len > max_)
    throw Error("wire: frame of " + size_text(len) + " exceeds the limit of " + size_text(max_));
  return len;
}

FrameDecoder::~FrameDecoder() {
  std::free(buf_);
}

void FrameDecoder::grow(size_t want) {
  // A large frame arrives in many reads. The buffer grows by doubling, up to the end its header
  // announced when that is within the limit: a header alone reserves nothing, and what is held
  // is at most twice what arrived. A header over the limit is next()'s to report, as soon as it
  // is whole.
  size_t end = want, at = 0;
  while (size_ - at >= kHeader) {
    uint32_t len = load_le<uint32_t>(buf_ + at);
    if (len == 0 || len > max_) break;
    if (at + kHeader + len > size_ && blob_header(at)) {
      // Only its first eighth is held here (next()); the rest goes to the store.
      end = std::max(want, at + kHeader + 1 + (len - 1) / 8);
      break;
    }
    if (at + kHeader + len > size_) {
      end = std::max(want, at + kHeader + len);
      break;
    }
    at += kHeader + len;
  }
  size_t cap = std::max({want, std::min(end, 2 * cap_), size_t{256}});
  auto* p = static_cast<char*>(std::realloc(buf_, cap));
  if (p == nullptr) throw std::bad_alloc();
  buf_ = p;
  cap_ = cap;
}

void Payload::Free::operator()(char* p) const {
  std::free(p);
}

void FrameDecoder::feed(const char* p, size_t n) {
  do {  // the bytes of a blob being filled go there, what follows it into the buffer
    std::string_view room = space(n);
    size_t k = std::min(n, room.size());
    if (k > 0) std::memcpy(const_cast<char*>(room.data()), p, k);
    commit(k);
    p += k;
    n -= k;
  } while (n > 0);
}

std::string_view FrameDecoder::space(size_t want) {
  if (in_blob_ && filled_ < blob_.size) return {blob_.data + filled_, blob_.size - filled_};
  // Compacting only here keeps the views handed out by next() valid until the next feed.
  if (pos_ == size_ && cap_ > kKeep) {
    // After a large frame, give its memory back rather than keep it for the node's lifetime.
    std::free(buf_);
    buf_ = nullptr;
    cap_ = 0;
  } else if (pos_ > 0 && pos_ < size_) {
    std::memmove(buf_, buf_ + pos_, size_ - pos_);
  }
  size_ -= pos_;
  pos_ = 0;
  if (want > cap_ - size_ || cap_ == size_) grow(size_ + std::max<size_t>(want, 1));
  return {buf_ + size_, cap_ - size_};
}

Payload FrameDecoder::take(std::string_view part) {
  const char* end = buf_ + pos_;
  if (part.size() < kKeep || part.data() + part.size() != end || part.data() < buf_)
    return Payload(std::string(part));
  // Hand the buffer over; what follows the frame (the start of the next ones) moves.
  size_t rest = size_ - pos_;
  size_t cap = std::max(rest, size_t{256});
  auto* fresh = static_cast<char*>(std::malloc(cap));
  if (fresh == nullptr) throw std::bad_alloc();
  if (rest > 0) std::memcpy(fresh, end, rest);
  Payload out(buf_, static_cast<size_t>(part.data() - buf_), part.size());
  buf_ = fresh;
  cap_ = cap;
  size_ = rest;
  pos_ = 0;
  return out;
}

bool FrameDecoder::blob_header(size_t at) const {
  return store_ != nullptr && size_ - at > kHeader &&
         static_cast<uint8_t>(buf_[at + kHeader]) == static_cast<uint8_t>(Msg::kBlob);
}

void FrameDecoder::start_blob(uint32_t len) {
  size_t n = len - 1;
  blob_ = store_->make(n);
  filled_ = 0;
  in_blob_ = true;
  pos_ += kHeader + 1;
  // What already arrived of it moves there once; the rest is read there directly (space()).
  size_t k = std::min(n, size_ - pos_);
  if (k > 0) std::memcpy(blob_.data, buf_ + pos_, k);
  pos_ += k;
  filled_ = k;
}

Blob FrameDecoder::take_blob(std::string_view body) {
  if (blob_.data != nullptr && body.data() == blob_.data && body.size() == blob_.size)
    return std::exchange(blob_, Blob{});
  auto copy = std::make_shared<std::string>(body);
  return Blob{copy->data(), copy->size(), copy, 0};
}

bool FrameDecoder::next(Frame& out) {
  if (in_blob_) {
    if (filled_ < blob_.size) return false;
    in_blob_ = false;
    out.type = Msg::kBlob;
    out.body = std::string_view(blob_.data, blob_.size);
    return true;
  }
  if (size_ - pos_ < kHeader) return false;
  uint32_t len = check(load_le<uint32_t>(buf_ + pos_));
  if (blob_header(pos_)) {
    // Its storage is made only once an eighth of it arrived (kept in the buffer until then):
    // a header alone reserves nothing, and what a node makes the host hold stays within 8x
    // what it sent (and within max_frame). The part that arrived first is copied once.
    size_t n = len - 1;
    if (n < kBlobMin)
      throw Error("wire: a large string sent apart of " + size_text(n) + ", under " +
                  size_text(kBlobMin));
    if (size_ - pos_ - kHeader - 1 < n / 8) return false;
    start_blob(len);
    return next(out);
  }
  if (pending() - kHeader < len) return false;
  const char* start = buf_ + pos_ + kHeader;
  out.type = static_cast<Msg>(static_cast<uint8_t>(start[0]));
  out.body = std::string_view(start + 1, len - 1);
  pos_ += kHeader + len;
  return true;
}

}  // namespace skyhost::wire
