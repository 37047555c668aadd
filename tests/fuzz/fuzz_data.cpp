// libFuzzer target: the untrusted value decoder (bindings/codec_data.cpp), which takes a node's
// results on the host. Beyond not crashing, it checks what the decoder promises:
//   - what it pushes is data only: no function, no userdata, no table with a metatable;
//   - on an error it leaves the stack as it was;
//   - decoding n bytes allocates at most kDataCostFactor * n + kDataCostSlack bytes of Lua
//     memory (counted by the state's allocator).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "bindings/codec.hpp"

using namespace skyhost;

namespace {

struct Counter {
  size_t now = 0;
  size_t peak = 0;
};

void* alloc(void* ud, void* p, size_t osize, size_t nsize) {
  auto* c = static_cast<Counter*>(ud);
  size_t old = p ? osize : 0;
  if (nsize == 0) {
    std::free(p);
    c->now -= old;
    return nullptr;
  }
  void* q = std::realloc(p, nsize);
  if (q == nullptr) return nullptr;
  c->now = c->now - old + nsize;
  c->peak = std::max(c->peak, c->now);
  return q;
}

// Every value reachable from the one at `idx` is data.
void check_data(lua_State* L, int idx, std::set<const void*>& seen) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      return;
    case LUA_TTABLE:
      break;
    default:
      std::abort();  // code, userdata or a thread came out of the decoder
  }
  if (!seen.insert(lua_topointer(L, idx)).second) return;
  if (lua_getmetatable(L, idx)) std::abort();
  if (!lua_checkstack(L, 4)) std::abort();
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    check_data(L, -2, seen);
    check_data(L, -1, seen);
    lua_pop(L, 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Counter c;
  lua_State* L = lua_newstate(alloc, &c);
  if (L == nullptr) return 0;
  lua_gc(L, LUA_GCSTOP);  // count every allocation: nothing is freed while decoding
  size_t before = c.now;
  c.peak = c.now;
  wire::Reader r(reinterpret_cast<const char*>(data), size);
  try {
    // Odd sizes come with two small strings sent apart (wire::Blob) for blob tags to use.
    static std::string a = "abc", b = "blob5";
    std::vector<wire::Blob> blobs{{a.data(), a.size(), nullptr, 0},
                                  {b.data(), b.size(), nullptr, 0}};
    int n = codec::decode_data(L, r, size % 2 == 1 ? &blobs : nullptr);
    if (lua_gettop(L) != n) std::abort();
    std::set<const void*> seen;
    for (int i = 1; i <= n; ++i) check_data(L, i, seen);
  } catch (const codec::DecodeError&) {
    if (lua_gettop(L) != 0) std::abort();
  }
  if (c.peak - before > codec::kDataCostFactor * size + codec::kDataCostSlack) std::abort();
  lua_close(L);
  return 0;
}
