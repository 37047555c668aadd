// A link to one worker: the byte stream its frames travel on. A local worker is reached through
// the pipes of a child process (LocalLink); a remote one through an SSH exec channel.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host/links/wire.hpp"

namespace skyhost {

class Link {
 public:
  virtual ~Link() = default;

  /// Frames queued here go out together at the next flush(): one write for many frames.
  wire::Writer& out() { return out_; }
  /// Keeps `bytes` alive until what out() holds now is written: its refs point into them.
  void keep(std::shared_ptr<const void> bytes) { out_keep_.push_back(std::move(bytes)); }
  /// Sends what out() holds. Never blocks.
  virtual void flush() = 0;
  /// Asks the worker to stop (closes its input); `kill` ends it at once.
  virtual void close() = 0;
  virtual void kill() = 0;
  /// True once the worker is gone and its stream closed.
  virtual bool gone() const = 0;
  /// Operating-system process id where there is one (local workers), else 0.
  virtual int pid() const { return 0; }
  /// The largest frame accepted from the worker; a larger header ends the link.
  void set_max_frame(uint32_t n) { in_.set_max(n); }

  /// The bytes of `part`, a piece of the frame being handed to on_frame, as memory of their
  /// own: a large frame's buffer is handed over, not copied (wire::FrameDecoder::take).
  wire::Payload take(std::string_view part) { return in_.take(part); }
  /// Large strings sent apart are read into `store`'s storage (wire::Blob).
  void set_blob_store(std::shared_ptr<wire::BlobStore> store) { in_.set_store(std::move(store)); }
  /// The blob of a kBlob frame being handed to on_frame (wire::FrameDecoder::take_blob).
  wire::Blob take_blob(std::string_view body) { return in_.take_blob(body); }

  /// Called for each whole frame received, from a libuv callback.
  std::function<void(const wire::Frame&)> on_frame;
  /// Called once when the stream ends or fails, with the reason ("" for a clean exit).
  std::function<void(const std::string& reason)> on_closed;

 protected:
  /// Feeds bytes read from the worker and hands each whole frame to on_frame. Returns "" or why
  /// the stream cannot go on (a malformed frame, one over the limit, no memory to hold it): a
  /// worker's bytes never throw past the link.
  std::string receive(const char* p, size_t n);
  /// Room to read the worker's bytes into, where the decoder keeps them (no copy); empty if
  /// there is no memory for it (then read elsewhere and receive() that).
  std::string_view read_space(size_t want);
  /// Like receive(), for `n` bytes read into what read_space() returned.
  std::string receive_read(size_t n);

  wire::Writer out_;
  std::vector<std::shared_ptr<const void>> out_keep_;
  wire::FrameDecoder in_;

 private:
  template <typename Add>
  std::string deliver(Add&& add);
};

}  // namespace skyhost
