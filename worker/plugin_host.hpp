// Plugins run in a plugin host: a child process of the worker, one per executor, started at the
// executor's first plugin call and again after it dies. A plugin that crashes, aborts or exits
// takes its host down, not the worker: the call fails with how the host died, and the next call
// starts a new one. The executor and its host talk over a socket pair (SOCK_SEQPACKET): a
// request names the plugin and carries the argument bytes, a reply carries the result bytes or
// an error. Bytes above 64 KiB travel as a memfd (worker/shm.hpp), never copied.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "worker/shm.hpp"

namespace skyworker {

/// A plugin function as the host names it: sky.plugin(path, symbol).
struct PluginDef {
  std::string name;    // for messages
  std::string path;    // the file on the host (a local node loads it from there)
  std::string symbol;  // the record is sky_plugin_<symbol>
  std::string hash;    // content hash: an SSH node has it in ~/.skyhost/plugins/<hash>/
};

/// A Def body that names a plugin instead of holding a Lua function: a value count of 0 (never
/// a function), u8 version 1, then name, path, symbol, hash as u32-length-prefixed strings.
bool is_plugin_def(std::string_view closure);
/// Throws skyhost::wire::Error when malformed.
PluginDef parse_plugin_def(std::string_view closure);

/// `skyworker --plugin-host PARENT_PID`: serves calls on descriptor 3 until it closes.
int plugin_host_main(int argc, char** argv);

class PluginClient {
 public:
  enum class Status { kOk, kError, kLoadError, kDied };
  struct Reply {
    Status status = Status::kError;
    std::string text;                // the inline result bytes, or the message
    std::shared_ptr<Region> region;  // large result bytes
    std::string_view body() const { return region ? region->view() : std::string_view(text); }
  };

  PluginClient() = default;
  PluginClient(const PluginClient&) = delete;
  PluginClient& operator=(const PluginClient&) = delete;
  ~PluginClient();

  /// Calls the plugin with codec argument bytes (in `region` when given). Never throws for the
  /// plugin's own failures: an error reply says what happened, kDied how the host died.
  Reply call(const PluginDef& def, std::string_view args, const std::shared_ptr<Region>& region);
  /// The plugin host's process id, 0 when none runs.
  pid_t pid() const { return pid_; }

 private:
  bool start(std::string& why);
  bool send(const PluginDef& def, std::string_view args, int fd);
  std::string reap();

  int sock_ = -1;
  pid_t pid_ = 0;
  std::string buf_;
};

}  // namespace skyworker
