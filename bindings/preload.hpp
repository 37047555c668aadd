// Makes embedded Lua modules requireable: package.preload[name] loads the module's source under
// its chunk name, so tracebacks show "stdlib/sky/pool/init.lua:12".
#pragma once

#include <lua.hpp>
#include <vector>

#include "bindings/embedded.hpp"

namespace skyhost {

void preload_embedded(lua_State* L, const std::vector<EmbeddedModule>& modules);

}  // namespace skyhost
