// Seed corpora for the fuzz targets, made from real encodings: what the host's encoder writes
// for closures, arguments and node settings, what a worker writes for results, logs and
// failures, and the frames around them. Regenerated on every run (tests/fuzz/run.sh), so the
// seeds follow the format as it changes.
//
//   fuzz_seeds DIR   writes DIR/fuzz_frames, DIR/fuzz_data, DIR/fuzz_worker, DIR/fuzz_tree
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bindings/codec.hpp"
#include "host/links/wire.hpp"

using namespace skyhost;
namespace fs = std::filesystem;

namespace {

// Values a task might take or return, in the shapes users write.
const char* kValues[] = {
    "return nil, true, false, 0, -1, math.maxinteger, math.mininteger, 0.5, -0.0, 1/0",
    "return '', 'x', 'a\\0b\\255', string.rep('z', 300)",
    "return {}, {1, 2, 3}, {a = 1, b = 'two', [3.5] = false}",
    "local s = {1} return {s, s, {s}}",
    "local t = {name = 'cyc'} t.self = t return t",
    "return {1, nil, 3, nil, nil, 6}",
    "local t = {} for i = 1, 200 do t[i] = i * 2 end return t",
    "local t = {} for i = 1, 50 do t['k' .. i] = {i, tostring(i)} end return t",
    "local t = {} t[1000] = 1 t[-1] = 2 t[2^53] = 3 return t",
    "local t = {} for i = 1, 30 do t = {t} end return t",
    ("return {node = 0, total_nodes = 4, is_head = true, head_addr = '10.0.0.1', "
     "provider = 'local', pool = 'pool-1', instance = 'pool-1-0'}"),
};

// What only the host sends (code mode): the data decoder must refuse it.
const char* kCode[] = {
    "return function(x) return x + 1 end",
    "local n = 0 return function() n = n + 1 return n end",
    "local fmt = string.format return function(x) return fmt('%d', x) end, math.floor",
    "local function fact(k) return k <= 1 and 1 or k * fact(k - 1) end return fact",
    "return setmetatable({}, {__index = function() return 1 end})",
    "return {env = _G, lib = string}",
};

std::string encode(lua_State* L, const char* chunk, codec::Mode mode) {
  lua_settop(L, 0);
  if (luaL_dostring(L, chunk) != LUA_OK) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", lua_tostring(L, -1));
    std::exit(1);
  }
  wire::Writer w;
  codec::encode_values(L, 1, lua_gettop(L), w, mode);
  lua_settop(L, 0);
  return w.take();
}

std::string frame(wire::Msg type, const std::string& body) {
  wire::Writer w;
  size_t mark = w.begin_frame(type);
  w.put_raw(body.data(), body.size());
  w.end_frame(mark);
  return w.take();
}

std::string u64(uint64_t v) {
  wire::Writer w;
  w.put_u64(v);
  return w.take();
}

void write(const fs::path& dir, int& n, const std::string& bytes) {
  std::ofstream(dir / ("seed-" + std::to_string(n++)), std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR\n");
    return 2;
  }
  fs::path root = argv[1];
  for (const char* t : {"fuzz_frames", "fuzz_data", "fuzz_worker", "fuzz_tree"})
    fs::create_directories(root / t);
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);

  std::vector<std::string> data, code;
  for (const char* v : kValues) data.push_back(encode(L, v, codec::Mode::kData));
  for (const char* c : kCode) code.push_back(encode(L, c, codec::Mode::kCode));

  int n = 0;
  for (auto& d : data) write(root / "fuzz_data", n, d);
  for (auto& c : code) write(root / "fuzz_data", n, c);

  // Worker → host: Ready, results (values, failures), logs, a spot notice, a Fatal.
  wire::Writer ready;
  ready.put_string("node-1");
  ready.put_varint(4242);
  ready.put_varint(4);
  wire::Writer failure;
  failure.put_string("job.lua:3: boom");
  failure.put_string("stack traceback:\n\tjob.lua:3: in function <job.lua:1>");
  wire::Writer log;
  log.put_u64(7);
  log.put_string("hello from node 1");
  std::string up = frame(wire::Msg::kReady, ready.data());
  for (size_t i = 0; i < data.size(); ++i)
    up += frame(wire::Msg::kResult, u64(i + 1) + std::string("\x01", 1) + u64(1000) + data[i]);
  up += frame(wire::Msg::kResult, u64(99) + std::string("\x00", 1) + u64(5) + failure.data());
  up += frame(wire::Msg::kLog, log.data());
  wire::Writer notice;  // a spot interruption notice (worker/spot_notice.cpp)
  notice.put_string("terminate");
  notice.put_string("2026-12-03T17:02:00Z");
  up += frame(wire::Msg::kNotice, notice.data());
  n = 0;
  for (unsigned control : {0u, 1u, 2u, 0x40u, 0xfcu})
    write(root / "fuzz_frames", n, char(control) + up);
  write(root / "fuzz_frames", n, std::string(1, '\0') + frame(wire::Msg::kResult, data[6]));

  // Host → worker: Init (settings as data), Def (closures), Task (arguments), Lease, Shutdown.
  std::string init = frame(wire::Msg::kInit, data.back());
  std::string down = init;
  for (size_t i = 0; i < code.size(); ++i) down += frame(wire::Msg::kDef, u64(i + 1) + code[i]);
  for (size_t i = 0; i < data.size(); ++i)
    down += frame(wire::Msg::kTask,
                  u64(i + 1) + u64(1 + i % code.size()) + std::string(1, '\0') + data[i]);
  down += frame(wire::Msg::kLease, "");
  n = 0;
  for (unsigned control : {0u, 1u, 0x20u, 0xfcu})
    write(root / "fuzz_worker", n, char(control) + down);
  write(root / "fuzz_worker", n, std::string(1, '\0') + down + frame(wire::Msg::kShutdown, ""));
  write(root / "fuzz_worker", n, std::string(1, '\0') + init);
  write(root / "fuzz_worker", n, std::string(1, '\0') + frame(wire::Msg::kInit, data[2]));
  // A listing as `find -printf` prints it (cut after 2 * 64 bytes), then sha256sum -z output.
  std::string listing("d 755 4096 sub\0\0f 644 3 sub/a.txt\0\0l 777 5 ln\0sub/a\0", 52);
  listing.resize(128, '\0');
  std::string hashes =
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ./sub/a.txt" +
      std::string(1, '\0');
  write(root / "fuzz_tree", n, std::string(1, '\2') + listing + hashes);
  write(root / "fuzz_tree", n, std::string(1, '\4') + std::string("f 600 0 x\0\0", 11));
  lua_close(L);
  return 0;
}
