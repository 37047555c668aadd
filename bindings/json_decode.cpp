// JSON text → Lua values for skyhost.json (bindings/json.cpp). A SAX handler builds the tables
// on the Lua stack as the parser goes: no intermediate document, and the depth limit stops a
// hostile input before it costs memory.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/json.hpp"

namespace skyhost {

namespace {

using nlohmann::json;

class LuaSax {
 public:
  LuaSax(lua_State* L, int max_depth, int null_idx, int array_mt_idx)
      : L_(L), max_depth_(max_depth), null_(null_idx), array_mt_(array_mt_idx) {}

  bool null() { return lua_pushvalue(L_, null_), add(); }
  bool boolean(bool b) { return lua_pushboolean(L_, b), add(); }
  bool number_integer(json::number_integer_t v) { return lua_pushinteger(L_, v), add(); }
  bool number_unsigned(json::number_unsigned_t v) {
    // Past the integer range a JSON integer becomes the nearest float.
    if (v <= static_cast<uint64_t>(std::numeric_limits<lua_Integer>::max())) {
      lua_pushinteger(L_, static_cast<lua_Integer>(v));
    } else {
      lua_pushnumber(L_, static_cast<lua_Number>(v));
    }
    return add();
  }
  bool number_float(json::number_float_t v, const std::string&) {
    return lua_pushnumber(L_, v), add();
  }
  bool string(std::string& s) { return lua_pushlstring(L_, s.data(), s.size()), add(); }
  bool binary(json::binary_t&) { return false; }  // not in JSON text

  bool start_object(std::size_t) { return open(false); }
  bool key(std::string& k) { return lua_pushlstring(L_, k.data(), k.size()), true; }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(true); }
  bool end_array() { return close(); }

  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    position = pos;
    // "[json.exception.parse_error.101] parse error at line 1, column 4: syntax error ..."
    std::string what = e.what();
    auto at = what.find(" at line ");
    auto colon = at == std::string::npos ? at : what.find(": ", at);
    if (colon != std::string::npos) {
      where = what.substr(at + 4, colon - at - 4);
      reason = what.substr(colon + 2);
    } else {
      reason = what.substr(what.find(']') == std::string::npos ? 0 : what.find(']') + 2);
    }
    return false;
  }

  bool too_deep = false;
  std::size_t position = 0;
  std::string where;
  std::string reason;

 private:
  struct Frame {
    bool array;
    lua_Integer n;
  };

  /// Stores the value on top of the stack into the open container (a key is under it in an
  /// object); at top level it stays as the result.
  bool add() {
    if (frames_.empty()) return true;
    Frame& f = frames_.back();
    if (f.array) {
      lua_rawseti(L_, -2, ++f.n);  // [.., array]
    } else {
      lua_rawset(L_, -3);  // [.., object]
    }
    return true;
  }

  bool open(bool array) {
    if (static_cast<int>(frames_.size()) >= max_depth_) {
      too_deep = true;
      return false;
    }
    luaL_checkstack(L_, 3, "JSON nesting");
    lua_newtable(L_);  // [.., t]
    if (array) {
      lua_pushvalue(L_, array_mt_);
      lua_setmetatable(L_, -2);
    }
    frames_.push_back({array, 0});
    return true;
  }

  bool close() {
    frames_.pop_back();
    return add();
  }

  lua_State* L_;
  int max_depth_;
  int null_, array_mt_;
  std::vector<Frame> frames_;
};

/// Where the text first nests deeper than `max`: 1-based byte offset, line and column.
void deep_position(std::string_view text, int max, LuaSax& sax) {
  int depth = 0, line = 1;
  size_t line_start = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        i++;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '\n') {
      line++;
      line_start = i + 1;
    } else if ((c == '[' || c == '{') && ++depth > max) {
      sax.position = i + 1;
      sax.where = "line " + std::to_string(line) + ", column " + std::to_string(i + 1 - line_start);
      return;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
}

}  // namespace

int l_json_decode(lua_State* L) {
  size_t len = 0;
  const char* p = luaL_checklstring(L, 1, &len);
  int max_depth = json_max_depth(L, 2);
  lua_settop(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, kJsonNullKey);
  luaL_getmetatable(L, kJsonArrayMeta);  // [text, opts, null, array_mt]
  LuaSax sax(L, max_depth, 3, 4);
  if (json::sax_parse(p, p + len, &sax)) return 1;  // [text, opts, null, array_mt, value]
  if (sax.too_deep) {
    deep_position(std::string_view(p, len), max_depth, sax);
    sax.reason = "nesting deeper than " + std::to_string(max_depth);
  }
  lua_settop(L, 2);
  lua_pushnil(L);
  lua_pushfstring(L, "%s (byte %d): %s", sax.where.c_str(), static_cast<int>(sax.position),
                  sax.reason.c_str());
  lua_pushinteger(L, static_cast<lua_Integer>(sax.position));
  lua_pushstring(L, sax.reason.c_str());  // [text, opts, nil, err, position, reason]
  return 4;
}

}  // namespace skyhost
