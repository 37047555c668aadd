// The one way a host service hands the driver the outcome of an operation that finishes on the
// loop: the service starts it under a new wait id, and when it ends keeps a small typed result
// under that id and completes the wait; the binding takes the result once, after the driver saw
// the wait complete (stdlib/sky/internal/sched.lua). A result nobody takes dies with its service.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <utility>

#include "host/core/loop.hpp"

namespace skyhost {

template <typename Result>
class Completions {
 public:
  explicit Completions(Loop& loop) : loop_(loop) {}

  /// A wait id for an operation about to start.
  WaitId begin() { return loop_.new_wait(); }

  /// Keeps `result` for `id` and completes the wait. Called from the operation's callback.
  void finish(WaitId id, Result result) {
    results_.insert_or_assign(id, std::move(result));
    loop_.complete(id);
  }

  /// The result of `id`, once: nothing if it has not finished or was already taken.
  std::optional<Result> take(WaitId id) {
    auto it = results_.find(id);
    if (it == results_.end()) return std::nullopt;
    std::optional<Result> r(std::move(it->second));
    results_.erase(it);
    return r;
  }

  /// Drops the result of `id` (a wait its caller gave up on); false if there was none.
  bool discard(WaitId id) { return results_.erase(id) != 0; }

  /// Results finished and not taken yet.
  size_t unclaimed() const { return results_.size(); }

 private:
  Loop& loop_;
  std::map<WaitId, Result> results_;
};

}  // namespace skyhost
