// The public Session and Channel handles, and the run/upload helpers built on exec.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/ssh/session.hpp"
#include "host/ssh/session_core.hpp"

namespace skyhost::ssh {
namespace {

// Quotes for a POSIX shell: 'it'\''s'
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// cat into a temporary name next to the target, then rename: a reader never sees half a file,
// and replacing a running binary works (no "text file busy").
std::string upload_command(const std::string& path, int mode) {
  char octal[16];
  std::snprintf(octal, sizeof octal, "%04o", mode & 07777);
  std::string q = shell_quote(path);
  std::string script = "t=" + q + ".skyhost-tmp.$$; umask 077; if cat > \"$t\" && chmod " + octal +
                       " \"$t\" && mv -f \"$t\" " + q +
                       "; then exit 0; else rm -f \"$t\"; exit 1; fi";
  return "sh -c " + shell_quote(script);
}

std::function<void(const ExitInfo&)> upload_exit(std::shared_ptr<std::string> err,
                                                 std::shared_ptr<std::string> local_error,
                                                 std::string what,
                                                 std::function<void(const Status&)> done) {
  return [err, local_error, what, done = std::move(done)](const ExitInfo& e) {
    if (local_error && !local_error->empty()) {
      done(Status::failure(*local_error));
    } else if (e.ok()) {
      done(Status{});
    } else if (!e.error.empty()) {
      done(Status::failure(e.error + " (" + what + ")", e.timed_out));
    } else {
      std::string why =
          e.signal.empty() ? "exit status " + std::to_string(e.code) : "signal " + e.signal;
      std::string detail = *err;
      while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) {
        detail.pop_back();
      }
      done(Status::failure(what + " failed (" + why + ")" + (detail.empty() ? "" : ": " + detail)));
    }
  };
}

// Streams a local file into an upload channel, keeping a few MiB queued.
struct FileFeeder : std::enable_shared_from_this<FileFeeder> {
  static constexpr size_t kChunk = 1u << 20;
  static constexpr size_t kQueued = 4u << 20;
  int fd = -1;
  std::weak_ptr<ChannelCore> channel;
  std::shared_ptr<std::string> error = std::make_shared<std::string>();
  std::string path;

  ~FileFeeder() {
    if (fd >= 0) ::close(fd);
  }

  // Local reads are synchronous (page cache, 1 MiB at a time) while the network side is not.
  void feed() {
    auto c = channel.lock();
    if (!c || !c->session || fd < 0) return;
    while (c->pending_bytes < kQueued && fd >= 0) {
      std::string buf(kChunk, '\0');
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        *error = c->session->describe() + ": reading " + path + ": " + std::strerror(errno);
        ::close(fd);
        fd = -1;
        c->session->channel_close(*c, false);
        return;
      }
      if (n == 0) {
        ::close(fd);
        fd = -1;
        c->session->channel_send_eof(*c);
        return;
      }
      buf.resize(static_cast<size_t>(n));
      auto self = shared_from_this();
      c->session->channel_write(*c, std::move(buf), [self](const Status& st) {
        if (st.ok()) self->feed();
      });
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- Channel

Channel::Channel(std::shared_ptr<ChannelCore> core) : core_(std::move(core)) {}

Channel::Channel(Channel&& other) noexcept : core_(std::move(other.core_)) {}

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    Channel old(std::move(*this));
    core_ = std::move(other.core_);
  }
  return *this;
}

Channel::~Channel() {
  if (!core_) return;
  if (core_->session) {
    core_->session->channel_close(*core_, true);
  } else {
    core_->silence();
  }
}

void Channel::on_data(std::function<void(std::string_view)> cb) {
  if (core_) core_->on_data = std::move(cb);
}

void Channel::on_stderr(std::function<void(std::string_view)> cb) {
  if (core_) core_->on_stderr = std::move(cb);
}

void Channel::on_exit(std::function<void(const ExitInfo&)> cb) {
  if (core_) core_->on_exit = std::move(cb);
}

void Channel::write(std::string data, std::function<void(const Status&)> done) {
  // with the session destroyed nothing runs any more, callbacks included
  if (core_ && core_->session)
    core_->session->channel_write(*core_, std::move(data), std::move(done));
}

void Channel::send_eof() {
  if (core_ && core_->session) core_->session->channel_send_eof(*core_);
}

size_t Channel::pending_bytes() const {
  return core_ ? core_->pending_bytes : 0;
}

void Channel::close() {
  if (core_ && core_->session && !core_->close_requested) {
    core_->session->channel_close(*core_, false);
  }
}

bool Channel::is_open() const {
  return core_ && core_->session && !core_->exit_reported && !core_->close_requested;
}

// ---------------------------------------------------------------- Session

Session::Session(uv_loop_t* loop, SessionOptions options)
    : core_(new SessionCore(loop, std::move(options))) {}

Session::~Session() {
  core_->destroy();
}

void Session::connect(std::function<void(const Status&)> done) {
  core_->connect(std::move(done));
}

void Session::on_lost(std::function<void(const std::string&)> cb) {
  core_->on_lost = std::move(cb);
}

Channel Session::exec(std::string command, ExecOptions options) {
  return Channel(core_->exec(std::move(command), options));
}

void Session::run(std::string command, RunOptions options, std::function<void(RunResult)> done) {
  ExecOptions eo;
  eo.timeout = options.timeout;
  auto c = core_->exec(std::move(command), eo);
  auto acc = std::make_shared<RunResult>();
  size_t max = options.max_output;
  auto collect = [acc, max](std::string* to) {
    return [acc, max, to](std::string_view d) {
      size_t room = max > to->size() ? max - to->size() : 0;
      if (d.size() > room) acc->truncated = true;
      to->append(d.substr(0, room));
    };
  };
  c->on_data = collect(&acc->out);
  c->on_stderr = collect(&acc->err);
  c->on_exit = [acc, done = std::move(done)](const ExitInfo& e) {
    acc->exit = e;
    if (done) done(std::move(*acc));
  };
  if (!options.input.empty()) core_->channel_write(*c, std::move(options.input), {});
  core_->channel_send_eof(*c);
}

void Session::upload_bytes(std::string data, std::string remote_path, UploadOptions options,
                           std::function<void(const Status&)> done) {
  ExecOptions eo;
  eo.timeout = options.timeout;
  auto c = core_->exec(upload_command(remote_path, options.mode), eo);
  auto err = std::make_shared<std::string>();
  c->on_stderr = [err](std::string_view d) {
    if (err->size() < 4096) err->append(d.substr(0, 4096 - err->size()));
  };
  c->on_exit =
      upload_exit(err, nullptr, core_->describe() + ": upload to " + remote_path, std::move(done));
  core_->channel_write(*c, std::move(data), {});
  core_->channel_send_eof(*c);
}

void Session::upload_file(std::string local_path, std::string remote_path, UploadOptions options,
                          std::function<void(const Status&)> done) {
  int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::string why =
        core_->describe() + ": cannot upload " + local_path + ": " + std::strerror(errno);
    if (done) core_->defer([done = std::move(done), why] { done(Status::failure(why)); });
    return;
  }
  ExecOptions eo;
  eo.timeout = options.timeout;
  auto c = core_->exec(upload_command(remote_path, options.mode), eo);
  auto feeder = std::make_shared<FileFeeder>();
  feeder->fd = fd;
  feeder->channel = c;
  feeder->path = local_path;
  auto err = std::make_shared<std::string>();
  c->on_stderr = [err](std::string_view d) {
    if (err->size() < 4096) err->append(d.substr(0, 4096 - err->size()));
  };
  c->on_exit = upload_exit(err, feeder->error,
                           core_->describe() + ": upload of " + local_path + " to " + remote_path,
                           std::move(done));
  feeder->feed();
}

void Session::close(std::function<void()> done) {
  core_->close(std::move(done));
}

bool Session::is_ready() const {
  return core_->state == SessionState::ready;
}

std::string Session::host_key() const {
  return core_->host_key_line;
}

std::string Session::host_key_fingerprint() const {
  return core_->host_key_fp;
}

std::string Session::algorithms() const {
  return core_->algorithms;
}

const SessionOptions& Session::options() const {
  return core_->options();
}

std::string Session::describe() const {
  return core_->describe();
}

SessionStats Session::stats() const {
  return core_->stats;
}

}  // namespace skyhost::ssh
