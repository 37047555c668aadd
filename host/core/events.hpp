// Events raised inside libuv callbacks, queued until the Lua driver delivers them to handlers.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace skyhost {

struct Event {
  std::string type;  // "TaskStarted", "TaskCompleted", "Log", "InstanceLost", ...
  int pool = 0;
  int node = -1;
  uint64_t task = 0;
  double duration = 0;  // seconds, for TaskCompleted
  bool ok = true;
  std::string text;    // log line, or why an instance was lost
  std::string phase;   // bootstrap step, for BootstrapConsole
  std::string stream;  // Log: "stdout" or "stderr"
  std::string name;    // Metric: what was measured, its value and unit
  std::string unit;
  double value = 0;

  Event() = default;
  Event(std::string t, int p, int n, uint64_t id = 0)
      : type(std::move(t)), pool(p), node(n), task(id) {}
};

}  // namespace skyhost
