-- One run of bench/run-lanes.sh: pool:get and pool:put of one large file with `lanes` = each of
-- LANES (SSH sessions at once, docs/data.md "Lanes"), on a warm one-node pool.
--   skyhost bench/lanes.lua STATE_DIR REMOTE_SRC LOCAL_DEST LOCAL_SRC REMOTE_DEST "1 2 4"
-- REMOTE_SRC is fetched into LOCAL_DEST, LOCAL_SRC is sent to REMOTE_DEST; all on tmpfs (this
-- machine's page cache is reclaimed proactively, a file on disk would measure the disk).
-- Prints "get_lanes<L> seconds" and "put_lanes<L> seconds" lines: the call alone, checks
-- (sha256 on both sides) included, the pool's start not.
local sky = require "sky"
local core = require "skyhost.core"

local usage = "usage: lanes.lua STATE_DIR REMOTE_SRC LOCAL_DEST LOCAL_SRC REMOTE_DEST LANES"
local state, remote_src, local_dest, local_src, remote_dest, lanes =
  assert(arg[1], usage), assert(arg[2], usage), assert(arg[3], usage), assert(arg[4], usage),
  assert(arg[5], usage), assert(arg[6], usage)
local host = io.lines(state .. "/hosts.txt")()

local pool <close> = sky.compute {
  provider = sky.ssh { hosts = { host }, identity = state .. "/id_ed25519",
    known_hosts = state .. "/known_hosts" },
  display = "quiet",
}

for l in lanes:gmatch("%d+") do
  local t0 = core.now()
  pool:get(remote_src, local_dest, { node = 0, lanes = tonumber(l) })
  print(("get_lanes%s %.3f s"):format(l, core.now() - t0))
  os.remove(local_dest)
  t0 = core.now()
  pool:put(local_src, remote_dest, { node = 0, lanes = tonumber(l) })
  print(("put_lanes%s %.3f s"):format(l, core.now() - t0))
  io.stdout:flush()
end
