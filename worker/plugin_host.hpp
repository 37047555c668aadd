// Plugins run in a plugin host: a child process of the worker, one per executor, started at the
// executor's first plugin call and again after it dies. A plugin that crashes, aborts or exits
// takes its host down, not the worker: the call fails with how the host died, and the next call
// starts a new one. The executor and its host talk over a socket pair (SOCK_SEQPACKET): a
// request names the plugin and carries the argument bytes, a reply carries the result bytes or
// an error. Bytes above 64 KiB travel as a memfd (worker/shm.hpp), never copied.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "worker/plugin_loader.hpp"
#include "worker/shm.hpp"

namespace skyworker {

/// `skyworker --plugin-host PARENT_PID`: serves calls on descriptor 3 until it closes.
int plugin_host_main(int argc, char** argv);

class PluginClient {
 public:
  using Status = PluginStatus;
  using Reply = PluginReply;

  PluginClient() = default;
  PluginClient(const PluginClient&) = delete;
  PluginClient& operator=(const PluginClient&) = delete;
  ~PluginClient();

  struct Arg {
    std::string_view bytes;          // codec argument values
    std::shared_ptr<Region> region;  // holding `bytes`, when they are in shared memory
  };
  using Done = std::function<void(size_t index, Reply&& reply)>;

  /// Calls the plugin once per argument list, in order, pipelined (one wake-up of the host for
  /// many small calls); `done` gets each reply as it arrives. Never throws for the plugin's own
  /// failures: an error reply says what happened, kDied how the host died.
  void call_all(const PluginDef& def, std::vector<Arg> args, const Done& done);
  /// One call.
  Reply call(const PluginDef& def, std::string_view args, const std::shared_ptr<Region>& region);
  /// The plugin host's process id, 0 when none runs.
  pid_t pid() const { return pid_; }
  /// Ends the plugin host (killed, reaped) so that the next call starts a new one: after the
  /// supervisor killed it, a call must not meet its death as if the call had caused it.
  void restart();

 private:
  bool start(std::string& why);
  /// Sends calls from..from+count-1 of `args` as one request.
  bool send(const PluginDef& def, const std::vector<Arg>& args, size_t from, size_t count);
  /// Hands the replies of the next message to `done` (as calls next, next + 1, ...); false,
  /// with a kDied reply for call `next`, when the host died instead.
  bool receive(const Done& done, size_t& next);
  std::string reap();

  int sock_ = -1;
  pid_t pid_ = 0;
  std::string buf_;  // a reply
  std::string out_;  // a request
};

}  // namespace skyworker
