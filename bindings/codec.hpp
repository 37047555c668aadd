// Lua values ⇄ wire bytes. The one place that walks Lua values for transport; host and worker
// both link it. Encoding: a tag byte per value.
//
//   nil, false, true, integer (zigzag varint), float (f64), string (varint length + bytes),
//   table (new reference id; array part, hash part, optional metatable),
//   ref (varint id of a table or function already sent in this message: shared refs, cycles),
//   function (new reference id; bytecode with debug info, then each upvalue as a value),
//   globals (the sender's global table / _ENV: resolved to the receiver's globals),
//   named (a standard library or `sky` value, e.g. "string.format": resolved by name).
//
// Anything else (userdata, threads, C functions outside the standard libraries) cannot travel:
// encoding fails with an EncodeError whose message names where the value was found, e.g.
//   "cannot send userdata (upvalue 'out' of function at job.lua:3)".
#pragma once

#include <lua.hpp>
#include <stdexcept>

#include "host/wire.hpp"

namespace skyhost::codec {

struct EncodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// Malformed input; raised as wire::Error so callers handle one type for bad bytes.
using DecodeError = wire::Error;

/// Appends `n` values starting at stack index `first` as one message-scoped value list
/// (references may be shared between the values). Leaves the Lua stack unchanged. Throws
/// EncodeError for a value that cannot travel.
void encode_values(lua_State* L, int first, int n, wire::Writer& out);

/// Reads a value list written by encode_values and pushes its values; returns how many.
/// Throws DecodeError on malformed or truncated input, leaving the stack as it was.
/// Functions are loaded in binary mode only and get the receiver's globals as _ENV.
int decode_values(lua_State* L, wire::Reader& in);

}  // namespace skyhost::codec
