-- Dispatch benchmark: trivial task round trip and pool:map throughput on the local provider.
--   skyhost bench/dispatch.lua [round_trips] [map_tasks] [nodes] [runs]
-- Prints one line per figure, "name value unit"; bench/run-dispatch.sh puts them beside Dask's.
local sky = require "sky"
local core = require "skyhost.core"

local round_trips = tonumber(arg[1]) or 5000
local map_tasks = tonumber(arg[2]) or 100000
local nodes = tonumber(arg[3]) or 4
local runs = tonumber(arg[4]) or 5

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local pool <close> = sky.compute { nodes = nodes, display = "quiet" }
local inc = sky.fn(function(x) return x + 1 end)

for _ = 1, 200 do local _ = inc(1) >> pool end  -- warm up every node

local lat = {}
for i = 1, round_trips do
  local t0 = core.now()
  local r = inc(i) >> pool
  lat[i] = core.now() - t0
  assert(r == i + 1)
end
table.sort(lat)
print(("round_trip_p50 %.1f us"):format(percentile(lat, 0.50) * 1e6))
print(("round_trip_p99 %.1f us"):format(percentile(lat, 0.99) * 1e6))

local items = {}
for i = 1, map_tasks do items[i] = i end
local rates = {}
for r = 1, runs do
  local t0 = core.now()
  local out = pool:map(inc, items)
  local dt = core.now() - t0
  assert(#out == map_tasks and out[map_tasks] == map_tasks + 1)
  rates[r] = map_tasks / dt
end
print(("map_throughput %.0f tasks/s"):format(median(rates)))
print(("map_tasks %d"):format(map_tasks))
print(("nodes %d"):format(nodes))
