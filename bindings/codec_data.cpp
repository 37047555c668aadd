// The untrusted decoder: a task's results as a node sent them. A node may be shared or
// compromised, so what it sends is data and nothing else:
//   - no code: no function tag is accepted and nothing is ever passed to lua_load; no metatable
//     is ever set (a __gc, __index or __close would run on the host), no library name or global
//     table is resolved (they would hand host objects to a node's choosing);
//   - bounded memory: size hints come out of one budget of the input's size, so nested tables
//     that each claim the rest of the input cannot each allocate it; every other allocation
//     follows a value actually read. Decoding n bytes costs at most kDataCostFactor * n +
//     kDataCostSlack bytes of Lua memory (codec.hpp);
//   - bounded depth, references only to tables already read, keys Lua accepts.
// Anything else is a DecodeError saying what was refused, and the stack is left as it was.
#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "bindings/codec.hpp"
#include "bindings/codec_format.hpp"

namespace skyhost::codec {

namespace {

using namespace format;

const char* kNoCode = " (a node returns data only: the host never runs code that a node sends)";

class DataDecoder {
 public:
  DataDecoder(lua_State* L, wire::Reader& in, const std::vector<wire::Blob>* blobs)
      : L_(L), in_(in), hints_(in.remaining()), blobs_(blobs) {}
  int decode();
  void finish() const {
    size_t have = blobs_ ? blobs_->size() : 0;
    if (next_blob_ != have)
      throw DecodeError("codec: " + std::to_string(have) + " large strings sent apart but " +
                        std::to_string(next_blob_) + " used");
  }

 private:
  void value();
  void table();
  void blob(uint64_t n);
  void push_ref(uint64_t id) {
    if (id >= nrefs_)
      throw DecodeError("codec: reference " + std::to_string(id) + " out of range (" +
                        std::to_string(nrefs_) + " defined)");
    lua_rawgeti(L_, refs_, static_cast<lua_Integer>(id + 1));
  }
  // A size hint, charged `weight` budget bytes per slot: what the budget no longer covers is
  // not preallocated (the table grows as it really fills instead).
  int hint(uint64_t n, uint64_t weight) {
    uint64_t h = std::min({n, hints_ / weight, kHintCap});
    hints_ -= h * weight;
    return static_cast<int>(h);
  }

  lua_State* L_;
  wire::Reader& in_;
  uint64_t hints_;  // budget for size hints, in input bytes
  int refs_ = 0;    // stack slot of the id -> table array (nil until the first table)
  uint64_t nrefs_ = 0;
  int depth_ = 0;
  const std::vector<wire::Blob>* blobs_;
  size_t next_blob_ = 0;  // blobs are used once each, in the order they arrived
};

int DataDecoder::decode() {
  uint64_t n = in_.get_varint();
  if (n > in_.remaining() || n > INT_MAX - 16 || !lua_checkstack(L_, static_cast<int>(n) + 16))
    throw DecodeError("codec: value count " + std::to_string(n) + " is more than the input holds");
  lua_pushnil(L_);  // [refs=nil]
  refs_ = lua_gettop(L_);
  for (uint64_t i = 0; i < n; ++i) value();  // [refs, v1 .. vi]
  lua_remove(L_, refs_);                     // [v1 .. vn]
  return static_cast<int>(n);
}

void DataDecoder::value() {
  uint8_t tag = in_.get_u8();
  switch (tag) {
    case kNil:
      return lua_pushnil(L_);
    case kFalse:
    case kTrue:
      return lua_pushboolean(L_, tag == kTrue);
    case kInt:
      return lua_pushinteger(L_, in_.get_zigzag());
    case kFloat:
      return lua_pushnumber(L_, in_.get_f64());
    case kString: {
      std::string_view s = in_.get_string();
      lua_pushlstring(L_, s.data(), s.size());
      return;
    }
    case kTable:
      return table();
    case kRef:
      return push_ref(in_.get_varint());
    case kBlob:
      return blob(in_.get_varint());
    case kFunction:
      throw DecodeError(std::string("codec: refused a function") + kNoCode);
    case kGlobals:
      throw DecodeError(std::string("codec: refused a global table") + kNoCode);
    case kNamed: {
      std::string_view name = in_.get_string();
      std::string shown(name.substr(0, 40));
      for (char& c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      throw DecodeError("codec: refused a library value ('" + shown + "')" + kNoCode);
    }
    default:
      throw DecodeError("codec: bad value tag " + std::to_string(tag));
  }
}

// A large string whose bytes came in a frame of their own (wire::Blob). The bindings' store
// (blob_store.cpp) received them into the Lua string itself, anchored in the registry under
// the blob's token: pushing it copies nothing. A blob without a token is a plain copy.
void DataDecoder::blob(uint64_t n) {
  if (blobs_ == nullptr || next_blob_ >= blobs_->size())
    throw DecodeError("codec: a large string sent apart that did not arrive");
  const wire::Blob& b = (*blobs_)[next_blob_++];
  if (b.size != n)
    throw DecodeError("codec: a large string sent apart of " + std::to_string(b.size) +
                      " bytes, announced as " + std::to_string(n));
  if (b.token == 0) return static_cast<void>(lua_pushlstring(L_, b.data, b.size));
  size_t len = 0;
  if (lua_rawgeti(L_, LUA_REGISTRYINDEX, b.token) != LUA_TSTRING ||
      lua_tolstring(L_, -1, &len) != b.data || len != b.size)
    throw DecodeError("codec: a large string sent apart is not where it was received");
  // The store made it with the collector stopped, which dropped its cost from the collector's
  // pace (LUA_GCRESTART zeroes the debt): charge it here, where a step may run finalizers, so
  // that a script taking large results one after another still collects the old ones.
  if (lua_gc(L_, LUA_GCISRUNNING))
    lua_gc(L_, LUA_GCSTEP, static_cast<int>(std::min<size_t>(b.size >> 10, INT_MAX)));
}

void DataDecoder::table() {
  if (++depth_ > kMaxDepth)
    throw DecodeError("codec: value nested more than " + std::to_string(kMaxDepth) + " levels");
  if (!lua_checkstack(L_, 8)) throw DecodeError("codec: Lua stack overflow");
  uint64_t narr = in_.get_varint();
  uint64_t nhash = in_.get_varint();
  // Every value takes at least a byte: larger counts are lies, refused before allocating.
  if (narr > in_.remaining() || nhash > in_.remaining() / 2)
    throw DecodeError("codec: table sizes " + std::to_string(narr) + "+" + std::to_string(nhash) +
                      " are more than the input holds");
  // A hash slot (key and value, rounded up to a power of two) costs about twice an array slot.
  int arr_hint = hint(narr, 1);
  int hash_hint = hint(nhash, 2);
  lua_createtable(L_, arr_hint, hash_hint);  // [t]
  if (nrefs_ == 0) {
    lua_createtable(L_, 8, 0);
    lua_replace(L_, refs_);
  }
  lua_pushvalue(L_, -1);
  lua_rawseti(L_, refs_, static_cast<lua_Integer>(++nrefs_));
  int t = lua_gettop(L_);
  for (uint64_t i = 1; i <= narr; ++i) {
    value();                                          // [t, v]
    lua_rawseti(L_, t, static_cast<lua_Integer>(i));  // [t]; a nil is simply not stored
  }
  for (uint64_t i = 0; i < nhash; ++i) {
    value();  // [t, k]
    // Raw sets raise a Lua error for these keys; refuse them as malformed input instead.
    if (lua_isnil(L_, -1)) throw DecodeError("codec: table key is nil");
    if (lua_type(L_, -1) == LUA_TNUMBER && std::isnan(lua_tonumber(L_, -1)))
      throw DecodeError("codec: table key is NaN");
    value();            // [t, k, v]
    lua_rawset(L_, t);  // [t]
  }
  if (in_.get_u8() != kNil)
    throw DecodeError(std::string("codec: refused a table with a metatable") + kNoCode);
  --depth_;
}

}  // namespace

int decode_data(lua_State* L, wire::Reader& in, const std::vector<wire::Blob>* blobs) {
  int top = lua_gettop(L);
  try {
    DataDecoder d(L, in, blobs);
    int n = d.decode();
    d.finish();
    return n;
  } catch (const std::exception&) {
    lua_settop(L, top);
    throw;
  }
}

}  // namespace skyhost::codec
