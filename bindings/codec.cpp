// The encoder, in both modes. Decoding is in codec_decode.cpp (the host's own bytes) and
// codec_data.cpp (a node's results).
#include "bindings/codec.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "bindings/codec_format.hpp"

namespace skyhost::codec {

namespace {

using namespace format;

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
  Encoder(lua_State* L, wire::Writer& out, Mode mode)
      : L_(L), out_(out), buf_(out.data()), data_(mode == Mode::kData) {}
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
  [[noreturn]] void fail(const std::string& what, const char* why = nullptr);
  // In data mode: what would carry code, refused with the reason.
  [[noreturn]] void fail_code(const std::string& what) {
    fail(what,
         "a task returns data only (nil, booleans, numbers, strings, tables without "
         "metatables): the host never runs code that a node sends");
  }
  std::string describe(const Seg& seg);

  lua_State* L_;
  wire::Writer& out_;
  std::string& buf_;
  bool data_;
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
    if (!data_) {
      push_names(L_);  // [seen, names]
      names_ = lua_gettop(L_);
    }
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
      if (out_.take_blob(std::string_view(s, n))) {  // its bytes go in a frame of their own
        out_.put_u8(kBlob);
        return out_.put_varint(n);
      }
      out_.put_u8(kString);
      return out_.put_string(std::string_view(s, n));
    }
    case LUA_TTABLE:
      return table(idx);
    case LUA_TFUNCTION:
      if (data_) fail_code("function");
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
  if (data_) return false;                             // no names: data is sent by value
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
  if (p == globals_) {
    if (data_) fail_code("the global table");
    return out_.put_u8(kGlobals);
  }
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
  if (!lua_getmetatable(L_, idx)) {
    out_.put_u8(kNil);
  } else {  // [mt]
    if (data_) fail_code("a table with a metatable");
    child({Seg::kMeta, 0, 0, nullptr}, lua_gettop(L_));
    lua_pop(L_, 1);
  }
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
      return (data_ ? "result " : "argument ") + std::to_string(seg.n);
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
void Encoder::fail(const std::string& what, const char* why) {
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
  throw EncodeError((data_ ? "cannot return " : "cannot send ") + what +
                    (where.empty() ? "" : " (" + where + ")") +
                    (why ? std::string(": ") + why : ""));
}

}  // namespace

void encode_values(lua_State* L, int first, int n, wire::Writer& out, Mode mode) {
  int top = lua_gettop(L);
  size_t size = out.size();
  try {
    Encoder(L, out, mode).encode(n > 0 ? lua_absindex(L, first) : 0, n);
  } catch (const std::exception&) {
    // Only C++ exceptions: a Lua error unwinding through here owns the stack top.
    lua_settop(L, top);
    out.data().resize(size);
    throw;
  }
  lua_settop(L, top);
}

}  // namespace skyhost::codec
