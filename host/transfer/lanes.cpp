// One file in pieces over several SSH sessions (lanes.hpp). Each piece is one `dd` on the node
// reading or writing that byte range, so pieces need no order and a cut one is redone alone.
// Threads share only the Plan (a queue under a mutex, the stop flag) and the local file, written
// or read with pwrite/pread at each piece's offset; each extra session lives on its thread's loop.
#include "host/transfer/lanes.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "host/transfer/transfer_util.hpp"

namespace skyhost::transfer_detail {

namespace {

constexpr uint64_t kPiece = uint64_t(32) << 20;
constexpr int kCuts = 4;              // times one piece may be cut before the transfer fails
constexpr size_t kRead = 1u << 20;    // read from the local file at a time (put)
constexpr size_t kQueued = 4u << 20;  // most bytes waiting for a session (put)

struct Piece {
  uint64_t off = 0, len = 0;
  int cuts = 0;
};

// What the lanes share.
struct Plan {
  bool put = false;
  int fd = -1;
  std::string remote;
  std::atomic<bool> stop{false};  // a failure ended the transfer: lanes take nothing more
  std::mutex mu;                  // guards todo and error
  std::deque<Piece> todo;
  std::string error;

  std::optional<Piece> take() {
    std::lock_guard<std::mutex> g(mu);
    if (stop || todo.empty()) return std::nullopt;
    Piece p = todo.front();
    todo.pop_front();
    return p;
  }
  bool has_todo() {
    std::lock_guard<std::mutex> g(mu);
    return !todo.empty();
  }
  void fail(const std::string& why) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) error = why;
    stop = true;
  }
  // A piece cut after `moved` of its bytes were in place: the rest goes back, first in line.
  bool give_back(Piece p, uint64_t moved, const std::string& why) {
    std::lock_guard<std::mutex> g(mu);
    if (++p.cuts > kCuts) {
      if (error.empty()) error = why + " (cut " + std::to_string(kCuts + 1) + " times)";
      stop = true;
      return false;
    }
    if (moved < p.len) todo.push_front(Piece{p.off + moved, p.len - moved, p.cuts});
    return true;
  }
  std::string command(const Piece& p) const {
    std::string off = std::to_string(p.off);
    // exec: a killed dd must reach the channel as the signal, not as a shell's exit status
    if (put)
      return "exec dd of=" + quote(remote) + " bs=1M oflag=seek_bytes conv=notrunc seek=" + off +
             " status=none";
    return "exec dd if=" + quote(remote) + " bs=1M iflag=skip_bytes,count_bytes skip=" + off +
           " count=" + std::to_string(p.len) + " status=none";
  }
};

// bytes of the piece now in place; cut: the channel was cut (worth another try)
using PieceDone = std::function<void(uint64_t moved, bool cut, const std::string& why)>;

// One piece over one exec channel.
struct Drive : std::enable_shared_from_this<Drive> {
  std::shared_ptr<Plan> plan;
  ssh::Channel* ch = nullptr;  // valid until `finished`
  Piece piece;
  PieceDone done;
  uint64_t moved = 0;  // get: bytes written here; put: bytes handed to the channel
  bool finished = false;
  std::string local_error, err;

  void arrived(std::string_view d) {
    if (!local_error.empty()) return;
    if (d.size() > piece.len - moved) return stop_with("the node sent more than the piece");
    while (!d.empty()) {
      ssize_t n = ::pwrite(plan->fd, d.data(), d.size(), static_cast<off_t>(piece.off + moved));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return stop_with(std::string("cannot write: ") + std::strerror(errno));
      moved += static_cast<uint64_t>(n);
      d.remove_prefix(static_cast<size_t>(n));
    }
  }
  void feed() {
    while (!finished && local_error.empty() && ch->pending_bytes() < kQueued) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kRead, piece.len - moved));
      if (want == 0) return ch->send_eof();
      std::string buf(want, '\0');
      ssize_t n = ::pread(plan->fd, buf.data(), want, static_cast<off_t>(piece.off + moved));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return stop_with(n < 0 ? std::string("cannot read: ") + std::strerror(errno)
                               : "the local file got shorter");
      buf.resize(static_cast<size_t>(n));
      moved += static_cast<uint64_t>(n);
      auto self = shared_from_this();
      if (moved == piece.len) {
        ch->write(std::move(buf));
        return ch->send_eof();
      }
      ch->write(std::move(buf), [self](const ssh::Status& st) {
        if (st.ok() && !self->finished) self->feed();
      });
    }
  }
  void stop_with(std::string why) {
    local_error = std::move(why);
    ch->close();  // on_exit reports it
  }
  void ended(const ssh::ExitInfo& e) {
    finished = true;
    if (!local_error.empty()) return done(0, false, local_error);
    if (e.ok() && moved == piece.len) return done(piece.len, false, "");
    while (!err.empty() && err.back() == '\n') err.pop_back();
    std::string what = (plan->put ? "cannot write " : "cannot read ") + plan->remote;
    if (e.ok())
      return done(moved, false, what + " on the node: it is shorter than when the transfer began");
    bool cut = !e.signal.empty() || (!e.error.empty() && e.code == -1);
    std::string why = !err.empty()        ? err
                      : !e.error.empty()  ? e.error
                      : !e.signal.empty() ? "killed by signal " + e.signal
                                          : "exit status " + std::to_string(e.code);
    // what a cut put handed over is unknown: its piece is sent again whole
    done(plan->put ? 0 : moved, cut, what + " on the node: " + why);
  }
};

void drive(ssh::Channel& ch, std::shared_ptr<Plan> plan, Piece p, PieceDone done) {
  auto d = std::make_shared<Drive>();
  d->plan = std::move(plan);
  d->ch = &ch;
  d->piece = p;
  d->done = std::move(done);
  ch.on_data([d](std::string_view s) { d->arrived(s); });
  ch.on_stderr([d](std::string_view s) {
    if (d->err.size() < 1024) d->err.append(s.substr(0, 1024 - d->err.size()));
  });
  ch.on_exit([d](const ssh::ExitInfo& e) { d->ended(e); });
  if (d->plan->put) {
    d->feed();
  } else {
    ch.send_eof();
  }
}

// Takes pieces one after another over one session until none is left.
class Lane {
 public:
  explicit Lane(std::shared_ptr<Plan> plan) : plan_(std::move(plan)) {}
  virtual ~Lane() = default;
  bool busy() const { return busy_; }

  void next() {
    std::optional<Piece> p = plan_->take();
    if (!p) {
      busy_ = false;
      return idle();
    }
    busy_ = true;
    Piece piece = *p;
    drive(open(plan_->command(piece)), plan_, piece,
          [this, piece](uint64_t moved, bool cut, const std::string& why) {
            release();
            if (!why.empty() && !cut) plan_->fail(why);
            if (cut && plan_->give_back(piece, moved, why) && !session_ready()) return lost();
            next();
          });
  }

 protected:
  virtual ssh::Channel& open(const std::string& command) = 0;
  virtual void release() = 0;  // the piece's channel ended (called from its own on_exit)
  virtual bool session_ready() = 0;
  virtual void lost() = 0;  // the session went with the piece
  virtual void idle() = 0;  // nothing to take now

  std::shared_ptr<Plan> plan_;
  bool busy_ = false;
};

class Group;

// The link's own session, on the loop thread: already connected, and the lane of last resort.
class MainLane final : public Lane {
 public:
  MainLane(std::shared_ptr<Plan> plan, SshLink* link, Group* group)
      : Lane(std::move(plan)), link_(link), group_(group) {}

 private:
  ssh::Channel& open(const std::string& command) override {
    held_ = link_->hold(link_->session().exec(command));
    return link_->held(held_);
  }
  void release() override { link_->release(held_); }
  bool session_ready() override { return link_->session().is_ready(); }
  void lost() override {
    plan_->fail("the connection to the node was lost");
    next();
  }
  void idle() override;

  SshLink* link_;
  Group* group_;
  uint64_t held_ = 0;
};

// An extra session with a loop of its own, on a thread of its own. Only that thread touches the
// session; the loop thread only wakes it (wake()) and joins it.
class ThreadLane final : public Lane {
 public:
  ThreadLane(std::shared_ptr<Plan> plan, ssh::SessionOptions options, std::function<void()> ended)
      : Lane(std::move(plan)), options_(std::move(options)), ended_(std::move(ended)) {}

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  // Makes the lane look at plan->stop now, even in the middle of a piece.
  void wake() {
    std::lock_guard<std::mutex> g(mu_);
    if (alive_) uv_async_send(&wake_);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wake_, [](uv_async_t* a) {
      auto* self = static_cast<ThreadLane*>(a->data);
      if (self->plan_->stop) self->teardown();
    });
    wake_.data = this;
    {
      std::lock_guard<std::mutex> g(mu_);
      alive_ = true;
    }
    connect();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    ended_();
  }
  void connect() {
    if (plan_->stop || connects_ >= kCuts) return end();
    connects_++;
    session_ = std::make_unique<ssh::Session>(&loop_, options_);
    session_->connect([this](const ssh::Status& st) {
      if (!st.ok()) return end();  // the other lanes take its share
      next();
    });
  }
  ssh::Channel& open(const std::string& command) override {
    channel_ = session_->exec(command);
    return channel_;
  }
  void release() override { channel_ = ssh::Channel(); }
  bool session_ready() override { return session_->is_ready(); }
  void lost() override {
    session_.reset();
    connect();
  }
  void idle() override { end(); }
  // Done: close the session properly (the node's sshd ends its process), then the loop ends.
  void end() {
    if (ending_) return;
    ending_ = true;
    channel_ = ssh::Channel();
    if (session_ && session_->is_ready()) return session_->close([this] { teardown(); });
    teardown();
  }
  // Ends at once: the session is dropped (sshd sees its connection close).
  void teardown() {
    if (torn_) return;
    torn_ = ending_ = true;
    channel_ = ssh::Channel();
    session_.reset();
    {
      std::lock_guard<std::mutex> g(mu_);
      alive_ = false;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
  }

  ssh::SessionOptions options_;
  std::function<void()> ended_;
  std::thread thread_;
  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::mutex mu_;
  bool alive_ = false;  // wake_ may be sent to (under mu_)
  std::unique_ptr<ssh::Session> session_;
  ssh::Channel channel_;
  int connects_ = 0;
  bool ending_ = false, torn_ = false;
};

// One transfer: the lanes, and the handle through which threads tell the loop one has ended.
class Group : public std::enable_shared_from_this<Group> {
 public:
  Group(SshLink& link, std::shared_ptr<Plan> plan, TransferDone done)
      : link_(&link), plan_(std::move(plan)), done_(std::move(done)) {}

  void start(uv_loop_t* loop, int lanes) {
    async_ = new uv_async_t;
    uv_async_init(loop, async_,
                  [](uv_async_t* a) { (*static_cast<std::shared_ptr<Group>*>(a->data))->check(); });
    async_->data = new std::shared_ptr<Group>(shared_from_this());  // freed when it closes
    beside_ = link_->keep_beside([this] { abandon(); });
    main_ = std::make_unique<MainLane>(plan_, link_, this);
    // Extra sessions: the same user and key, and only the host key the link's session verified.
    ssh::SessionOptions opt = link_->session().options();
    opt.pinned_host_keys = {link_->session().host_key()};
    opt.connect_timeout = std::min(opt.connect_timeout, 30.0);
    running_ = lanes - 1;
    for (int i = 1; i < lanes; ++i) {
      threads_.push_back(std::make_unique<ThreadLane>(plan_, opt, [this] {
        running_--;
        uv_async_send(async_);
      }));
    }
    for (auto& t : threads_) t->start();
    main_->next();
  }

  // On the loop thread, whenever a lane has ended or the link's lane is idle.
  void check() {
    if (finished_) return;
    if (plan_->stop)
      for (auto& t : threads_) t->wake();
    if (main_->busy()) return;
    if (!plan_->stop && plan_->has_todo()) return main_->next();  // pieces an ended lane left
    if (running_ > 0) return;
    finished_ = true;
    for (auto& t : threads_) t->join();
    link_->drop_beside(beside_);
    uv_close(reinterpret_cast<uv_handle_t*>(async_), closed);
    std::string why;
    {
      std::lock_guard<std::mutex> g(plan_->mu);
      why = plan_->error;
    }
    TransferDone d = std::move(done_);
    d(why);
  }

 private:
  // The link is being destroyed (its node is gone): end the extra sessions before it goes.
  void abandon() {
    if (finished_) return;
    finished_ = true;
    plan_->stop = true;
    for (auto& t : threads_) t->wake();
    for (auto& t : threads_) t->join();
    uv_close(reinterpret_cast<uv_handle_t*>(async_), closed);
  }
  static void closed(uv_handle_t* h) {
    delete static_cast<std::shared_ptr<Group>*>(h->data);
    delete reinterpret_cast<uv_async_t*>(h);
  }

  SshLink* link_;
  std::shared_ptr<Plan> plan_;
  TransferDone done_;
  uv_async_t* async_ = nullptr;
  uint64_t beside_ = 0;
  std::unique_ptr<MainLane> main_;
  std::vector<std::unique_ptr<ThreadLane>> threads_;
  std::atomic<int> running_{0};
  bool finished_ = false;
};

void MainLane::idle() {
  group_->check();
}

}  // namespace

int lane_count(int asked, uint64_t size) {
  if (size < kLaneMin) return 1;
  if (asked > 0) return std::min(asked, kLaneMax);
  unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(cores, 1u, 4u));
}

void move_ranges(SshLink& link, uv_loop_t* loop, bool put, int fd, const std::string& remote_path,
                 uint64_t size, int lanes, TransferDone done) {
  auto plan = std::make_shared<Plan>();
  plan->put = put;
  plan->fd = fd;
  plan->remote = remote_path;
  for (uint64_t off = 0; off < size; off += kPiece)
    plan->todo.push_back(Piece{off, std::min(kPiece, size - off), 0});
  if (link.session().host_key().empty()) lanes = 1;  // nothing to pin extra sessions to
  auto g = std::make_shared<Group>(link, std::move(plan), std::move(done));
  g->start(loop, std::max(lanes, 1));
}

}  // namespace skyhost::transfer_detail
