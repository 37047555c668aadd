-- SSH bootstrap benchmark: one pool of N nodes over sky.ssh, from nothing to ready, then closed.
--   skyhost bench/ssh_bootstrap.lua STATE_DIR N [check]
-- STATE_DIR is the test bed's client directory (tests/support/netns-hosts.sh: hosts.txt,
-- id_ed25519, known_hosts); the pool uses its first N hosts. Bootstrap = connect + upload the
-- worker (skipped when that binary is already on the host: the "warm" case) + start it.
-- Prints "name value unit" lines; bench/run-ssh.sh times the whole process beside pdsh/pssh and
-- uses these lines for the split between getting ready and closing. With "check" (untimed runs)
-- every node also reports its hostname, which must be that of a different host.
local sky = require "sky"
local core = require "skyhost.core"

local state = assert(arg[1], "usage: ssh_bootstrap.lua STATE_DIR N")
local n = assert(tonumber(arg[2]), "usage: ssh_bootstrap.lua STATE_DIR N")

local hosts = {}
for line in io.lines(state .. "/hosts.txt") do
  if #hosts < n then hosts[#hosts + 1] = line end
end
assert(#hosts == n, ("%s/hosts.txt lists %d hosts, %d wanted"):format(state, #hosts, n))

local t0 = core.now()
local pool = sky.compute {
  provider = sky.ssh { hosts = hosts, identity = state .. "/id_ed25519", known_hosts = state .. "/known_hosts" },
  nodes = n,
  display = "quiet",
}
local ready = core.now() - t0
if arg[3] == "check" then
  local names = pool:broadcast(sky.fn(function() return sky.instance_info().hostname end)())
  local seen = {}
  for i, h in ipairs(names) do
    assert(not seen[h], ("nodes %d and %d both run on %s"):format(seen[h] or -1, i - 1, h))
    seen[h] = i - 1
  end
  assert(#names == n, ("%d of %d nodes answered"):format(#names, n))
  print(("hosts_ok %d distinct"):format(#names))
end
local t1 = core.now()
pool:close()
local closed = core.now() - t1
print(("ready_s %.3f s"):format(ready))
print(("close_s %.3f s"):format(closed))
print(("nodes %d"):format(n))
