// The worker's side of the stream from the host: bytes in, the host's requests out. Split from
// main.cpp so that a fuzz target (tests/fuzz/fuzz_worker.cpp) drives it with any bytes: whatever
// arrives, the inbox either hands a well-formed request to its handler or throws Fatal saying why
// the stream cannot go on. It never aborts and never holds more than what arrived.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "host/links/wire.hpp"
#include "worker/shared.hpp"

namespace skyworker {

/// The stream from the host cannot go on. The worker tells the host (a Fatal frame) and stderr,
/// then exits with status 3.
struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Inbox {
 public:
  struct Handler {
    virtual ~Handler() = default;
    /// The first Init, checked (check_init). Later ones are ignored.
    virtual void init(std::string init) = 0;
    virtual void define(uint64_t id, std::string bytes) = 0;
    virtual void task(TaskMsg t) = 0;
    /// The host no longer waits for this task: stop what it started.
    virtual void cancel(uint64_t task) = 0;
    /// The host asks the worker to stop.
    virtual void shutdown() = 0;
    /// Whether large arguments of tasks of `fn` go to shared memory (a plugin host maps them);
    /// otherwise they stay in the buffer they were read into, not copied.
    virtual bool shared_args(uint64_t fn) {
      (void)fn;
      return true;
    }
  };
  Inbox(uint32_t max_frame, Handler& h) : decoder_(max_frame), h_(h) {}
  /// Takes bytes read from the host and acts on every whole frame. Throws Fatal.
  void feed(const char* p, size_t n);
  /// Room to read at least `want` bytes into, where the frame decoder keeps them (no copy);
  /// then call received() with what was read. Throws Fatal when there is no memory for it.
  std::string_view space(size_t want);
  /// Acts on the `n` bytes read into space(). Throws Fatal.
  void received(size_t n);
  /// Bytes of a frame not yet whole (at the end of the stream: a frame cut short).
  size_t pending() const { return decoder_.pending(); }

 private:
  void on_frame(const skyhost::wire::Frame& f);
  template <typename Add>
  void deliver(Add&& add);
  skyhost::wire::FrameDecoder decoder_;
  Handler& h_;
  bool started_ = false;
};

/// Why `body` is not a valid Init (exactly one table of plain data: the node's identity), or "".
std::string check_init(std::string_view body);

}  // namespace skyworker
