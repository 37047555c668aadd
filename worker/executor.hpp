// One executor: a thread with its own Lua state that runs tasks from the queue, one at a time.
// A node runs `concurrency` of them, so a slow task holds one executor, not the node.
#pragma once

#include "worker/shared.hpp"

namespace skyworker {

class Supervisor;
struct Slot;

/// Runs tasks until the queue closes or the supervisor replaces this executor.
void run_executor(Shared& shared, Supervisor& supervisor, Slot& slot);

}  // namespace skyworker
