#include "host/links/ssh_link.hpp"

namespace skyhost {

namespace {

std::string last_line(const std::string& text) {
  size_t end = text.find_last_not_of("\r\n");
  if (end == std::string::npos) return "";
  size_t start = text.find_last_of('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end + 1 - (start == std::string::npos ? 0 : start + 1));
}

}  // namespace

SshLink::SshLink(std::unique_ptr<ssh::Session> session, std::string command)
    : session_(std::move(session)) {
  channel_ = session_->exec(std::move(command));
  channel_.on_data([this](std::string_view d) {
    if (gone_) return;
    std::string why = receive(d.data(), d.size());
    if (!why.empty()) {
      closed(why);
      channel_.close();
    }
  });
  // The worker's stderr carries what its process printed besides the protocol: keep the end of
  // it to explain an unexpected exit.
  channel_.on_stderr([this](std::string_view d) {
    stderr_tail_.append(d);
    if (stderr_tail_.size() > 2048) stderr_tail_.erase(0, stderr_tail_.size() - 2048);
  });
  channel_.on_exit([this](const ssh::ExitInfo& e) {
    std::string why;
    if (!e.error.empty()) {
      why = e.error;
    } else if (!e.signal.empty()) {
      why = "worker killed by signal " + e.signal;
    } else if (e.code != 0) {
      why = "worker exited with status " + std::to_string(e.code);
    }
    if (!why.empty()) {
      std::string last = last_line(stderr_tail_);
      if (!last.empty()) why += " (worker said: " + last + ")";
    }
    closed(why);
  });
  session_->on_lost([this](const std::string& reason) { closed(reason); });
}

SshLink::~SshLink() {
  auto beside = std::move(beside_);
  for (auto& [id, stop] : beside) stop();
}

uint64_t SshLink::keep_beside(std::function<void()> stop) {
  beside_.emplace(++last_held_, std::move(stop));
  return last_held_;
}

uint64_t SshLink::hold(ssh::Channel ch) {
  held_.emplace(++last_held_, std::move(ch));
  return last_held_;
}

void SshLink::closed(const std::string& reason) {
  if (gone_) return;
  gone_ = true;
  if (on_closed) on_closed(reason);
}

void SshLink::flush() {
  if (out_.size() == 0) return;
  if (gone_) {
    out_.clear();
    out_keep_.clear();
    return;
  }
  if (out_.refs().empty()) {
    channel_.write(out_.take());
  } else {  // the SSH layer queues a string of its own: gather the referenced bytes into it
    std::string all;
    all.reserve(out_.size());
    out_.segments([&](const char* p, size_t n) { all.append(p, n); });
    out_.clear();
    channel_.write(std::move(all));
  }
  out_keep_.clear();
}

void SshLink::close() {
  if (!gone_) channel_.send_eof();
}

void SshLink::kill() {
  channel_.close();  // on_exit reports "closed"
  session_->close();
}

}  // namespace skyhost
