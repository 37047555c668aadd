// Why filling a Lua string after lua_pushlstring is sound, and what it depends on:
//   - Lua 5.4 keeps strings longer than LUAI_MAXSHORTLEN (40 bytes) as "long" strings: they
//     are not interned and not hashed when made; their hash is computed the first time one is
//     used as a table key (luaS_hashlongstr), and two are compared by length and memcmp. So the
//     bytes of a long string that no Lua code has seen yet can change without breaking an
//     invariant: nothing was derived from them. Blobs are at least wire::kBlobMin (1 MiB).
//   - Lua 5.4's API can only make a string by copying bytes into it, so the string is made from
//     a read-only anonymous mapping that is never written: reading it maps the zero page, which
//     costs no memory. The string's own pages are touched once there; the frame's bytes are
//     then read into them.
//   - Until the decoder hands it to the script, the string is reachable only through the
//     registry (so, from Lua, only with the debug library), and the host reads into it only
//     from its loop, while no Lua code of the state runs.
// tests/unit/test_blobs.cpp checks it on the Lua linked in: a filled string is equal to
// the same bytes made by Lua and finds the same table slot, which would fail if Lua hashed a
// long string when making it. Another Lua version must pass that test before it is used.
#include "bindings/blob_store.hpp"

#include <sys/mman.h>

#include <new>

static_assert(LUA_VERSION_NUM == 504, "blob_store.cpp relies on Lua 5.4's long strings");

namespace skyhost::codec {

namespace {

struct MakeArgs {
  const char* src;
  size_t n;
  char* data = nullptr;
  int ref = LUA_NOREF;
};

// Run protected: making the string or its registry slot may raise a memory error.
int make_string(lua_State* T) {
  auto* a = static_cast<MakeArgs*>(lua_touserdata(T, 1));
  lua_pushlstring(T, a->src, a->n);  // [args, s]
  a->data = const_cast<char*>(lua_tostring(T, -1));
  a->ref = luaL_ref(T, LUA_REGISTRYINDEX);  // [args]
  return 0;
}

class LuaBlobStore : public wire::BlobStore, public std::enable_shared_from_this<LuaBlobStore> {
 public:
  explicit LuaBlobStore(lua_State* L) {
    thread_ = lua_newthread(L);                    // [.., T]
    thread_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);  // [..]
  }
  ~LuaBlobStore() override {
    if (zero_ != nullptr) munmap(zero_, zero_size_);
    luaL_unref(thread_, LUA_REGISTRYINDEX, thread_ref_);
  }
  LuaBlobStore(const LuaBlobStore&) = delete;
  LuaBlobStore& operator=(const LuaBlobStore&) = delete;

  wire::Blob make(size_t n) override {
    MakeArgs a{zeros(n), n};
    lua_State* T = thread_;
    // No collection while the loop is inside a callback: a step could run finalizers, that is
    // Lua code, from here. The data decoder charges the string's cost when it hands it over.
    bool running = lua_gc(T, LUA_GCISRUNNING) != 0;
    if (running) lua_gc(T, LUA_GCSTOP);
    lua_pushcfunction(T, make_string);
    lua_pushlightuserdata(T, &a);
    int rc = lua_pcall(T, 1, 0, 0);
    if (running) lua_gc(T, LUA_GCRESTART);
    if (rc != LUA_OK) {
      lua_settop(T, 0);
      throw std::bad_alloc();
    }
    // The blob keeps the store (and so its thread) alive, and frees the string's slot.
    auto self = shared_from_this();
    int ref = a.ref;
    std::shared_ptr<void> owner(
        a.data, [self, ref](void*) { luaL_unref(self->thread_, LUA_REGISTRYINDEX, ref); });
    return wire::Blob{a.data, n, std::move(owner), ref};
  }

 private:
  // `n` readable bytes that are never written: a mapping kept for the next blob too, so that
  // its page tables (the zero page, in huge pages where the kernel allows) are set up once.
  const char* zeros(size_t n) {
    if (n <= zero_size_) return zero_;
    if (zero_ != nullptr) munmap(zero_, zero_size_);
    zero_ = nullptr;
    zero_size_ = 0;
    size_t size = (n + (2u << 20) - 1) & ~((size_t{2} << 20) - 1);
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, size, MADV_HUGEPAGE);  // fewer faults if it works; fine if it does not
    zero_ = static_cast<char*>(p);
    zero_size_ = size;
    return zero_;
  }

  lua_State* thread_ = nullptr;
  int thread_ref_ = LUA_NOREF;
  char* zero_ = nullptr;
  size_t zero_size_ = 0;
};

}  // namespace

std::shared_ptr<wire::BlobStore> make_blob_store(lua_State* L) {
  return std::make_shared<LuaBlobStore>(L);
}

}  // namespace skyhost::codec
