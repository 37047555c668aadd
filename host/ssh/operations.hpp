// One SSH session's bootstrap operations as the Lua driver sees them: connect, run a step,
// upload a file, each under a wait id of the loop, each ending in a StepResult kept until taken
// (host/core/completions.hpp). A step's output is split into lines here and handed to `on_line`
// (the bindings turn them into BootstrapConsole events); its last 4 KiB are kept for the error.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "host/core/completions.hpp"
#include "host/ssh/session.hpp"

namespace skyhost::ssh {

struct StepResult {
  bool ok = false;
  std::string error;
  int code = -1;       // a step's exit status (-1: none)
  std::string signal;  // the signal that ended a step, if one did
  std::string tail;    // a step's last output, stdout and stderr together
};

class Operations {
 public:
  /// Called with a step's phase and each line it prints (without the line end).
  using LineSink = std::function<void(const std::string& phase, std::string line)>;

  Operations(Loop& loop, std::unique_ptr<Session> session, LineSink on_line);
  /// Steps still in flight end (their callbacks may record a result) before the session does.
  ~Operations();
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  WaitId connect();
  /// Runs `command`; `timeout` seconds (0: none) bound it.
  WaitId step(std::string command, std::string phase, double timeout);
  WaitId upload(std::string local_path, std::string remote_path, int mode);
  std::optional<StepResult> take(WaitId id) { return done_.take(id); }

  /// The session, or null once released.
  Session* session() { return session_.get(); }
  /// Hands the session over (to a pool); the operations object is then closed.
  std::unique_ptr<Session> release() { return std::move(session_); }

 private:
  Completions<StepResult> done_;
  std::unique_ptr<Session> session_;
  // Held here, not by their own callbacks, and declared after the session so that they are
  // destroyed before it.
  std::map<WaitId, Channel> steps_;
  LineSink on_line_;
};

}  // namespace skyhost::ssh
