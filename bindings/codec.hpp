// Lua values ⇄ wire bytes. The one place that walks Lua values for transport; host and worker
// both link it. Encoding: a tag byte per value (layout in codec_format.hpp).
//
//   nil, false, true, integer (zigzag varint), float (f64), string (varint length + bytes),
//   table (new reference id; array part, hash part, optional metatable),
//   ref (varint id of a table or function already sent in this message: shared refs, cycles),
//   function (new reference id; bytecode with debug info, then each upvalue as a value),
//   globals (the sender's global table / _ENV: resolved to the receiver's globals),
//   named (a standard library or `sky` value, e.g. "string.format": resolved by name).
//
// Two modes, because the two directions are not equally trusted:
//   code  what the host sends: closures with their upvalues, metatables, names. Only the
//         host's own bytes are decoded this way (decode_values): loading bytecode means running
//         whatever it says, and Lua does not verify instructions.
//   data  what comes back from a node: nil, booleans, numbers, strings and tables without
//         metatables (shared references and cycles kept). decode_data refuses everything else,
//         loads no code and sets no metatable, and what it allocates is bounded by the bytes
//         it was given, so a hostile node can fail its own task but never act on the host.
//
// Anything else (userdata, threads, C functions outside the standard libraries; in data mode
// also functions and metatables) cannot travel: encoding fails with an EncodeError whose
// message names where the value was found, e.g.
//   "cannot send userdata (upvalue 'out' of function at job.lua:3)".
#pragma once

#include <lua.hpp>
#include <stdexcept>
#include <vector>

#include "host/links/wire.hpp"

namespace skyhost::codec {

struct EncodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Malformed input; raised as wire::Error so callers handle one type for bad bytes.
using DecodeError = wire::Error;

enum class Mode {
  kCode,  // functions, metatables, library names: the host's own closures and arguments
  kData,  // plain data only: a task's results
};

/// Appends `n` values starting at stack index `first` as one message-scoped value list
/// (references may be shared between the values). Leaves the Lua stack unchanged. Throws
/// EncodeError for a value that cannot travel in `mode`; in data mode the message says
/// "cannot return" and names the result, e.g. "cannot return function (field 'f' of result 1)".
void encode_values(lua_State* L, int first, int n, wire::Writer& out, Mode mode = Mode::kCode);

/// Reads a value list written by encode_values and pushes its values; returns how many.
/// Throws DecodeError on malformed or truncated input, leaving the stack as it was.
/// Functions are loaded in binary mode only and get the receiver's globals as _ENV.
/// Trusted input only: the host's own bytes (see above).
int decode_values(lua_State* L, wire::Reader& in);

/// Reads a value list of plain data (encode_values in data mode) from an untrusted sender and
/// pushes its values; returns how many. A function, a metatable, a library name or a global
/// table in the input is refused with a DecodeError that says so, as is anything malformed;
/// the stack is then as it was. Table size hints are budgeted by the input's size, so that
/// decoding n bytes allocates at most kDataCostFactor * n + kDataCostSlack bytes of Lua memory
/// (tests/unit/test_codec_data.cpp and the fuzz target check it). `blobs`: the large strings
/// that came apart (wire::Blob), used in order by the values' blob tags, each once; all of them
/// must be used. Without them a blob tag is refused.
int decode_data(lua_State* L, wire::Reader& in, const std::vector<wire::Blob>* blobs = nullptr);

inline constexpr size_t kDataCostFactor = 64;
inline constexpr size_t kDataCostSlack = 4096;

}  // namespace skyhost::codec
