// The trusted decoder: the host's own closures and arguments, as a worker receives them. It loads
// bytecode, so it must never see a node's bytes: those go through decode_data (codec_data.cpp).
//
// Loading bytecode is made safe against corruption (ChunkCheck, then lua_load's own checks), but
// Lua does not verify the instructions, so a forged chunk that loads could still misbehave when
// run: only the host, which is trusted with running code on its nodes anyway, may send it.
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "bindings/codec.hpp"
#include "bindings/codec_format.hpp"

namespace skyhost::codec {

namespace {

using namespace format;

// Walks a binary chunk the way lundump.c reads it, checking what lua_load trusts: that every
// count fits in the bytes left (it allocates, and partly clears, before reading), that protos
// nest no deeper than we recurse, and that the debug list of upvalue names is no longer than
// the upvalue list (lua_load writes one into an array sized by the other, unchecked).
// The 31-byte header (signature, version, format, sizes, check values) is lua_load's to check.
class ChunkCheck {
 public:
  explicit ChunkCheck(std::string_view c) : p_(c.data()), end_(c.data() + c.size()) {}
  bool ok() {
    size_t main_nups;
    if (!skip(31) || !left()) return false;
    size_t nups = static_cast<uint8_t>(*p_++);
    return function(0, main_nups) && nups == main_nups && !left();
  }

 private:
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  bool skip(size_t n) { return n <= left() ? (p_ += n, true) : false; }
  // lundump's unsigned: 7-bit groups, most significant first, the last one flagged.
  bool size(size_t& x) {
    x = 0;
    for (int i = 0; i < 10 && p_ < end_; ++i) {
      uint8_t b = static_cast<uint8_t>(*p_++);
      x = (x << 7) | (b & 0x7f);
      if (b & 0x80) return true;
    }
    return false;
  }
  bool ints(size_t k) {
    size_t x;
    for (size_t i = 0; i < k; ++i)
      if (!size(x)) return false;
    return true;
  }
  bool string() {
    size_t n;
    return size(n) && (n == 0 || skip(n - 1));
  }
  // n items of at least `each` bytes, all within what is left.
  bool count(size_t& n, size_t each) { return size(n) && n <= left() / each; }

  bool function(int depth, size_t& nups) {
    size_t n;
    // source, line defined, last line, then params, vararg and stack size bytes; code
    if (depth > kMaxDepth || !string() || !ints(2) || !skip(3) || !count(n, 4) || !skip(4 * n))
      return false;
    if (!count(n, 1)) return false;  // constants: a type tag, then the value
    for (size_t i = 0; i < n; ++i) {
      uint8_t t = left() ? static_cast<uint8_t>(*p_++) : 0xff;
      bool known = t == 0 || t == 1 || t == 17 || ((t == 3 || t == 19) && skip(8)) ||
                   ((t == 4 || t == 20) && string());  // nil, false, true, int, float, strings
      if (!known) return false;
    }
    if (!count(nups, 3) || !skip(3 * nups) || !count(n, 1)) return false;  // upvalues, protos
    for (size_t i = 0, sub; i < n; ++i)
      if (!function(depth + 1, sub)) return false;
    // line info, absolute line info (pc, line), local names with their pc range, upvalue names
    if (!count(n, 1) || !skip(n) || !count(n, 2) || !ints(2 * n) || !count(n, 3)) return false;
    for (size_t i = 0; i < n; ++i)
      if (!string() || !ints(2)) return false;
    if (!count(n, 1) || n > nups) return false;
    for (size_t i = 0; i < n; ++i)
      if (!string()) return false;
    return true;
  }

  const char* p_;
  const char* end_;
};

const char* chunk_reader(lua_State*, void* ud, size_t* size) {
  auto* rest = static_cast<std::string_view*>(ud);
  const char* p = rest->data();
  *size = rest->size();
  *rest = std::string_view();
  return *size ? p : nullptr;
}

// Upvalues allocated in the closure; lua_load guarantees these exist.
int upvalue_count(lua_State* L, int idx) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  return ar.nups;
}

// Upvalue n exists in both the closure and its prototype: lua_upvaluejoin trusts both.
bool has_upvalue(lua_State* L, int idx, int n) {
  if (n < 1 || n > upvalue_count(L, idx) || !lua_getupvalue(L, idx, n)) return false;
  lua_pop(L, 1);
  return true;
}

class Decoder {
 public:
  Decoder(lua_State* L, wire::Reader& in) : L_(L), in_(in) {}
  int decode();

 private:
  void value();
  void table();
  void function();
  void named();
  void remember() {  // [.., obj]
    if (nrefs_ == 0) {
      lua_createtable(L_, 8, 0);
      lua_replace(L_, refs_);
    }
    lua_pushvalue(L_, -1);
    lua_rawseti(L_, refs_, static_cast<lua_Integer>(++nrefs_));
  }
  void push_ref(uint64_t id) {
    if (id >= nrefs_)
      throw DecodeError("codec: reference " + std::to_string(id) + " out of range (" +
                        std::to_string(nrefs_) + " defined)");
    lua_rawgeti(L_, refs_, static_cast<lua_Integer>(id + 1));
  }
  void enter() {
    if (++depth_ > kMaxDepth)
      throw DecodeError("codec: value nested more than " + std::to_string(kMaxDepth) + " levels");
    if (!lua_checkstack(L_, 8)) throw DecodeError("codec: Lua stack overflow");
  }

  lua_State* L_;
  wire::Reader& in_;
  int refs_ = 0;  // stack slot of the id -> object array (nil until the first object)
  uint64_t nrefs_ = 0;
  int depth_ = 0;
};

int Decoder::decode() {
  uint64_t n = in_.get_varint();
  if (n > in_.remaining() || n > INT_MAX - 16 || !lua_checkstack(L_, static_cast<int>(n) + 16))
    throw DecodeError("codec: value count " + std::to_string(n) + " is more than the input holds");
  lua_pushnil(L_);  // [refs=nil]
  refs_ = lua_gettop(L_);
  for (uint64_t i = 0; i < n; ++i) value();  // [refs, v1 .. vi]
  lua_remove(L_, refs_);                     // [v1 .. vn]
  return static_cast<int>(n);
}

void Decoder::value() {
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
    case kFunction:
      return function();
    case kGlobals:
      lua_rawgeti(L_, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      return;
    case kNamed:
      return named();
    default:
      throw DecodeError("codec: bad value tag " + std::to_string(tag));
  }
}

void Decoder::table() {
  enter();
  uint64_t narr = in_.get_varint();
  uint64_t nhash = in_.get_varint();
  // Every value takes at least a byte: larger counts are lies, refused before allocating.
  if (narr > in_.remaining() || nhash > in_.remaining() / 2)
    throw DecodeError("codec: table sizes " + std::to_string(narr) + "+" + std::to_string(nhash) +
                      " are more than the input holds");
  lua_createtable(L_, static_cast<int>(std::min(narr, kHintCap)),
                  static_cast<int>(std::min(nhash, kHintCap)));  // [t]
  remember();
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
  value();  // [t, mt]
  if (!lua_istable(L_, -1) && !lua_isnil(L_, -1))
    throw DecodeError("codec: metatable is not a table");
  lua_setmetatable(L_, t);  // nil sets none: [t]
  --depth_;
}

void Decoder::function() {
  enter();
  uint32_t len = in_.get_u32();
  std::string_view code = in_.get_raw(len);
  if (code.size() < 4 || std::memcmp(code.data(), LUA_SIGNATURE, 4) != 0)
    throw DecodeError("codec: function body is not a binary Lua chunk");
  if (!ChunkCheck(code).ok()) throw DecodeError("codec: malformed function bytecode");
  if (lua_load(L_, chunk_reader, &code, "=(wire)", "b") != LUA_OK) {  // [f | err]
    const char* err = lua_tostring(L_, -1);
    throw DecodeError(std::string("codec: cannot load function: ") + (err ? err : "?"));
  }
  remember();
  int f = lua_gettop(L_);
  int nups = upvalue_count(L_, f);
  uint8_t sent = in_.get_u8();
  if (sent != nups)
    throw DecodeError("codec: function has " + std::to_string(nups) + " upvalues but " +
                      std::to_string(sent) + " were sent");
  for (int i = 1; i <= nups; ++i) {
    uint8_t mode = in_.get_u8();
    if (mode == kUpValue) {
      value();                                                                       // [f, v]
      if (!lua_setupvalue(L_, f, i)) throw DecodeError("codec: bad upvalue index");  // [f]
    } else if (mode == kUpShared) {
      uint64_t id = in_.get_varint();
      int n = in_.get_u8();
      push_ref(id);  // [f, g]
      if (lua_type(L_, -1) != LUA_TFUNCTION || lua_iscfunction(L_, -1) ||
          !has_upvalue(L_, f + 1, n) || !has_upvalue(L_, f, i))
        throw DecodeError("codec: shared upvalue refers to a missing upvalue");
      lua_upvaluejoin(L_, f, i, f + 1, n);
      lua_pop(L_, 1);  // [f]
    } else {
      throw DecodeError("codec: bad upvalue mode " + std::to_string(mode));
    }
  }
  --depth_;
}

void Decoder::named() {
  std::string_view name = in_.get_string();
  auto unresolved = [&] {
    return DecodeError("codec: cannot resolve '" + std::string(name.substr(0, 80)) +
                       "' on the receiving side");
  };
  lua_getfield(L_, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);  // [loaded]
  for (size_t start = 0;;) {
    size_t dot = name.find('.', start);
    std::string_view part = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!lua_istable(L_, -1)) throw unresolved();
    lua_pushlstring(L_, part.data(), part.size());  // [parent, part]
    lua_rawget(L_, -2);                             // [parent, child]
    lua_remove(L_, -2);                             // [child]
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!lua_istable(L_, -1) && !lua_isfunction(L_, -1)) throw unresolved();
}

}  // namespace

int decode_values(lua_State* L, wire::Reader& in) {
  int top = lua_gettop(L);
  try {
    return Decoder(L, in).decode();
  } catch (const std::exception&) {
    lua_settop(L, top);
    throw;
  }
}

}  // namespace skyhost::codec
