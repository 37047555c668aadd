// Shared by bindings/json.cpp (the module, the encoder) and bindings/json_decode.cpp.
#pragma once

#include <lua.hpp>

namespace skyhost {

/// Metatable (by name in the registry) marking a table as a JSON array.
inline constexpr const char* kJsonArrayMeta = "sky.json.array";
/// Registry key of the sentinel that stands for JSON null.
inline constexpr const char* kJsonNullKey = "skyhost.json.null";
/// Containers nested deeper than this are refused both ways, unless opts.max_depth says.
inline constexpr int kJsonDefaultDepth = 500;

/// opts.max_depth of the options table at `opts` (none: the default).
int json_max_depth(lua_State* L, int opts);

/// json.decode(text[, {max_depth=}]) → value | nil, err, byte position, reason
int l_json_decode(lua_State* L);

}  // namespace skyhost
