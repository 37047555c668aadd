// libFuzzer target: the frame splitter (host/links/wire.cpp FrameDecoder), both sides' first parser
// of a peer's bytes. Differential: the incremental decoder, fed the input in chunks, must give the
// frames (and the error) that a plain one-pass parse of the whole input gives, and hold no more
// memory than twice what it was fed, whether bytes are fed or read into its space, and whether
// bodies are viewed or taken. Odd-sized inputs are decoded with a BlobStore set, as the host's
// links are: a kBlob frame under kBlobMin is then an error (inputs are too short for a real
// blob to start, but a header announcing one must reserve no more than for any other frame).
//
// Input: one control byte (limit and chunk size), then the stream.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host/links/wire.hpp"

using namespace skyhost::wire;

namespace {

struct Parsed {
  std::vector<std::pair<uint8_t, std::string>> frames;
  bool error = false;
};

uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// The reference: whole frames in order; an error once a whole header is bad.
Parsed reference(const uint8_t* p, size_t n, uint32_t max, bool blobs) {
  Parsed out;
  size_t at = 0;
  while (n - at >= kHeader) {
    uint32_t len = load_u32(p + at);
    if (len == 0 || len > max) {
      out.error = true;
      return out;
    }
    if (blobs && n - at > kHeader && p[at + kHeader] == uint8_t(Msg::kBlob) && len - 1 < kBlobMin) {
      out.error = true;
      return out;
    }
    if (n - at - kHeader < len) break;
    out.frames.emplace_back(
        p[at + kHeader], std::string(reinterpret_cast<const char*>(p) + at + kHeader + 1, len - 1));
    at += kHeader + len;
  }
  return out;
}

// Storage for blobs; never reached by inputs this short, and checked if it ever is.
struct Store : BlobStore {
  Blob make(size_t n) override {
    if (n < kBlobMin) std::abort();
    auto s = std::make_shared<std::string>(n, '\0');
    return Blob{s->data(), n, s, 0};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint32_t limits[] = {kMaxFrame, 1024, 64, 5};
  uint32_t max = limits[data[0] & 3];
  size_t chunk = 1 + (data[0] >> 2) * 3;  // 1 .. 190 bytes a feed
  const uint8_t* p = data + 1;
  size_t n = size - 1;

  bool blobs = size % 2 == 1;
  Parsed want = reference(p, n, max, blobs);
  Parsed got;
  FrameDecoder d(max);
  if (blobs) d.set_store(std::make_shared<Store>());
  size_t fed = 0;
  try {
    for (size_t turn = 0; fed < n; ++turn) {
      size_t k = std::min(chunk, n - fed);
      if (turn % 2 == 0) {
        d.feed(reinterpret_cast<const char*>(p) + fed, k);
      } else {  // read in place, as the links do
        std::string_view room = d.space(k);
        if (room.size() < k) std::abort();
        std::copy(p + fed, p + fed + k, const_cast<char*>(room.data()));
        d.commit(k);
      }
      fed += k;
      if (d.capacity() > 2 * fed + 256) std::abort();  // held more than it was given
      Frame f;
      while (d.next(f)) {
        // Every other frame's body is taken, as a result's is: the same bytes, and the frames
        // behind it unharmed.
        if (got.frames.size() % 2 == 1) {
          Payload taken = d.take(f.body);
          got.frames.emplace_back(static_cast<uint8_t>(f.type), std::string(taken));
        } else {
          got.frames.emplace_back(static_cast<uint8_t>(f.type), std::string(f.body));
        }
      }
    }
  } catch (const Error&) {
    got.error = true;
  }
  if (got.error != want.error) std::abort();
  if (got.frames != want.frames) std::abort();
  return 0;
}
