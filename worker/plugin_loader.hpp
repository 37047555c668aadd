// Plugin functions: how the host names one (a Def body), loading it from its library once per
// process, and one call of it on codec argument bytes. The plugin host uses these for every
// isolated call; an executor uses them directly for a plugin made with isolate = false.
#pragma once

#include <skyhost/plugin.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "worker/shm.hpp"

namespace skyworker {

/// A plugin function as the host names it: sky.plugin(path, symbol).
struct PluginDef {
  std::string name;     // for messages
  std::string path;     // the file on the host (a local node loads it from there)
  std::string symbol;   // the record is sky_plugin_<symbol>
  std::string hash;     // content hash: an SSH node has it in ~/.skyhost/plugins/<hash>/
  bool isolate = true;  // false: runs in the executor's thread, not in a plugin host
};

/// A Def body that names a plugin instead of holding a Lua function: a value count of 0 (never
/// a function), u8 version 1, u8 flags (1: isolate), then name, path, symbol, hash as
/// u32-length-prefixed strings.
bool is_plugin_def(std::string_view closure);
/// Throws skyhost::wire::Error when malformed.
PluginDef parse_plugin_def(std::string_view closure);

enum class PluginStatus { kOk, kError, kLoadError, kDied };

/// What a call gave: result bytes (codec values) or an error message.
struct PluginReply {
  PluginStatus status = PluginStatus::kError;
  std::string text;                // the inline result bytes, or the message
  std::shared_ptr<Region> region;  // large result bytes
  std::string_view body() const { return region ? region->view() : std::string_view(text); }
};

/// Libraries opened by this process. Thread-safe.
class PluginLoader {
 public:
  /// The record of `def`'s function, its library opened at first use (from the node's copy of
  /// the file when it has one); null with `why` set (the loader's message, the path) if not.
  const sky_plugin* load(const PluginDef& def, std::string& why);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, void*> libs_;
  std::unordered_map<std::string, const sky_plugin*> records_;  // by path, symbol, hash
};

/// Calls the plugin on codec argument bytes. A crash takes the calling process down.
PluginReply call_plugin(const sky_plugin* rec, std::string_view args);

}  // namespace skyworker
