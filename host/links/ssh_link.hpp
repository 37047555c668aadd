// A worker reached over SSH: its frames travel on the stdin/stdout of an exec channel. The link
// owns the session, so the connection lives exactly as long as the node.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "host/links/link.hpp"
#include "host/ssh/session.hpp"

namespace skyhost {

class SshLink final : public Link {
 public:
  /// Starts `command` (the worker) on `session`, which must be connected.
  SshLink(std::unique_ptr<ssh::Session> session, std::string command);
  ~SshLink() override;

  void flush() override;
  void close() override;
  void kill() override;
  bool gone() const override { return gone_; }
  /// The node's connection, for file transfers beside the worker's channel.
  ssh::Session& session() { return *session_; }
  /// Keeps a transfer's channel until release(id): the link owns it, so it is destroyed before
  /// the session, and never by its own callbacks' captures.
  uint64_t hold(ssh::Channel ch);
  ssh::Channel& held(uint64_t id) { return held_.at(id); }
  void release(uint64_t id) { held_.erase(id); }
  /// Work beside the link that must end before it does (a transfer's extra sessions on their
  /// threads): `stop` runs from ~SshLink unless dropped first, and returns once it has ended.
  uint64_t keep_beside(std::function<void()> stop);
  void drop_beside(uint64_t id) { beside_.erase(id); }

 private:
  void closed(const std::string& reason);

  std::unique_ptr<ssh::Session> session_;  // declared first: destroyed after the channel
  ssh::Channel channel_;
  std::map<uint64_t, ssh::Channel> held_;
  std::map<uint64_t, std::function<void()>> beside_;
  uint64_t last_held_ = 0;
  std::string stderr_tail_;
  bool gone_ = false;
};

}  // namespace skyhost
