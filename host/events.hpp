// Events raised inside libuv callbacks, queued until the Lua driver delivers them to handlers.
#pragma once

#include <cstdint>
#include <string>

namespace skyhost {

struct Event {
  std::string type;  // "TaskStarted", "TaskCompleted", "Log", "InstanceLost", ...
  int pool = 0;
  int node = -1;
  uint64_t task = 0;
  double duration = 0;  // seconds, for TaskCompleted
  bool ok = true;
  std::string text;  // log line, or why an instance was lost
};

}  // namespace skyhost
