// Lua modules compiled into a binary by cmake/embed_lua.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace skyhost {

struct EmbeddedModule {
  std::string_view name;   // module name for require, e.g. "sky.pool"
  std::string_view chunk;  // chunk name for tracebacks, e.g. "@stdlib/sky/pool/init.lua"
  std::string_view source;
};

/// The host's stdlib and providers (stdlib/**, providers/**).
std::vector<EmbeddedModule> host_modules();
/// The worker's Lua (worker/lua/**).
std::vector<EmbeddedModule> worker_modules();

}  // namespace skyhost
