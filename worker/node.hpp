// What a worker knows about its node and tells its tasks: the pool's identity as environment
// variables (for every command a task runs, torchrun's conventions included), the machine's
// facts (CPUs, memory, GPUs), and metrics sampled every few seconds and sent as Metric frames.
#pragma once

#include "worker/shared.hpp"

struct lua_State;

namespace skyworker {

/// At the first Init: exports the identity to the environment, reads the node's facts and starts
/// the metrics thread. Call before the executors start (setenv is not thread-safe).
void start_node(Shared& shared);

/// Adds gpu_count, gpu_model, gpu_memory_gb, cpu_count, memory_gb to the table at `idx`.
void push_facts(lua_State* L, int idx);

/// A TCP port free on this machine now (0 if none could be found).
int free_port();
/// `skyworker --free-port`: prints one.
int print_free_port();

}  // namespace skyworker
