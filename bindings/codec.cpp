#include "bindings/codec.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

// Wire layout (see codec.hpp for the tags):
//   list     = varint count, value*
//   table    = varint narr, varint nhash, value*narr (nil for holes), (key value)*nhash,
//              metatable (a table value, or nil for none)
//   function = u32 length, bytecode, u8 nups, upvalue*nups
//   upvalue  = 0 value | 1 varint function-id u8 index (shares that function's upvalue cell)
// Tables and functions take reference ids 0, 1, ... in the order their tags appear, so the
// decoder numbers them the same way without ids on the wire.
//
// Bytecode only ever comes from the trusted host. Loading it is made safe against corruption
// (ChunkCheck, then lua_load's own checks), but Lua does not verify the instructions, so a
// forged chunk that loads could still misbehave when run.

namespace skyhost::codec {

namespace {

// Tag bytes (wire format): scalar values, then values that involve references or names.
enum Tag : uint8_t { kNil, kFalse, kTrue, kInt, kFloat, kString };
enum ObjectTag : uint8_t { kTable = 6, kRef, kFunction, kGlobals, kNamed };
enum UpvalueMode : uint8_t { kUpValue = 0, kUpShared = 1 };

constexpr int kMaxDepth = 200;
// Decoder size hints are only hints; past this, tables grow as they fill.
constexpr uint64_t kHintCap = 1u << 20;
constexpr const char* kNamesKey = "skyhost.codec.names";
constexpr const char* kStdLibs[] = {"string", "table", "math",  "utf8",   "coroutine",
                                    "os",     "io",    "debug", "package"};

// ---- name map: library value -> "lib.field" -------------------------------------------------

// First name wins, so a function reachable from two places keeps its library name.
void add_name(lua_State* L, int names, int value, const std::string& name) {
  lua_pushvalue(L, value);                         // [v]
  if (lua_rawget(L, names) == LUA_TNIL) {          // [old]
    lua_pushvalue(L, value);                       // [old, v]
    lua_pushlstring(L, name.data(), name.size());  // [old, v, name]
    lua_rawset(L, names);                          // [old]
  }
  lua_pop(L, 1);  // []
}

// Names the function fields of `lib` (C functions only if asked) and, `levels` deep, its
// sub-tables with their own function fields.
void add_fields(lua_State* L, int names, int lib, const std::string& prefix, int levels,
                bool c_only) {
  lua_checkstack(L, 8);
  lua_pushnil(L);             // [k]
  while (lua_next(L, lib)) {  // [k, v]
    size_t n;
    int t = lua_type(L, -1);
    bool fn = t == LUA_TFUNCTION && (!c_only || lua_iscfunction(L, -1));
    bool sub = t == LUA_TTABLE && levels > 0;
    if ((fn || sub) && lua_type(L, -2) == LUA_TSTRING) {
      const char* k = lua_tolstring(L, -2, &n);
      if (!std::memchr(k, '.', n)) {
        std::string name = prefix + "." + std::string(k, n);
        add_name(L, names, lua_gettop(L), name);
        if (sub) add_fields(L, names, lua_gettop(L), name, levels - 1, false);
      }
    }
    lua_pop(L, 1);  // [k]
  }
}

// Pushes the value -> name map, building it on first use and again whenever package.loaded.sky
// is not the table it was built with (sky may load after the first send).
void push_names(lua_State* L) {
  lua_checkstack(L, 16);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE) {  // [loaded]
    lua_pop(L, 1);
    lua_newtable(L);
  }
  int loaded = lua_gettop(L);
  lua_pushliteral(L, "sky");
  lua_rawget(L, loaded);  // [loaded, sky]
  int sky = lua_gettop(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, kNamesKey) == LUA_TTABLE) {  // [loaded, sky, names]
    lua_rawgeti(L, -1, 1);                                            // [.., built_with]
    bool fresh = lua_rawequal(L, -1, sky);
    lua_pop(L, 1);
    if (fresh) {
      lua_replace(L, loaded);  // [names, sky]
      lua_pop(L, 1);           // [names]
      return;
    }
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 256);  // [loaded, sky, names]
  int names = lua_gettop(L);
  for (const char* lib : kStdLibs) {
    if (lua_getfield(L, loaded, lib) == LUA_TTABLE) {  // [.., lib]
      add_name(L, names, lua_gettop(L), lib);
      add_fields(L, names, lua_gettop(L), lib, 0, false);
    }
    lua_pop(L, 1);
  }
  if (lua_istable(L, sky)) {
    add_name(L, names, sky, "sky");
    add_fields(L, names, sky, "sky", 1, false);
  }
  // Base functions (pairs, print, ...) so `local pairs = pairs` travels; C functions only,
  // because user globals must not turn into names the receiver lacks.
  if (lua_getfield(L, loaded, "_G") == LUA_TTABLE) add_fields(L, names, names + 1, "_G", 0, true);
  lua_pop(L, 1);
  lua_pushvalue(L, sky);
  lua_rawseti(L, names, 1);  // which sky it was built with; real keys are never integers
  lua_pushvalue(L, names);
  lua_setfield(L, LUA_REGISTRYINDEX, kNamesKey);
  lua_replace(L, loaded);  // [names, sky]
  lua_pop(L, 1);           // [names]
}

// ---- encoder --------------------------------------------------------------------------------

int dump_writer(lua_State*, const void* p, size_t n, void* ud) {
  try {
    static_cast<std::string*>(ud)->append(static_cast<const char*>(p), n);
    return 0;
  } catch (...) {
    return 1;  // lua_dump reports it; an exception must not cross the Lua core
  }
}

// Where a value sits, for error messages: stack indices and numbers, so the happy path never
// builds a string.
struct Seg {
  enum Kind : uint8_t { kArg, kIndex, kField, kKey, kMeta, kUpvalue } kind;
  int idx;           // kField: stack index of the key; kUpvalue: of the function
  lua_Integer n;     // kArg: argument number; kIndex: array index; kUpvalue: upvalue index
  const char* name;  // kUpvalue: upvalue name
};

class Encoder {
 public:
  Encoder(lua_State* L, wire::Writer& out) : L_(L), out_(out), buf_(out.data()) {}
  void encode(int first, int n);

 private:
  void value(int idx);
  void table(int idx);
  void function(int idx);
  bool known(int idx, const void* p);
  void patch_varint(size_t pos, uint64_t v);
  void enter() {
    if (depth_ > kMaxDepth) fail("value nested more than " + std::to_string(kMaxDepth) + " levels");
    if (!lua_checkstack(L_, 8)) fail("value: Lua stack overflow");
  }
  bool lookup(const void* p, lua_Integer& id) {
    for (int i = 0; i < ncache_; ++i) {
      if (cache_[i].p == p) {
        id = cache_[i].id;
        return true;
      }
    }
    if (!spilled_) return false;
    bool found = lua_rawgetp(L_, seen_, p) != LUA_TNIL;  // [id?]
    if (found) id = lua_tointeger(L_, -1);
    lua_pop(L_, 1);
    return found;
  }
  void remember(const void* p, lua_Integer id) {
    if (ncache_ < kInline) {
      cache_[ncache_++] = {p, id};
      return;
    }
    if (!spilled_) {
      lua_createtable(L_, 0, 32);
      lua_replace(L_, seen_);
      spilled_ = true;
    }
    lua_pushinteger(L_, id);    // [id]
    lua_rawsetp(L_, seen_, p);  // []
  }
  void child(Seg seg, int idx) {
    path_[depth_++] = seg;
    value(idx);
    --depth_;
  }
  [[noreturn]] void fail(const std::string& what);
  std::string describe(const Seg& seg);

  lua_State* L_;
  wire::Writer& out_;
  std::string& buf_;
  int seen_ = 0;   // stack slot of the overflow seen-map (nil until the inline cache fills)
  int names_ = 0;  // stack slot of the name map
  const void* globals_ = nullptr;
  lua_Integer next_id_ = 0;
  int depth_ = 0;
  // Most messages hold a handful of tables and functions, and a linear scan costs far less
  // than a fresh Lua table. Keys are addresses of objects (or upvalue cells) kept alive by the
  // values being sent, so they stay unique for the whole call.
  static constexpr int kInline = 8;
  struct {
    const void* p;
    lua_Integer id;
  } cache_[kInline];
  int ncache_ = 0;
  bool spilled_ = false;
  Seg path_[kMaxDepth + 1];
};

void Encoder::encode(int first, int n) {
  out_.put_varint(static_cast<uint64_t>(n));
  bool objects = false;
  for (int i = 0; i < n && !objects; ++i) {
    int t = lua_type(L_, first + i);
    objects = t == LUA_TTABLE || t == LUA_TFUNCTION;
  }
  if (objects) {  // only tables and functions can hold references or names
    if (!lua_checkstack(L_, 16)) throw EncodeError("cannot send values: Lua stack overflow");
    lua_pushnil(L_);  // [seen=nil]
    seen_ = lua_gettop(L_);
    push_names(L_);  // [seen, names]
    names_ = lua_gettop(L_);
    lua_rawgeti(L_, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    globals_ = lua_topointer(L_, -1);
    lua_pop(L_, 1);
  }
  for (int i = 0; i < n; ++i) child({Seg::kArg, 0, i + 1, nullptr}, first + i);
}

void Encoder::value(int idx) {
  switch (lua_type(L_, idx)) {
    case LUA_TNIL:
      return out_.put_u8(kNil);
    case LUA_TBOOLEAN:
      return out_.put_u8(lua_toboolean(L_, idx) ? kTrue : kFalse);
    case LUA_TNUMBER:
      if (lua_isinteger(L_, idx)) {
        out_.put_u8(kInt);
        return out_.put_zigzag(lua_tointeger(L_, idx));
      }
      out_.put_u8(kFloat);
      return out_.put_f64(lua_tonumber(L_, idx));
    case LUA_TSTRING: {
      size_t n;
      const char* s = lua_tolstring(L_, idx, &n);
      out_.put_u8(kString);
      return out_.put_string(std::string_view(s, n));
    }
    case LUA_TTABLE:
      return table(idx);
    case LUA_TFUNCTION:
      return function(idx);
    case LUA_TLIGHTUSERDATA:
      fail("light userdata");
    default:
      fail(lua_typename(L_, lua_type(L_, idx)));
  }
}

// Writes a reference to a value sent earlier in this message, or the name of a library value.
bool Encoder::known(int idx, const void* p) {
  lua_Integer id;
  if (lookup(p, id)) {
    out_.put_u8(kRef);
    out_.put_varint(static_cast<uint64_t>(id));
    return true;
  }
  lua_pushvalue(L_, idx);                              // [v]
  bool found = lua_rawget(L_, names_) == LUA_TSTRING;  // [name?]
  if (found) {
    size_t n;
    const char* s = lua_tolstring(L_, -1, &n);
    out_.put_u8(kNamed);
    out_.put_string(std::string_view(s, n));
  }
  lua_pop(L_, 1);
  return found;
}

// Counts are written as a one-byte placeholder and patched once known; the rare count above
// 127 shifts what follows, which is cheaper than walking every table twice.
void Encoder::patch_varint(size_t pos, uint64_t v) {
  char b[10];
  size_t n = 0;
  for (; v >= 0x80; v >>= 7) b[n++] = static_cast<char>((v & 0x7f) | 0x80);
  b[n++] = static_cast<char>(v);
  buf_[pos] = b[0];
  if (n > 1) buf_.insert(pos + 1, b + 1, n - 1);
}

void Encoder::table(int idx) {
  const void* p = lua_topointer(L_, idx);
  if (p == globals_) return out_.put_u8(kGlobals);
  if (known(idx, p)) return;
  enter();
  remember(p, next_id_++);
  out_.put_u8(kTable);
  size_t counts_at = buf_.size();
  buf_.append(2, '\0');  // narr, nhash

  // The array part keeps holes as nils so the receiver sees the same length; a border far past
  // the real elements (sparse integer keys) is cut short and those keys go to the hash part.
  lua_Integer len = static_cast<lua_Integer>(lua_rawlen(L_, idx));
  lua_Integer narr = 0, present = 0, holes = 0;
  size_t narr_end = buf_.size();
  for (lua_Integer i = 1; i <= len; ++i) {
    if (lua_rawgeti(L_, idx, i) == LUA_TNIL) {  // [v]
      lua_pop(L_, 1);
      if (++holes > present + 64) break;
      out_.put_u8(kNil);
      continue;
    }
    child({Seg::kIndex, 0, i, nullptr}, lua_gettop(L_));
    lua_pop(L_, 1);
    ++present;
    narr = i;
    narr_end = buf_.size();
  }
  buf_.resize(narr_end);  // drops nils written before giving up on a sparse border

  uint64_t nhash = 0;
  lua_pushnil(L_);             // [k]
  while (lua_next(L_, idx)) {  // [k, v]
    int v = lua_gettop(L_);
    lua_Integer k = lua_isinteger(L_, v - 1) ? lua_tointeger(L_, v - 1) : 0;
    if (k < 1 || k > narr) {
      child({Seg::kKey, v - 1, 0, nullptr}, v - 1);
      child({Seg::kField, v - 1, 0, nullptr}, v);
      ++nhash;
    }
    lua_pop(L_, 1);  // [k]
  }
  if (!lua_getmetatable(L_, idx)) lua_pushnil(L_);  // [mt]
  child({Seg::kMeta, 0, 0, nullptr}, lua_gettop(L_));
  lua_pop(L_, 1);
  patch_varint(counts_at + 1, nhash);  // the later one first: patching may shift bytes
  patch_varint(counts_at, static_cast<uint64_t>(narr));
}

void Encoder::function(int idx) {
  const void* p = lua_topointer(L_, idx);
  if (known(idx, p)) return;
  if (lua_iscfunction(L_, idx)) fail("C function");
  enter();
  lua_Integer fid = next_id_++;
  // Registered before its upvalues so a local function that calls itself finds its own id.
  remember(p, fid);
  out_.put_u8(kFunction);
  size_t len_at = buf_.size();
  out_.put_u32(0);
  lua_pushvalue(L_, idx);  // [f]
  int rc = lua_dump(L_, dump_writer, &buf_, 0);
  lua_pop(L_, 1);  // []
  size_t len = buf_.size() - len_at - 4;
  if (rc != 0 || len > UINT32_MAX) fail("function (cannot dump its bytecode)");
  for (size_t i = 0; i < 4; ++i) buf_[len_at + i] = static_cast<char>((len >> (8 * i)) & 0xff);

  lua_Debug ar;
  lua_pushvalue(L_, idx);      // [f]
  lua_getinfo(L_, ">u", &ar);  // []
  out_.put_u8(ar.nups);
  for (int i = 1; i <= ar.nups; ++i) {
    // Closures that share a variable share one upvalue cell; keep that on the other side.
    const void* cell = lua_upvalueid(L_, idx, i);
    lua_Integer shared;
    if (cell && lookup(cell, shared)) {
      out_.put_u8(kUpShared);
      out_.put_varint(static_cast<uint64_t>(shared >> 8));
      out_.put_u8(static_cast<uint8_t>(shared & 0xff));
      continue;
    }
    if (cell) remember(cell, (fid << 8) | i);
    out_.put_u8(kUpValue);
    const char* name = lua_getupvalue(L_, idx, i);  // [v]
    child({Seg::kUpvalue, idx, i, name}, lua_gettop(L_));
    lua_pop(L_, 1);  // []
  }
}

std::string Encoder::describe(const Seg& seg) {
  int k = seg.idx;
  switch (seg.kind) {
    case Seg::kArg:
      return "argument " + std::to_string(seg.n);
    case Seg::kIndex:
      return "index " + std::to_string(seg.n);
    case Seg::kKey:
      return "a key";
    case Seg::kMeta:
      return "metatable";
    case Seg::kUpvalue: {
      lua_Debug ar;
      lua_pushvalue(L_, seg.idx);
      lua_getinfo(L_, ">S", &ar);
      return "upvalue '" + std::string(seg.name ? seg.name : "?") + "' of function defined at " +
             ar.short_src + ":" + std::to_string(ar.linedefined);
    }
    case Seg::kField:
      break;
  }
  if (lua_type(L_, k) == LUA_TSTRING) {
    size_t n;
    const char* s = lua_tolstring(L_, k, &n);
    std::string name(s, std::min<size_t>(n, 40));
    for (char& c : name)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return "field '" + name + (n > 40 ? "...'" : "'");
  }
  if (lua_isinteger(L_, k)) return "index " + std::to_string(lua_tointeger(L_, k));
  if (lua_type(L_, k) == LUA_TBOOLEAN)
    return lua_toboolean(L_, k) ? "field [true]" : "field [false]";
  return std::string("field [") + luaL_typename(L_, k) + " key]";
}

// Innermost segment first, up to the function that holds the value: its source position
// already says where it is.
void Encoder::fail(const std::string& what) {
  lua_checkstack(L_, 4);
  std::string where;
  for (int i = depth_ - 1; i >= 0; --i) {
    if (!where.empty()) where += " of ";
    if (i < depth_ - 8) {
      where += "...";
      break;
    }
    where += describe(path_[i]);
    if (path_[i].kind == Seg::kUpvalue) break;
  }
  throw EncodeError("cannot send " + what + (where.empty() ? "" : " (" + where + ")"));
}

// ---- decoder --------------------------------------------------------------------------------

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

void encode_values(lua_State* L, int first, int n, wire::Writer& out) {
  int top = lua_gettop(L);
  size_t size = out.size();
  try {
    Encoder(L, out).encode(n > 0 ? lua_absindex(L, first) : 0, n);
  } catch (const std::exception&) {
    // Only C++ exceptions: a Lua error unwinding through here owns the stack top.
    lua_settop(L, top);
    out.data().resize(size);
    throw;
  }
  lua_settop(L, top);
}

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
