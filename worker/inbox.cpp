#include "worker/inbox.hpp"

#include <algorithm>
#include <cstdint>
#include <lua.hpp>
#include <new>

#include "bindings/codec.hpp"

namespace skyworker {

namespace {

using skyhost::wire::Msg;

// Decodes an Init in a scratch state, in a protected call (a Lua memory error must not panic).
int l_check_init(lua_State* L) {
  auto* body = static_cast<std::string_view*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  const char* why = nullptr;
  try {
    skyhost::wire::Reader r(*body);
    int n = skyhost::codec::decode_data(L, r);
    if (n != 1 || !lua_istable(L, 1) || !r.empty()) why = "it is not one table of data";
  } catch (const std::exception& e) {
    lua_pushstring(L, e.what());
    return 1;
  }
  lua_pushstring(L, why ? why : "");
  return 1;
}

}  // namespace

std::string check_init(std::string_view body) {
  if (body.empty()) return "it is empty";
  lua_State* L = luaL_newstate();
  if (L == nullptr) return "no memory to read it";
  lua_pushcfunction(L, l_check_init);
  lua_pushlightuserdata(L, &body);
  std::string why;
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    why = "no memory to read it";
  } else if (const char* s = lua_tostring(L, -1)) {
    why = s;
  }
  lua_close(L);
  return why;
}

void Inbox::feed(const char* p, size_t n) {
  deliver([&] { decoder_.feed(p, n); });
}

std::string_view Inbox::space(size_t want) {
  try {
    return decoder_.space(want);
  } catch (const std::bad_alloc&) {
    throw Fatal("out of memory for a frame from the host (" +
                skyhost::wire::size_text(decoder_.pending()) + " received)");
  }
}

void Inbox::received(size_t n) {
  deliver([&] { decoder_.commit(n); });
}

template <typename Add>
void Inbox::deliver(Add&& add) {
  try {
    add();
    skyhost::wire::Frame f;
    while (decoder_.next(f)) on_frame(f);
  } catch (const skyhost::wire::Error& e) {
    throw Fatal(std::string("bad frame from host: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw Fatal("out of memory for a frame from the host (" +
                skyhost::wire::size_text(decoder_.pending()) + " received)");
  }
}

void Inbox::on_frame(const skyhost::wire::Frame& f) {
  skyhost::wire::Reader r(f.body);
  switch (f.type) {
    case Msg::kInit:
      if (started_) break;
      if (std::string why = check_init(f.body); !why.empty())
        throw Fatal("malformed Init frame from host: " + why);
      started_ = true;
      h_.init(std::string(f.body));
      break;
    case Msg::kDef: {
      uint64_t id = r.get_u64();
      h_.define(id, std::string(r.position(), r.remaining()));
      break;
    }
    case Msg::kTask: {
      TaskMsg t;
      t.id = r.get_u64();
      t.fn = r.get_u64();
      t.timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(r.get_varint(), UINT32_MAX));
      std::string_view args(r.position(), r.remaining());
      if (args.size() >= Bytes::kShared && !h_.shared_args(t.fn)) {
        t.args.adopt(decoder_.take(args));  // the buffer it was read into: no copy
      } else {
        t.args.assign(args.data(), args.size());
      }
      h_.task(std::move(t));
      break;
    }
    case Msg::kCancel:
      h_.cancel(r.get_u64());
      break;
    case Msg::kShutdown:
      h_.shutdown();
      break;
    default:
      break;  // lease: the read itself renewed it
  }
}

}  // namespace skyworker
