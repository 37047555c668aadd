// The codec's wire layout, shared by its encoder (codec.cpp) and its two decoders: the trusted
// one for the host's own closures (codec_decode.cpp) and the untrusted one for data from a node
// (codec_data.cpp). Internal to the codec.
//
//   list     = varint count, value*
//   value    = tag byte, then by tag: nothing (nil, false, true), zigzag varint (integer),
//              f64 (float), varint length + bytes (string), table, varint id (ref), function,
//              nothing (globals), varint length + name (named), varint length (blob: a
//              large string whose bytes came apart, in the next kBlob frame not yet used)
//   table    = varint narr, varint nhash, value*narr (nil for holes), (key value)*nhash,
//              metatable (a table value, or nil for none)
//   function = u32 length, bytecode, u8 nups, upvalue*nups
//   upvalue  = 0 value | 1 varint function-id u8 index (shares that function's upvalue cell)
// Tables and functions take reference ids 0, 1, ... in the order their tags appear, so a
// decoder numbers them the same way without ids on the wire.
#pragma once

#include <cstdint>

namespace skyhost::codec::format {

// Tag bytes: scalar values, then values that involve references or names.
enum Tag : uint8_t { kNil, kFalse, kTrue, kInt, kFloat, kString };
enum ObjectTag : uint8_t { kTable = 6, kRef, kFunction, kGlobals, kNamed };
// Data mode only, from a Writer with blobs on (wire::Blob).
enum BlobTag : uint8_t { kBlob = 11 };
enum UpvalueMode : uint8_t { kUpValue = 0, kUpShared = 1 };

/// Deepest nesting of tables and functions, in both directions.
inline constexpr int kMaxDepth = 200;
/// Decoder size hints are only hints; past this, tables grow as they fill.
inline constexpr uint64_t kHintCap = 1u << 20;

}  // namespace skyhost::codec::format
