// skyhost.json: Lua values ⇄ JSON text with nlohmann/json. The mapping (docs/http-json-state.md):
// objects ⇄ tables with string keys, arrays ⇄ sequences (a table carrying the array metatable
// is always an array; decoded arrays carry it), JSON null ⇄ the `null` sentinel, integers and
// floats kept apart. Primitives: encode/decode return nil, err on bad input; stdlib/sky/json.lua
// raises the structured errors.
#include "bindings/json.hpp"

#include <cmath>
#include <lua.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace skyhost {

namespace {

using nlohmann::json;

struct EncodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlongs, no
/// surrogates, nothing past U+10FFFF), or npos.
size_t bad_utf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > n) return i;
    if (len == 1) {
      i++;
      continue;
    }
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

}  // namespace

int json_max_depth(lua_State* L, int opts) {
  if (lua_type(L, opts) != LUA_TTABLE) return kJsonDefaultDepth;
  lua_getfield(L, opts, "max_depth");
  int d = lua_isnil(L, -1) ? kJsonDefaultDepth : static_cast<int>(luaL_checkinteger(L, -1));
  lua_pop(L, 1);
  luaL_argcheck(L, d > 0, opts, "max_depth must be positive");
  return d;
}

namespace {

/// Walks a Lua value into a json value; the path ($.a[2].b) names where a failure is.
class Encoder {
 public:
  Encoder(lua_State* L, int max_depth) : L_(L), max_depth_(max_depth) {
    lua_getfield(L, LUA_REGISTRYINDEX, kJsonNullKey);
    luaL_getmetatable(L, kJsonArrayMeta);  // [.., null, array_mt]
    array_mt_ = lua_gettop(L);
    null_ = array_mt_ - 1;
  }

  json value(int idx) {
    switch (lua_type(L_, idx)) {
      case LUA_TNIL:
        return nullptr;
      case LUA_TBOOLEAN:
        return static_cast<bool>(lua_toboolean(L_, idx));
      case LUA_TNUMBER: {
        if (lua_isinteger(L_, idx)) return static_cast<int64_t>(lua_tointeger(L_, idx));
        double d = lua_tonumber(L_, idx);
        if (!std::isfinite(d)) fail("cannot encode " + std::string(lua_tostring(L_, idx)));
        return d;
      }
      case LUA_TSTRING: {
        size_t len = 0;
        const char* s = lua_tolstring(L_, idx, &len);
        size_t bad = bad_utf8(reinterpret_cast<const unsigned char*>(s), len);
        if (bad != std::string::npos) {
          fail("invalid UTF-8 at byte " + std::to_string(bad + 1) + " of a string");
        }
        return std::string(s, len);
      }
      case LUA_TTABLE:
        return table(idx);
      default:
        if (lua_rawequal(L_, idx, null_)) return nullptr;
        fail(std::string("cannot encode a ") + luaL_typename(L_, idx) + " value");
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    std::string where = "$";
    for (const auto& p : path_) where += p;
    throw EncodeError(why + " at " + where);
  }

  json table(int idx) {
    if (static_cast<int>(path_.size()) >= max_depth_) {
      fail("nesting deeper than " + std::to_string(max_depth_));
    }
    const void* id = lua_topointer(L_, idx);
    if (!open_.insert(id).second) fail("cycle: a table contains itself");
    luaL_checkstack(L_, 4, "JSON nesting");
    bool marked = false;
    if (lua_getmetatable(L_, idx)) {  // [.., mt]
      marked = lua_rawequal(L_, -1, array_mt_);
      lua_pop(L_, 1);
    }
    // Classify the keys: a sequence 1..n is an array, string keys an object, anything else fails.
    lua_Integer count = 0, max_int = 0;
    bool strings = false;
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {  // [.., key, value]
      lua_pop(L_, 1);
      count++;
      if (lua_type(L_, -1) == LUA_TSTRING && !marked) {
        strings = true;
      } else if (lua_isinteger(L_, -1) && lua_tointeger(L_, -1) > 0) {
        max_int = std::max(max_int, lua_tointeger(L_, -1));
      } else {
        std::string k = key_name(-1);
        lua_pop(L_, 1);
        fail((marked ? "array has the non-index key " : "table has the non-string key ") + k);
      }
    }
    json out;
    if (count == 0) {
      out = marked ? json::array() : json::object();
    } else if (strings && max_int > 0) {
      fail("table mixes string keys with the integer key " + std::to_string(max_int));
    } else if (strings) {
      out = object(idx);
    } else if (max_int != count) {
      fail("array has a hole: key " + std::to_string(max_int) + " but " + std::to_string(count) +
           " elements (use sky.json.null for missing values)");
    } else {
      out = json::array();
      for (lua_Integer i = 1; i <= count; i++) {
        path_.push_back("[" + std::to_string(i) + "]");
        lua_rawgeti(L_, idx, i);  // [.., v]
        out.push_back(value(lua_gettop(L_)));
        lua_pop(L_, 1);
        path_.pop_back();
      }
    }
    open_.erase(id);
    return out;
  }

  json object(int idx) {
    json out = json::object();
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {  // [.., key, value]
      size_t len = 0;
      const char* k = lua_tolstring(L_, -2, &len);
      std::string key(k, len);
      path_.push_back("." + key);
      if (bad_utf8(reinterpret_cast<const unsigned char*>(k), len) != std::string::npos) {
        fail("invalid UTF-8 in a key");
      }
      out[key] = value(lua_gettop(L_));
      path_.pop_back();
      lua_pop(L_, 1);  // [.., key]
    }
    return out;
  }

  /// A key for an error message: numbers and booleans as written, other types by name.
  std::string key_name(int idx) {
    int t = lua_type(L_, idx);
    if (t != LUA_TNUMBER && t != LUA_TBOOLEAN && t != LUA_TSTRING) {
      return std::string("(a ") + luaL_typename(L_, idx) + ")";
    }
    lua_pushvalue(L_, idx);
    std::string s = luaL_tolstring(L_, -1, nullptr);
    lua_pop(L_, 2);
    return t == LUA_TSTRING ? "'" + s + "'" : s;
  }

  lua_State* L_;
  int max_depth_;
  int null_ = 0, array_mt_ = 0;
  std::vector<std::string> path_;
  std::unordered_set<const void*> open_;  // tables on the current path: a repeat is a cycle
};

/// json.encode(value[, {pretty=, max_depth=}]) → text | nil, err
int l_json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  bool pretty = false;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  int depth = json_max_depth(L, 2);
  lua_settop(L, 2);
  std::string text;
  try {
    Encoder enc(L, depth);  // [value, opts, null, array_mt]
    text = enc.value(1).dump(pretty ? 2 : -1);
  } catch (const EncodeError& e) {
    lua_settop(L, 2);
    lua_pushnil(L);
    lua_pushstring(L, e.what());  // [value, opts, nil, err]
    return 2;
  }
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

/// json.array(t) → t, marked to encode as an array even when empty.
int l_json_array(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);  // [t]
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, kJsonArrayMeta);
  return 1;
}

/// json.is_array(t) → whether t carries the array mark.
int l_json_is_array(lua_State* L) {
  bool yes = false;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, kJsonArrayMeta);
    yes = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, yes);
  return 1;
}

int l_json_null_tostring(lua_State* L) {
  lua_pushliteral(L, "sky.json.null");
  return 1;
}

const luaL_Reg kJson[] = {
    {"encode", l_json_encode},     {"decode", l_json_decode}, {"array", l_json_array},
    {"is_array", l_json_is_array}, {nullptr, nullptr},
};

}  // namespace

}  // namespace skyhost

extern "C" int luaopen_skyhost_json(lua_State* L) {
  using namespace skyhost;
  luaL_newmetatable(L, kJsonArrayMeta);
  lua_pop(L, 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, kJsonNullKey) == LUA_TNIL) {  // [nil]
    lua_pop(L, 1);
    lua_newuserdatauv(L, 0, 0);  // [null]
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "sky.json.null");
    lua_setfield(L, -2, "__name");
    lua_pushcfunction(L, l_json_null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, kJsonNullKey);  // [null]
  }
  luaL_newlib(L, kJson);  // [null, M]
  lua_insert(L, -2);
  lua_setfield(L, -2, "null");  // [M]
  return 1;
}
