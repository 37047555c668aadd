// Plugins on the executor's side: a task whose function is a plugin runs in the executor's
// plugin host without touching Lua; a plugin handle called from a Lua task (`gemm(a, b)` inside
// a sky.fn on the node) goes through the `skyworker.plugin` module to the same host.
#pragma once

#include <lua.hpp>
#include <string_view>

#include "worker/shared.hpp"

namespace skyworker::plugins {

/// Prepares an executor's Lua state; call before `require "sky"` (the worker's sky module uses
/// `skyworker.plugin` for plugin handles).
void attach(Shared& shared, lua_State* L);

/// Runs a task whose closure is a plugin reference (is_plugin_def) and sends its result.
void run_task(Shared& shared, const TaskMsg& task, std::string_view closure);

/// This executor's plugin host is ended, and the next plugin call starts a new one.
void restart_host();

}  // namespace skyworker::plugins
