-- Large data benchmark: one task result or one task argument of SIZE MiB on a local node.
--   skyhost bench/data.lua result|argument MIB [runs]
-- Prints "name value unit" lines; bench/run-data.sh runs it per size and direction (one process
-- each, so that each peak RSS, VmHWM, belongs to one size) and prints the table.
local sky = require "sky"
local core = require "skyhost.core"

local what = arg[1] or "result"
local mib = tonumber(arg[2]) or 64
local runs = tonumber(arg[3]) or 3
local n = mib * 1024 * 1024

local function status(field)
  local f <close> = assert(io.open("/proc/self/status"))
  return tonumber(f:read("a"):match(field .. ":%s*(%d+)")) * 1024
end

-- Resets this process's peak RSS (VmHWM) to its current RSS, so that what came before (the
-- pool's start, building the test string) is not counted.
local function reset_peak()
  local f <close> = assert(io.open("/proc/self/clear_refs", "w"))
  f:write("5")
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- One executor: the string a task keeps in a global is there for the next task.
local pool <close> = sky.compute { nodes = 1, concurrency = 1, display = "quiet" }
local make = sky.fn(function(size)
  big = nil
  collectgarbage()
  big = string.rep("0123456789abcdef", size // 16)
  return #big
end)
local get = sky.fn(function() return big end)
local len = sky.fn(function(s) return { #s, s:sub(1, 16), s:sub(-16) } end)
local worker_mem = sky.fn(function(reset)
  if reset then
    local c <close> = assert(io.open("/proc/self/clear_refs", "w"))
    c:write("5")
  end
  local f <close> = assert(io.open("/proc/self/status"))
  local t = f:read("a")
  return { rss = tonumber(t:match("VmRSS:%s*(%d+)")) * 1024,
           hwm = tonumber(t:match("VmHWM:%s*(%d+)")) * 1024 }
end)

local times = {}
local host_base, worker_base, worker_peak
if what == "result" then
  assert((make(n) >> pool) == n)
  worker_base = (worker_mem(true) >> pool).rss  -- the string the worker holds is part of its baseline
  local expected = string.rep("0123456789abcdef", n // 16)  -- in the host's baseline
  for i = 1, runs do
    collectgarbage()
    if i == 1 then
      reset_peak()
      host_base = status("VmRSS")
    end
    local t0 = core.now()
    local r = get() >> pool
    times[i] = core.now() - t0
    assert(r == expected, "the result differs from what the worker built")
    r = nil
    -- after the first run only: later ones would add the garbage earlier runs left
    if i == 1 then worker_peak = (worker_mem() >> pool).hwm end
  end
elseif what == "argument" then
  local s = string.rep("0123456789abcdef", n // 16)
  worker_base = (worker_mem(true) >> pool).rss
  for i = 1, runs do
    collectgarbage()
    if i == 1 then
      reset_peak()
      host_base = status("VmRSS")
    end
    local t0 = core.now()
    local m, head, tail = table.unpack(len(s) >> pool)
    times[i] = core.now() - t0
    assert(m == n and head == "0123456789abcdef" and tail == "0123456789abcdef")
    if i == 1 then worker_peak = (worker_mem() >> pool).hwm end
  end
else
  error("bench/data.lua: the first argument is 'result' or 'argument', not '" .. what .. "'")
end

local t = median(times)
print(("seconds %.3f s"):format(t))
print(("rate %.0f MB/s"):format(n / t / 1e6))
print(("host_peak_over_base %.2f x"):format((status("VmHWM") - host_base) / n))
print(("worker_peak_over_base %.2f x"):format((worker_peak - worker_base) / n))
print(("times %s s"):format(table.concat((function()
  local o = {}
  for i, v in ipairs(times) do o[i] = ("%.3f"):format(v) end
  return o
end)(), ",")))
