// Commands a task runs with sky.sh: /bin/sh -c in a process group of its own, output streamed as
// Log events while it runs, a bounded tail kept for the result. Every running command's group is
// registered here, so the worker can end it with its task or with the worker.
#pragma once

#include <cstdint>

struct lua_State;

namespace skyworker {

/// Makes `require "skyworker.shell"` give the native half of sky.sh (worker/lua/sky.lua).
void preload_shell(lua_State* L);

/// Kills the process groups of every running command. Async-signal-safe (used on the way out).
void kill_all_commands() noexcept;

/// Kills the process groups of the commands `task` is running, and refuses any it starts later.
void kill_task_commands(uint64_t task) noexcept;

}  // namespace skyworker
