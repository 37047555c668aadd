-- plugin.lua — native code on the nodes: the example plugin examples/plugins/gemm.cpp (a dense
-- float32 matrix multiply, built by CMake as build/libgemm.so) used like a Lua function.
--   skyhost scripts/plugin.lua [path/to/libgemm.so] [ssh host ...]
-- With hosts after the path, the pool is those machines over SSH (the library is uploaded to
-- each once, by content hash); without, 4 workers on this machine.
local sky = require "sky"

local lib = arg[1] or "build/libgemm.so"
local gemm = sky.plugin(lib, "gemm")

--- An m x n float32 matrix, row-major, as a binary string.
local function matrix(m, n, f)
  local parts = {}
  for i = 0, m - 1 do
    for j = 0, n - 1 do parts[#parts + 1] = string.pack("<f", f(i, j)) end
  end
  return table.concat(parts)
end

local function same(x, y, scale)
  for i = 1, #x, 4 do
    if string.unpack("<f", x, i) * scale ~= string.unpack("<f", y, i) then return false end
  end
  return #x == #y
end

local provider
if arg[2] then
  local hosts = {}
  for i = 2, #arg do hosts[#hosts + 1] = arg[i] end
  provider = sky.ssh { hosts = hosts }
end

do
  local pool <close> = sky.compute { provider = provider, nodes = provider and #arg - 1 or 4,
    display = "quiet" }
  local n = 64
  local twice = matrix(n, n, function(i, j) return i == j and 2 or 0 end)
  local as = {}
  for k = 1, 8 do as[k] = matrix(n, n, function(i, j) return (i * k + j) % 17 end) end

  -- one product: >> gives the plugin's result
  local c = gemm(as[1], twice, n, n, n) >> pool
  print(("gemm of two %dx%d matrices: %d bytes back, A*2I == 2A: %s"):format(n, n, #c,
    tostring(same(as[1], c, 2))))

  -- several at once, spread over the nodes
  local tasks = {}
  for k = 1, 8 do tasks[k] = gemm(as[k], twice, n, n, n) end
  local cs = sky.gather(tasks) >> pool
  local ok = 0
  for k = 1, 8 do ok = ok + (same(as[k], cs[k], 2) and 1 or 0) end
  print(("8 products with sky.gather: %d correct"):format(ok))

  -- Lua on the node calls the plugin it captured: build the inputs there, send back a checksum
  local checksum = sky.fn(function(k)
    local a = matrix(n, n, function(i, j) return (i + j * k) % 5 end)
    local product = gemm(a, twice, n, n, n)
    local s = 0
    for i = 1, #product, 4 do s = s + string.unpack("<f", product, i) end
    return s
  end)
  print("checksums from pool:map: " .. table.concat(pool:map(checksum, { 1, 2, 3, 4 }), " "))

  -- a failure is a task error, as for Lua
  local ok2, err = pcall(function() return gemm("short", twice, n, n, n) >> pool end)
  print("a bad argument: " .. tostring(ok2) .. ", " .. err.remote_message)
end
