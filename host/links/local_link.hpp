// A worker process on this machine, spoken to over its stdin/stdout pipes.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "host/links/link.hpp"

namespace skyhost {

class LocalLink final : public Link {
 public:
  /// Starts `argv[0]` with `argv`. Throws std::runtime_error if it cannot be spawned.
  static std::unique_ptr<LocalLink> spawn(uv_loop_t* loop, const std::vector<std::string>& argv);
  ~LocalLink() override;

  void flush() override;
  void close() override;
  void kill() override;
  bool gone() const override;
  int pid() const override;

 private:
  // Lives until libuv has closed every handle, which can be after the LocalLink is destroyed.
  struct State;
  explicit LocalLink(State* s) : state_(s) {}
  State* state_;
  bool broken_ = false;
};

}  // namespace skyhost
