// A stand-in for a compromised node: it speaks the worker's frame protocol (host/links/wire.hpp)
// and answers the host's first task with something built to hurt it. Started by the local provider
// in place of skyworker (SKYHOST_WORKER names it); SKYHOST_HOSTILE says what to send:
//
//   gc          a table whose metatable has __gc, __index, __tostring, ... functions
//   function    functions: a result that is one, and one inside a table
//   bytecode    a function whose instructions are forged (all invalid opcodes)
//   amplify     1 MiB of nested tables that each claim the rest of the input as their size
//   big-valid   a valid 1 MiB result of the costliest shape (many empty tables)
//   header      a frame header announcing 1 GiB, then silence, then exit
//   over-limit  a frame header announcing twice the pool's max_frame
//   garbage     random bytes
//   bad-failure a failed result whose message is malformed
//   fatal       a Fatal frame in answer to Init, then exit status 3
//   blob-short  a large string sent apart (kBlob) announced as 16 MiB, 4 MiB of it, then exit
//   blob-lie    a 2 MiB string sent apart, then a result that says it was 3 MiB
//   blob-tiny   a string sent apart of 10 bytes (under wire::kBlobMin)
//
// Every function it sends writes a file named SKYHOST_HOSTILE_MARK.<what> if it ever runs (on
// the host, since that is where it would be decoded): the test checks none appears.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "bindings/codec.hpp"
#include "host/links/wire.hpp"

using namespace skyhost;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void send_all(const std::string& bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = write(1, p, left);
    if (n <= 0) std::_Exit(1);
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::string frame(wire::Msg type, const std::string& body) {
  wire::Writer w;
  size_t mark = w.begin_frame(type);
  w.put_raw(body.data(), body.size());
  w.end_frame(mark);
  return w.take();
}

std::string result(uint64_t task, bool ok, const std::string& payload) {
  wire::Writer w;
  w.put_u64(task);
  w.put_u8(ok ? 1 : 0);
  w.put_u64(1000);
  w.put_raw(payload.data(), payload.size());
  return frame(wire::Msg::kResult, w.data());
}

// What `chunk` returns, encoded as the host encodes its own closures (code mode).
std::string encode_code(const std::string& chunk) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  std::string mark = env("SKYHOST_HOSTILE_MARK");
  std::string code = "local path = " + std::string("'") + mark + "'\n" +
                     "local function mark(what) return function(...) "
                     "local f = io.open(path .. '.' .. what, 'w') f:write(what) f:close() "
                     "return 1 end end\n" +
                     chunk;
  if (luaL_dostring(L, code.c_str()) != LUA_OK) {
    std::fprintf(stderr, "hostile: %s\n", lua_tostring(L, -1));
    std::_Exit(1);
  }
  wire::Writer w;
  codec::encode_values(L, 1, lua_gettop(L), w);
  // Never closed: closing would run the __gc sent, here.
  return w.take();
}

// lundump's size: 7-bit groups, most significant first, the last one flagged.
size_t skip_size(const std::string& s, size_t& at) {
  size_t x = 0;
  for (;;) {
    uint8_t b = static_cast<uint8_t>(s[at++]);
    x = (x << 7) | (b & 0x7f);
    if (b & 0x80) return x;
  }
}

// A real function's encoding with every instruction replaced by an invalid opcode: it passes
// the chunk checks and lua_load (Lua does not verify instructions) and crashes when run.
std::string forged_function() {
  std::string bytes = encode_code("return function(x) return x + 1 end");
  // list count 1, tag kFunction, u32 length, then the chunk: a 31-byte header, the upvalue
  // count, the source string, two line numbers, 3 bytes, then the code size and the code.
  size_t at = 1 + 1 + 4 + 31 + 1;
  size_t n = skip_size(bytes, at);
  if (n > 0) at += n - 1;
  skip_size(bytes, at);
  skip_size(bytes, at);
  at += 3;
  size_t ncode = skip_size(bytes, at);
  for (size_t i = 0; i < 4 * ncode; ++i) bytes[at + i] = '\x7f';
  return bytes;
}

// Nested tables, each declaring as many elements as the rest of the input could hold.
std::string amplify(size_t size) {
  wire::Writer w;
  w.put_varint(1);
  for (int i = 0; i < 200; ++i) {
    w.put_u8(6);
    w.put_varint(size - w.size() - 16);
    w.put_varint((size - w.size() - 16) / 2);
  }
  w.data().resize(size, '\0');
  return w.take();
}

std::string answer(const std::string& mode, uint64_t task) {
  if (mode == "gc") {
    return result(task, true, encode_code(R"(
      local mt = {}
      for _, e in ipairs{"__gc", "__index", "__newindex", "__tostring", "__len", "__call",
                         "__concat", "__eq", "__lt", "__le", "__close", "__pairs", "__name"} do
        mt[e] = mark(e)
      end
      return setmetatable({}, mt), setmetatable({x = 1}, {__index = mark("index2")}))"));
  }
  if (mode == "function") {
    return result(task, true,
                  encode_code("return mark('call'), {f = mark('field'), os.execute, _G}"));
  }
  if (mode == "bytecode") return result(task, true, forged_function());
  if (mode == "amplify") return result(task, true, amplify(1 << 20));
  if (mode == "big-valid") {
    lua_State* L = luaL_newstate();
    luaL_dostring(L, "local t = {} for i = 1, 262144 do t[i] = {} end return t");
    wire::Writer w;
    codec::encode_values(L, 1, 1, w, codec::Mode::kData);
    lua_close(L);
    return result(task, true, w.data());
  }
  if (mode == "header") {
    wire::Writer w;
    w.put_u32(wire::kMaxFrame);
    w.put_u8(static_cast<uint8_t>(wire::Msg::kResult));
    send_all(w.data());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::_Exit(0);
  }
  if (mode == "over-limit") {
    wire::Writer w;
    w.put_u32(2u << 20);
    send_all(w.data());
    std::this_thread::sleep_for(std::chrono::seconds(30));  // the host ends us first
    std::_Exit(0);
  }
  if (mode == "garbage") {
    std::mt19937 rng(7);
    std::string junk(4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    return junk;
  }
  if (mode == "bad-failure") return result(task, false, "\x40short");
  if (mode == "blob-short") {
    wire::Writer w;
    w.put_u32((16u << 20) + 1);
    w.put_u8(static_cast<uint8_t>(wire::Msg::kBlob));
    send_all(w.data() + std::string(4u << 20, 'b'));
    std::_Exit(0);
  }
  if (mode == "blob-lie") {
    wire::Writer w;
    w.put_varint(1);
    w.put_u8(11);  // codec tag kBlob (bindings/codec_format.hpp)
    w.put_varint(3u << 20);
    return frame(wire::Msg::kBlob, std::string(2u << 20, 'b')) + result(task, true, w.data());
  }
  if (mode == "blob-tiny") return frame(wire::Msg::kBlob, std::string(10, 'b'));
  if (mode == "notice") {  // a spot notice far too long (cut on arrival), then one cut short
    wire::Writer big, cut;
    big.put_string(std::string(100000, 'a'));
    big.put_string("2026-12-03T17:02:00Z");
    cut.put_varint(1 << 20);
    cut.put_raw("terminate", 9);
    return frame(wire::Msg::kNotice, big.data()) + frame(wire::Msg::kNotice, cut.data()) +
           result(task, true, std::string("\x01\x00", 2));
  }
  std::fprintf(stderr, "hostile: unknown mode '%s'\n", mode.c_str());
  std::_Exit(2);
}

}  // namespace

int main() {
  std::string mode = env("SKYHOST_HOSTILE");
  wire::FrameDecoder in;
  char buf[65536];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) return 0;
    in.feed(buf, static_cast<size_t>(n));
    wire::Frame f;
    while (in.next(f)) {
      if (f.type == wire::Msg::kInit) {
        if (mode == "fatal") {
          wire::Writer w;
          w.put_string("malformed Init frame from host: it is empty");
          send_all(frame(wire::Msg::kFatal, w.data()));
          std::_Exit(3);
        }
        wire::Writer w;
        w.put_string("hostile");
        w.put_varint(static_cast<uint64_t>(getpid()));
        w.put_varint(1);
        send_all(frame(wire::Msg::kReady, w.data()));
      } else if (f.type == wire::Msg::kTask) {
        wire::Reader r(f.body);
        send_all(answer(mode, r.get_u64()));
      } else if (f.type == wire::Msg::kShutdown) {
        return 0;
      }
    }
  }
}
