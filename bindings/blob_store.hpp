// A wire::BlobStore that receives a large string's bytes straight into the Lua string that
// will hold them, so that a result of a gigabyte is in memory once (not in a frame buffer and
// then in the string made from it). The strings wait in the registry until the codec's data
// decoder pushes them (decode_data, blob tag). docs/data.md, "How a large string moves".
#pragma once

#include <lua.hpp>
#include <memory>

#include "host/links/wire.hpp"

namespace skyhost::codec {

/// A store making its strings in `L`'s Lua state. It keeps a thread of that state for its own
/// use, so it may be called from a libuv callback while any coroutine is suspended. It and the
/// blobs it made must go before the state closes (a pool's __gc: they belong to its scheduler).
std::shared_ptr<wire::BlobStore> make_blob_store(lua_State* L);

}  // namespace skyhost::codec
