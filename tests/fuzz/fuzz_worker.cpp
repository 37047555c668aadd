// libFuzzer target: the worker's handling of the host's stream (worker/inbox.cpp): frames split,
// an Init checked (decoded as data in a scratch Lua state), requests handed on. Whatever the
// bytes, the inbox hands on well-formed requests or throws Fatal; any other exception, a crash
// or a leak is a finding. What the requests then run is the host's code by design, so the
// handler here only records them.
//
// Input: one control byte (limit and chunk size), then the stream.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "worker/inbox.hpp"

using namespace skyworker;

namespace {

struct Stop {};

struct Recorder : Inbox::Handler {
  int inits = 0;
  size_t bytes = 0;
  void init(std::string init) override {
    if (!check_init(init).empty()) std::abort();  // only a checked Init is handed on
    ++inits;
  }
  void define(uint64_t, std::string b) override { bytes += b.size(); }
  void task(TaskMsg t) override { bytes += t.args.size(); }
  void cancel(uint64_t) override {}
  void shutdown() override { throw Stop{}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint32_t limits[] = {skyhost::wire::kMaxFrame, 4096, 1024, 64};
  uint32_t max = limits[data[0] & 3];
  size_t chunk = 1 + (data[0] >> 2) * 5;
  Recorder rec;
  Inbox inbox(max, rec);
  try {
    for (size_t at = 1; at < size; at += chunk) {
      inbox.feed(reinterpret_cast<const char*>(data) + at, std::min(chunk, size - at));
    }
  } catch (const Fatal& e) {
    if (std::string(e.what()).empty()) std::abort();
  } catch (const Stop&) {
  }
  if (rec.inits > 1) std::abort();  // later Inits are ignored
  return 0;
}
