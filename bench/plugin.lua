-- Plugins beside Lua functions on 4 local workers (bench/run-plugin.sh prints the table):
--   skyhost bench/plugin.lua LIBGEMM TEST_PLUGINS [round_trips] [map_tasks] [runs]
-- 1. call overhead: a trivial plugin (x + 1), isolated (the default) and with isolate = false,
--    and the same Lua function: round trip p50/p99 and pool:map throughput;
-- 2. compute: a 192x192 float32 matrix product and a sum of squares, native and in Lua;
-- 3. 64 MiB in and out: time, and the peak memory of the worker and the plugin host.
-- Prints "name value unit" lines.
local sky = require "sky"
local core = require "skyhost.core"

local gemm_lib, test_lib = arg[1], arg[2]
local round_trips = tonumber(arg[3]) or 5000
local map_tasks = tonumber(arg[4]) or 100000
local runs = tonumber(arg[5]) or 5
local nodes = 4

local function sorted_pct(xs, p)
  table.sort(xs)
  return xs[math.max(1, math.ceil(#xs * p))]
end

local function median(xs) return sorted_pct(xs, 0.5) end

local function out(name, value, unit, fmt)
  print(("%s " .. (fmt or "%.1f") .. " %s"):format(name, value, unit))
end

local lua_inc = sky.fn(function(x) return x + 1 end)
local plugin_inc = sky.plugin(test_lib, "inc")
local inproc_inc = sky.plugin(test_lib, "inc", { isolate = false })
local cases = { { "lua", lua_inc }, { "plugin", plugin_inc }, { "inproc", inproc_inc } }

do
  local pool <close> = sky.compute { nodes = nodes, display = "quiet" }
  -- warm up every node and every executor's plugin host
  local _ = pool:map(plugin_inc, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 })
  for _ = 1, 200 do _ = lua_inc(1) >> pool; _ = plugin_inc(1) >> pool end

  -- The cases take turns, call by call and run by run, so that other load on the machine
  -- weighs on each alike.
  local lat = {}
  for _, case in ipairs(cases) do lat[case[1]] = {} end
  for i = 1, round_trips do
    for _, case in ipairs(cases) do
      local t0 = core.now()
      local r = case[2](i) >> pool
      lat[case[1]][i] = core.now() - t0
      assert(r == i + 1)
    end
  end
  for _, case in ipairs(cases) do
    out(case[1] .. "_round_trip_p50", sorted_pct(lat[case[1]], 0.50) * 1e6, "us")
    out(case[1] .. "_round_trip_p99", sorted_pct(lat[case[1]], 0.99) * 1e6, "us")
  end

  local items = {}
  for i = 1, map_tasks do items[i] = i end
  local rates = {}
  for _, case in ipairs(cases) do rates[case[1]] = {} end
  for r = 1, runs do
    for _, case in ipairs(cases) do
      local t0 = core.now()
      local res = pool:map(case[2], items)
      rates[case[1]][r] = map_tasks / (core.now() - t0)
      assert(#res == map_tasks and res[map_tasks] == map_tasks + 1)
    end
  end
  for _, case in ipairs(cases) do
    out(case[1] .. "_map_throughput", median(rates[case[1]]), "tasks/s", "%.0f")
  end

  -- compute-bound: the same work native and in Lua, one task each, on one node
  local n = 192
  local function matrix(seed)
    local parts = {}
    for i = 0, n * n - 1 do parts[#parts + 1] = string.pack("<f", (i * seed) % 13 - 6) end
    return table.concat(parts)
  end
  local a, b = matrix(3), matrix(7)
  local native = sky.plugin(gemm_lib, "gemm")
  local in_lua = sky.fn(function(abytes, bbytes, m, k, nn)
    local A, B = { string.unpack(("<" .. ("f"):rep(m * k)), abytes) }, {}
    for p = 1, k * nn do B[p] = string.unpack("<f", bbytes, 4 * p - 3) end
    local parts = {}
    for i = 0, m - 1 do
      local row = {}
      for j = 1, nn do row[j] = 0.0 end
      for p = 0, k - 1 do
        local aip, base = A[i * k + p + 1], p * nn
        for j = 1, nn do row[j] = row[j] + aip * B[base + j] end
      end
      parts[#parts + 1] = string.pack(("<" .. ("f"):rep(nn)), table.unpack(row))
    end
    return table.concat(parts)
  end)
  local function time(p, reps)
    local best = math.huge
    local r
    for _ = 1, reps do
      local t0 = core.now()
      r = p >> pool
      best = math.min(best, core.now() - t0)
    end
    return best, r
  end
  local tn, cn = time(native(a, b, n, n, n), 5)
  local tl, cl = time(in_lua(a, b, n, n, n), 3)
  assert(cn == cl, "the native and the Lua product differ")
  out("gemm192_plugin", tn * 1e3, "ms", "%.2f")
  out("gemm192_lua", tl * 1e3, "ms", "%.0f")
  out("gemm192_speedup", tl / tn, "x", "%.0f")

  local squares = sky.plugin(gemm_lib, "sum_squares")
  local squares_lua = sky.fn(function(lo, hi)
    local s = 0.0
    for i = lo, hi - 1 do s = s + i * i end
    return s
  end)
  local N = 20000000
  local ts, rs = time(squares(0, N), 3)
  local tsl, rsl = time(squares_lua(0, N), 2)
  assert(rs == rsl, ("sum of squares: %s vs %s"):format(rs, rsl))
  out("squares20M_plugin", ts * 1e3, "ms", "%.1f")
  out("squares20M_lua", tsl * 1e3, "ms", "%.0f")
  out("squares20M_speedup", tsl / ts, "x", "%.0f")
end

-- 64 MiB in and out, each on a fresh one-node pool so that peaks are its own.
local function peak_kib(pid)
  local f = io.open(("/proc/%d/status"):format(pid))
  if not f then return -1 end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmHWM:%s*(%d+)")) or -1
end

local big = string.rep("\1\2\3\4", 16 << 20)  -- 64 MiB
local echo_lua = sky.fn(function(s) return s end)
local echo_plugin = sky.plugin(test_lib, "bytes_back")
local host_peak = sky.plugin(test_lib, "peak_kib")
for _, case in ipairs({ { "lua", echo_lua }, { "plugin", echo_plugin } }) do
  local pool <close> = sky.compute { nodes = 1, concurrency = 1, display = "quiet" }
  local pid = pool:nodes_info()[1].pid
  local _ = plugin_inc(1) >> pool  -- the plugin host exists in both cases
  local base = peak_kib(pid)
  local times = {}
  for r = 1, 3 do
    local t0 = core.now()
    local back = case[2](big) >> pool
    times[r] = core.now() - t0
    assert(#back == #big and back == big)
  end
  out(case[1] .. "_64MiB_round_trip", median(times) * 1e3, "ms", "%.0f")
  out(case[1] .. "_64MiB_worker_peak_growth", (peak_kib(pid) - base) / 1024, "MiB", "%.0f")
  if case[1] == "plugin" then
    out("plugin_64MiB_host_peak", (host_peak() >> pool) / 1024, "MiB", "%.0f")
  end
end
print(("nodes %d"):format(nodes))
print(("map_tasks %d"):format(map_tasks))
