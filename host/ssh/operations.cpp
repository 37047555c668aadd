#include "host/ssh/operations.hpp"

namespace skyhost::ssh {

namespace {

constexpr size_t kTailBytes = 4096;

StepResult from_status(const Status& st) {
  StepResult r;
  r.ok = st.ok();
  r.error = st.error;
  return r;
}

}  // namespace

Operations::Operations(Loop& loop, std::unique_ptr<Session> session, LineSink on_line)
    : done_(loop), session_(std::move(session)), on_line_(std::move(on_line)) {}

Operations::~Operations() {
  steps_.clear();
  session_.reset();
}

WaitId Operations::connect() {
  WaitId id = done_.begin();
  session_->connect([this, id](const Status& st) { done_.finish(id, from_status(st)); });
  return id;
}

WaitId Operations::step(std::string command, std::string phase, double timeout) {
  WaitId id = done_.begin();
  ExecOptions eo;
  eo.timeout = timeout;
  Channel& ch = steps_.emplace(id, session_->exec(std::move(command), eo)).first->second;
  auto tail = std::make_shared<std::string>();
  auto partial = std::make_shared<std::string>();
  auto on_bytes = [this, tail, partial, phase](std::string_view d) {
    tail->append(d);
    if (tail->size() > kTailBytes) tail->erase(0, tail->size() - kTailBytes);
    partial->append(d);
    size_t start = 0, nl;
    while ((nl = partial->find('\n', start)) != std::string::npos) {
      on_line_(phase, partial->substr(start, nl - start));
      start = nl + 1;
    }
    partial->erase(0, start);
  };
  ch.on_data(on_bytes);
  ch.on_stderr(on_bytes);
  ch.on_exit([this, id, tail](const ExitInfo& e) {
    StepResult r;
    r.ok = e.ok();
    r.error = e.error;
    r.code = e.code;
    r.signal = e.signal;
    r.tail = *tail;
    done_.finish(id, std::move(r));
    steps_.erase(id);  // destroys the channel whose callback this is: allowed by host/ssh
  });
  ch.send_eof();
  return id;
}

WaitId Operations::upload(std::string local_path, std::string remote_path, int mode) {
  WaitId id = done_.begin();
  UploadOptions uo;
  uo.mode = mode;
  session_->upload_file(std::move(local_path), std::move(remote_path), uo,
                        [this, id](const Status& st) { done_.finish(id, from_status(st)); });
  return id;
}

}  // namespace skyhost::ssh
