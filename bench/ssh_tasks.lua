-- SSH pool benchmark, one run: trivial task round trip on a warm pool, the same with a
-- sky.sh("true") in the task, a file fetched with pool:get, a task returning a large string.
--   skyhost bench/ssh_tasks.lua STATE_DIR N ROUND_TRIPS REMOTE_FILE DEST STR_MIB
-- STATE_DIR: the test bed's client directory (tests/support/netns-hosts.sh); the pool uses its
-- first N hosts. REMOTE_FILE (on node 0; relative to its home or absolute; "-" skips it) is
-- fetched once into DEST. Both should be on tmpfs: this machine's page cache is reclaimed
-- proactively, so a file on disk is read back from the disk at a few MB/s. STR_MIB: size of the
-- string one task returns ("0" skips it).
-- Prints "name value unit" lines; bench/run-ssh.sh runs this several times, interleaved with the
-- peers, and prints medians beside theirs.
local sky = require "sky"
local core = require "skyhost.core"

local usage = "usage: ssh_tasks.lua STATE_DIR N ROUND_TRIPS REMOTE_FILE DEST STR_MIB"
local state = assert(arg[1], usage)
local n = assert(tonumber(arg[2]), usage)
local round_trips = tonumber(arg[3]) or 2000
local remote = arg[4] or "-"
local dest = arg[5] or "/dev/shm/skyb-get.bin"
local str_mib = tonumber(arg[6]) or 0

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local hosts = {}
for line in io.lines(state .. "/hosts.txt") do
  if #hosts < n then hosts[#hosts + 1] = line end
end
assert(#hosts == n, ("%s/hosts.txt lists %d hosts, %d wanted"):format(state, #hosts, n))

local pool <close> = sky.compute {
  provider = sky.ssh { hosts = hosts, identity = state .. "/id_ed25519", known_hosts = state .. "/known_hosts" },
  nodes = n,
  display = "quiet",
}

-- Round trip: one task at a time, each waiting for its result.
if round_trips > 0 then
  local inc = sky.fn(function(x) return x + 1 end)
  for i = 1, 200 do assert((inc(i) >> pool) == i + 1) end  -- warm up every node
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
  print(("round_trips %d"):format(round_trips))

  -- A task that runs a command: sky.sh("true") and back (fork, exec of /bin/sh, its exit).
  local sh_true = sky.fn(function() return sky.sh("true").code end)
  for _ = 1, 50 do assert((sh_true() >> pool) == 0) end
  local sh_lat = {}
  for i = 1, math.max(round_trips // 4, 100) do
    local t0 = core.now()
    assert((sh_true() >> pool) == 0)
    sh_lat[i] = core.now() - t0
  end
  table.sort(sh_lat)
  print(("sh_round_trip_p50 %.1f us"):format(percentile(sh_lat, 0.50) * 1e6))
  print(("sh_round_trip_p99 %.1f us"):format(percentile(sh_lat, 0.99) * 1e6))
end

-- pool:get of a file that is on node 0.
if remote ~= "-" then
  local size = sky.fn(function(path)
    if path:sub(1, 1) ~= "/" then path = os.getenv("HOME") .. "/" .. path end
    local f = io.open(path, "rb")
    if not f then return false end
    local s = f:seek("end")
    f:close()
    return s
  end)
  local bytes = pool:broadcast(size(remote))[1] -- results[1] is node 0's
  assert(bytes, ("%s is not on node 0"):format(remote))
  os.remove(dest)
  local t0 = core.now()
  pool:get(remote, dest, { node = 0 })
  local dt = core.now() - t0
  local f = assert(io.open(dest, "rb"))
  local got = f:seek("end")
  f:close()
  os.remove(dest)
  assert(got == bytes, ("got %d bytes, want %d"):format(got, bytes))
  print(("get_s %.3f s"):format(dt))
  print(("get_bytes %d B"):format(got))
end

-- A task returning a large string: the result travels over the worker's channel and is decoded
-- into the script's Lua state.
if str_mib > 0 then
  local big = sky.fn(function(size) return string.rep("x", size) end)
  local bytes = str_mib << 20
  local t0 = core.now()
  local ok, s = pcall(function() return big(bytes) >> pool end)
  local dt = core.now() - t0
  if ok and #s == bytes then
    print(("str_s %.3f s"):format(dt))
  else
    local why = ok and ("got %d bytes, want %d"):format(#s, bytes) or tostring(s)
    print(("str_error %s"):format((why:gsub("\n", " "))))
  end
end
