// What a node's tasks and the commands they start write on fds 1 and 2 reaches the host as Log
// events, line by line, tagged with the stream. The protocol has already moved to private
// descriptors; here fds 1 and 2 become pipes that a thread reads. The worker's own messages keep
// the original stderr (a local host's terminal, or an SSH channel's stderr that explains an exit).
#pragma once

#include <cstdint>
#include <string_view>

#include "worker/shared.hpp"

struct lua_State;

namespace skyworker {

/// Log streams, as the Log frame's last byte says.
enum Stream : uint8_t { kStdout = 1, kStderr = 2 };

/// Queues one Log frame: a line of `task` (0: not a task's own output) on `stream`.
void send_log(Output& out, uint64_t task, Stream stream, std::string_view line);

/// Replaces fds 1 and 2 with pipes read by a thread. Call once, before any other thread starts.
void start_capture(Shared& shared);

/// Makes io.stdout/io.stderr of a task's Lua state write to the captured descriptors.
void bind_lua_stdio(lua_State* L);

/// Before the worker ends: flushes C stdio, sends every line the pipes still hold (a last line
/// without its newline too), and waits until the frames are written. Bounded by a second or so.
void drain_output(Shared& shared);

}  // namespace skyworker
