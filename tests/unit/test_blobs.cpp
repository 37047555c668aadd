// Large strings sent apart (wire::Blob): the frame decoder reads their bytes into a store's
// storage, the bindings' store makes that storage the Lua string itself (bindings/blob_store.cpp),
// and the data decoder hands those strings over. Checked here: the bytes land in order around
// other frames, a header alone reserves nothing, lying blobs are refused, and a Lua string
// filled after it was made behaves as any other (equal, and the same table key: this fails if
// the Lua linked in hashed long strings when making them).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bindings/blob_store.hpp"
#include "bindings/codec.hpp"
#include "host/links/wire.hpp"

using namespace skyhost;
using namespace skyhost::wire;

namespace {

std::string frame(Msg type, const std::string& body) {
  Writer w;
  size_t mark = w.begin_frame(type);
  w.put_raw(body.data(), body.size());
  w.end_frame(mark);
  return w.take();
}

std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 4096 + seed) & 0xff);
  return s;
}

// Storage in plain strings, counting what it was asked for.
struct TestStore : BlobStore {
  std::vector<size_t> made;
  Blob make(size_t n) override {
    made.push_back(n);
    auto s = std::make_shared<std::string>(n, '\0');
    return Blob{s->data(), n, s, 0};
  }
};

struct State {
  lua_State* L = luaL_newstate();
  State() { luaL_openlibs(L); }
  ~State() { lua_close(L); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

}  // namespace

TEST_CASE("blobs: read into the store, between other frames, in any pieces", "[wire][blob]") {
  std::string big = pattern(kBlobMin + 1, 3), other = pattern(kBlobMin * 3, 4);
  std::string stream = frame(Msg::kLog, "before") + frame(Msg::kBlob, big) +
                       frame(Msg::kBlob, other) + frame(Msg::kResult, "after");
  for (size_t piece : {size_t{1} << 16, size_t{7777}, stream.size()}) {
    auto store = std::make_shared<TestStore>();
    FrameDecoder d;
    d.set_store(store);
    std::vector<std::string> got;
    std::vector<Blob> blobs;
    for (size_t at = 0; at < stream.size(); at += piece) {
      size_t n = std::min(piece, stream.size() - at);
      // half through feed(), half through space()/commit() as the local link reads
      if ((at / piece) % 2 == 0) {
        d.feed(stream.data() + at, n);
      } else {
        for (size_t done = 0; done < n;) {
          std::string_view room = d.space(n - done);
          size_t k = std::min(room.size(), n - done);
          std::memcpy(const_cast<char*>(room.data()), stream.data() + at + done, k);
          d.commit(k);
          done += k;
        }
      }
      Frame f;
      while (d.next(f)) {
        got.emplace_back(1, static_cast<char>(f.type));
        if (f.type == Msg::kBlob) {
          blobs.push_back(d.take_blob(f.body));
        } else {
          got.back() += std::string(f.body);
        }
      }
    }
    REQUIRE(got.size() == 4);
    CHECK(got[0] == std::string(1, char(Msg::kLog)) + "before");
    CHECK(got[3] == std::string(1, char(Msg::kResult)) + "after");
    REQUIRE(blobs.size() == 2);
    CHECK(std::string_view(blobs[0].data, blobs[0].size) == big);
    CHECK(std::string_view(blobs[1].data, blobs[1].size) == other);
    CHECK(store->made == std::vector<size_t>{big.size(), other.size()});
    CHECK(d.pending() == 0);
  }
}

TEST_CASE("blobs: a header reserves nothing; small or lying blobs are refused", "[wire][blob]") {
  auto store = std::make_shared<TestStore>();
  FrameDecoder d;
  d.set_store(store);
  Writer w;
  w.put_u32(kMaxFrame);  // announces 1 GiB
  w.put_u8(static_cast<uint8_t>(Msg::kBlob));
  w.put_raw(std::string(100000, 'x').data(), 100000);
  d.feed(w.data().data(), w.data().size());
  Frame f;
  CHECK_FALSE(d.next(f));
  CHECK(store->made.empty());               // not before an eighth of it arrived
  CHECK(d.capacity() < 4 * 100000 + 4096);  // and the buffer grew with what arrived only

  FrameDecoder small;
  small.set_store(store);
  std::string tiny = frame(Msg::kBlob, std::string(kBlobMin - 1, 'y'));
  small.feed(tiny.data(), tiny.size());
  CHECK_THROWS_AS(small.next(f), Error);
  CHECK(store->made.empty());

  // Without a store, a blob is an ordinary frame: take_blob copies it.
  FrameDecoder plain;
  std::string one = frame(Msg::kBlob, "abc");
  plain.feed(one.data(), one.size());
  REQUIRE(plain.next(f));
  Blob b = plain.take_blob(f.body);
  CHECK(std::string_view(b.data, b.size) == "abc");
  CHECK(b.token == 0);
}

TEST_CASE("blobs: a filled Lua string equals and keys as one Lua made", "[codec][blob]") {
  State st;
  lua_State* L = st.L;
  auto store = codec::make_blob_store(L);
  for (size_t n : {kBlobMin, kBlobMin + 1, size_t{3} << 20}) {
    std::string want = pattern(n, static_cast<int>(n & 0xff));
    Blob b = store->make(n);
    REQUIRE(b.token != 0);
    std::memcpy(b.data, want.data(), n);
    REQUIRE(lua_rawgeti(L, LUA_REGISTRYINDEX, b.token) == LUA_TSTRING);  // [filled]
    lua_pushlstring(L, want.data(), want.size());                        // [filled, made]
    CHECK(lua_rawequal(L, -1, -2));
    // As a key: set through one, found through the other, both ways.
    lua_newtable(L);  // [filled, made, t]
    lua_pushvalue(L, -3);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
    lua_pushvalue(L, -2);
    CHECK(lua_rawget(L, -2) == LUA_TNUMBER);
    CHECK(lua_tointeger(L, -1) == 1);
    lua_pop(L, 1);
    lua_newtable(L);  // [filled, made, t, u]
    lua_pushvalue(L, -3);
    lua_pushinteger(L, 2);
    lua_rawset(L, -3);
    lua_pushvalue(L, -4);
    CHECK(lua_rawget(L, -2) == LUA_TNUMBER);
    CHECK(lua_tointeger(L, -1) == 2);
    lua_settop(L, 0);
  }
  lua_gc(L, LUA_GCCOLLECT);
}

TEST_CASE("blobs: the data decoder uses each blob once, in order, as sent", "[codec][blob]") {
  State st;
  lua_State* L = st.L;
  std::string a = pattern(kBlobMin, 1), b = pattern(kBlobMin * 2 + 5, 2);
  lua_pushlstring(L, a.data(), a.size());
  lua_createtable(L, 0, 2);
  lua_pushlstring(L, b.data(), b.size());
  lua_setfield(L, -2, "b");
  lua_pushstring(L, "small");
  lua_setfield(L, -2, "s");
  Writer w;
  w.set_blobs(true);
  codec::encode_values(L, 1, 2, w, codec::Mode::kData);
  w.set_blobs(false);
  REQUIRE(w.blobs().size() == 2);
  CHECK(w.blob_bytes() == a.size() + b.size());
  CHECK(w.size() < 100);  // the large strings are not in the body
  std::string body = w.data();
  lua_settop(L, 0);

  auto store = codec::make_blob_store(L);
  auto fill = [&](const std::string& s) {
    Blob x = store->make(s.size());
    std::memcpy(x.data, s.data(), s.size());
    return x;
  };
  std::vector<Blob> blobs{fill(a), fill(b)};
  Reader r(body);
  REQUIRE(codec::decode_data(L, r, &blobs) == 2);
  size_t n = 0;
  const char* p = lua_tolstring(L, 1, &n);
  CHECK(std::string_view(p, n) == a);
  CHECK(p == blobs[0].data);  // the string the bytes were read into: no copy
  lua_getfield(L, 2, "b");
  p = lua_tolstring(L, -1, &n);
  CHECK(std::string_view(p, n) == b);
  lua_getfield(L, 2, "s");
  CHECK(std::string(lua_tostring(L, -1)) == "small");
  lua_settop(L, 0);

  // Lies: a blob missing, one left over, one of another size, blob tags where none came.
  std::vector<Blob> one{fill(a)};
  Reader r1(body);
  CHECK_THROWS_WITH(codec::decode_data(L, r1, &one), Catch::Contains("did not arrive"));
  std::vector<Blob> three{fill(a), fill(b), fill(a)};
  Reader r2(body);
  CHECK_THROWS_WITH(codec::decode_data(L, r2, &three), Catch::Contains("3 large strings"));
  std::vector<Blob> swapped{fill(b), fill(a)};
  Reader r3(body);
  CHECK_THROWS_WITH(codec::decode_data(L, r3, &swapped), Catch::Contains("announced as"));
  Reader r4(body);
  CHECK_THROWS_AS(codec::decode_data(L, r4), codec::DecodeError);
  CHECK(lua_gettop(L) == 0);
}
