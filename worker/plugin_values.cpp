#include "worker/plugin_values.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "host/links/wire.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Error;

// The codec's tags (bindings/codec.cpp).
enum Tag : uint8_t {
  kNil,
  kFalse,
  kTrue,
  kInt,
  kFloat,
  kString,
  kTable,
  kRef,
  kFunction,
  kGlobals,
  kNamed
};
constexpr int kMaxDepth = 200;

}  // namespace

// ---- arguments ------------------------------------------------------------------------------

sky_value* ArgViews::alloc(size_t n) {
  if (n == 0) return nullptr;
  void* p = arena_.allocate(n * sizeof(sky_value), alignof(sky_value));
  auto* v = static_cast<sky_value*>(p);
  for (size_t i = 0; i < n; ++i) new (&v[i]) sky_value{};
  return v;
}

void ArgViews::parse(std::string_view bytes) {
  skyhost::wire::Reader r(bytes);
  uint64_t n = r.get_varint();
  if (n > r.remaining()) throw Error("plugin arguments: count is more than the input holds");
  p_ = r.position();
  end_ = bytes.data() + bytes.size();
  n_ = static_cast<size_t>(n);
  top_ = alloc(n_);
  for (size_t i = 0; i < n_; ++i) value(top_[i], 0);
  if (p_ != end_) throw Error("plugin arguments: trailing bytes");
}

void ArgViews::value(sky_value& out, int depth) {
  skyhost::wire::Reader r(p_, static_cast<size_t>(end_ - p_));
  uint8_t tag = r.get_u8();
  switch (tag) {
    case kNil:
      out.type = SKY_NIL;
      break;
    case kFalse:
    case kTrue:
      out.type = SKY_BOOL;
      out.as.boolean = tag == kTrue;
      break;
    case kInt:
      out.type = SKY_INT;
      out.as.integer = r.get_zigzag();
      break;
    case kFloat:
      out.type = SKY_FLOAT;
      out.as.number = r.get_f64();
      break;
    case kString: {
      std::string_view s = r.get_string();
      out.type = SKY_STRING;
      out.as.string.data = s.data();
      out.as.string.size = s.size();
      break;
    }
    case kTable:
      p_ = r.position();
      return table(out, depth + 1);
    case kRef: {
      uint64_t id = r.get_varint();
      if (id >= refs_.size()) throw Error("plugin arguments: reference out of range");
      if (!refs_[id].done) throw Error("a table that contains itself cannot be passed to a plugin");
      out = *refs_[id].v;
      break;
    }
    case kFunction:
    case kNamed:
    case kGlobals:
      throw Error("a function or library value cannot be passed to a plugin");
    default:
      throw Error("plugin arguments: bad value tag " + std::to_string(tag));
  }
  p_ = r.position();
}

// A table with only 1..n keys is a list; any other a map whose pairs hold the array part's
// non-nil items under their integer keys, then the hash part.
void ArgViews::table(sky_value& out, int depth) {
  if (depth > kMaxDepth) throw Error("plugin arguments: nested too deep");
  skyhost::wire::Reader r(p_, static_cast<size_t>(end_ - p_));
  uint64_t narr = r.get_varint();
  uint64_t nhash = r.get_varint();
  if (narr > r.remaining() || nhash > r.remaining() / 2)
    throw Error("plugin arguments: table sizes are more than the input holds");
  p_ = r.position();
  size_t id = refs_.size();
  refs_.push_back({&out, false});
  if (nhash == 0) {
    sky_value* items = alloc(narr);
    for (uint64_t i = 0; i < narr; ++i) value(items[i], depth);
    out.type = SKY_LIST;
    out.as.list.items = items;
    out.as.list.size = narr;
  } else {
    sky_value* kv = alloc(2 * (narr + nhash));
    size_t pairs = 0;
    for (uint64_t i = 0; i < narr; ++i) {
      value(kv[2 * pairs + 1], depth);
      if (kv[2 * pairs + 1].type == SKY_NIL) continue;
      kv[2 * pairs].type = SKY_INT;
      kv[2 * pairs].as.integer = static_cast<int64_t>(i + 1);
      ++pairs;
    }
    for (uint64_t i = 0; i < nhash; ++i, ++pairs) {
      value(kv[2 * pairs], depth);
      value(kv[2 * pairs + 1], depth);
    }
    out.type = SKY_MAP;
    out.as.map.kv = kv;
    out.as.map.size = pairs;
  }
  if (p_ == end_ || static_cast<uint8_t>(*p_) != kNil)
    throw Error("a table with a metatable cannot be passed to a plugin");
  ++p_;
  refs_[id].done = true;
}

// ---- result bytes ---------------------------------------------------------------------------

char* OutBuf::grow(size_t n) {
  size_t need = size_ + n;
  if (!region_ && need > kInline) {
    auto r = Region::create(std::max(need, 2 * kInline));
    std::memcpy(r->data(), heap_.data(), size_);
    heap_ = std::string();
    region_ = std::move(r);
  }
  if (region_) {
    if (need > region_->size()) region_->resize(std::max(need, region_->size() * 2));
  } else if (need > heap_.size()) {
    heap_.resize(std::max(need, heap_.size() * 2));
  }
  char* at = data() + size_;
  size_ = need;
  return at;
}

void OutBuf::append(const void* p, size_t n) {
  if (n > 0) std::memcpy(grow(n), p, n);
}

void OutBuf::insert(size_t at, const char* p, size_t n) {
  grow(n);
  std::memmove(data() + at + n, data() + at, size_ - n - at);
  std::memcpy(data() + at, p, n);
}

std::shared_ptr<Region> OutBuf::take_region() {
  if (region_ && region_->size() != size_) region_->resize(size_);
  return std::move(region_);
}

// ---- result writer --------------------------------------------------------------------------

namespace {

ResultWriter& self(sky_call* c) {
  return *reinterpret_cast<ResultWriter*>(c);
}

void api_nil(sky_call* c) {
  uint8_t t = kNil;
  self(c).scalar(reinterpret_cast<const char*>(&t), 1, true);
}
void api_bool(sky_call* c, int v) {
  uint8_t t = v ? kTrue : kFalse;
  self(c).scalar(reinterpret_cast<const char*>(&t), 1);
}
void api_int(sky_call* c, int64_t v) {
  self(c).put_int(v);
}
void api_float(sky_call* c, double v) {
  self(c).put_float(v);
}
void api_string(sky_call* c, const char* p, size_t n) {
  char* at = self(c).put_string(n);
  if (at != nullptr && n > 0) std::memcpy(at, p, n);
}
char* api_string_alloc(sky_call* c, size_t n) {
  return self(c).put_string(n);
}
void api_list(sky_call* c, size_t n) {
  self(c).open(n, 0);
}
void api_map(sky_call* c, size_t n) {
  self(c).open(0, n);
}
int api_error(sky_call* c, const char* msg) {
  self(c).fail(msg != nullptr ? msg : "error");
  return 1;
}

const sky_api kApi = {
    SKY_PLUGIN_ABI_VERSION, sizeof(sky_api), api_nil, api_bool,  api_int, api_float, api_string,
    api_string_alloc,       api_list,        api_map, api_error,
};

}  // namespace

ResultWriter::ResultWriter() {
  out_.grow(1);
}  // the value count, patched by finish()

const sky_api* ResultWriter::api() {
  return &kApi;
}

sky_call* ResultWriter::call() {
  return reinterpret_cast<sky_call*>(this);
}

void ResultWriter::fail(std::string why) {
  if (failed_) return;  // the first reason is the one that explains
  failed_ = true;
  why_ = std::move(why);
}

void ResultWriter::varint(uint64_t v) {
  char b[10];
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) b[n++] = static_cast<char>((v & 0x7f) | 0x80);
  b[n++] = static_cast<char>(v);
  out_.append(b, n);
}

void ResultWriter::done_value() {
  while (!stack_.empty()) {
    if (--stack_.back().left > 0) return;
    uint8_t mt = kNil;  // the table is complete: no metatable
    out_.append(&mt, 1);
    stack_.pop_back();
  }
  ++count_;
}

void ResultWriter::scalar(const char* bytes, size_t n, bool nil) {
  if (failed_) return;
  if (nil && key_next()) return fail("a map key is nil");
  out_.append(bytes, n);
  done_value();
}

void ResultWriter::put_int(int64_t v) {
  if (failed_) return;
  uint8_t t = kInt;
  out_.append(&t, 1);
  auto u = static_cast<uint64_t>(v);
  varint((u << 1) ^ (v < 0 ? ~uint64_t{0} : 0));
  done_value();
}

void ResultWriter::put_float(double v) {
  if (failed_) return;
  if (std::isnan(v) && key_next()) return fail("a map key is NaN");
  char b[9];
  b[0] = kFloat;
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  for (int i = 0; i < 8; ++i) b[1 + i] = static_cast<char>((bits >> (8 * i)) & 0xff);
  out_.append(b, 9);
  done_value();
}

char* ResultWriter::put_string(size_t n) {
  if (failed_) return nullptr;
  uint8_t t = kString;
  out_.append(&t, 1);
  varint(n);
  char* at;
  try {
    at = out_.grow(n);
  } catch (const std::exception& e) {
    fail(std::string("cannot make room for a result of ") + std::to_string(n) +
         " bytes: " + e.what());
    return nullptr;
  }
  done_value();
  return at;
}

void ResultWriter::open(size_t narr, size_t nhash) {
  if (failed_) return;
  if (nhash > std::numeric_limits<uint64_t>::max() / 4) return fail("a map is too large");
  uint8_t t = kTable;
  out_.append(&t, 1);
  varint(narr);
  varint(nhash);
  uint64_t left = narr + 2 * static_cast<uint64_t>(nhash);
  if (left == 0) {
    uint8_t mt = kNil;
    out_.append(&mt, 1);
    return done_value();
  }
  stack_.push_back({left, nhash > 0});
}

bool ResultWriter::finish() {
  if (!failed_ && !stack_.empty())
    fail("a list or map was left unfinished (fewer values than announced)");
  if (failed_) return false;
  char b[10];
  size_t n = 0;
  uint64_t v = count_;
  for (; v >= 0x80; v >>= 7) b[n++] = static_cast<char>((v & 0x7f) | 0x80);
  b[n++] = static_cast<char>(v);
  out_.data()[0] = b[0];
  if (n > 1) out_.insert(1, b + 1, n - 1);
  return true;
}

}  // namespace skyworker
