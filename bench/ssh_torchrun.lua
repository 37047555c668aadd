-- One run of the torchrun benchmark: a warm 2-host SSH pool, then the time from pool:torchrun
-- to the first rank's output line, and to the end.
--   skyhost bench/ssh_torchrun.lua STATE_DIR
-- Prints "name value unit" lines for bench/run-ssh.sh (its torch section).
local sky = require "sky"
local core = require "skyhost.core"

local state = assert(arg[1], "usage: ssh_torchrun.lua STATE_DIR")
local root = arg[0]:match("^(.*)/bench/[^/]*$") or "."
local hosts = {}
for line in io.lines(state .. "/hosts.txt") do
  if #hosts < 2 then hosts[#hosts + 1] = line end
end

local pool <close> = sky.compute {
  provider = sky.ssh { hosts = hosts, identity = state .. "/id_ed25519", known_hosts = state .. "/known_hosts" },
  nodes = 2,
  display = "quiet",
  metrics_interval = 0,
}
local first
pool:on("log", function(ev)
  if not first and ev.text:match("^rank") then first = core.now() end
end)
local t0 = core.now()
pool:torchrun(root .. "/bench/torch_hello.py", {
  env = { GLOO_SOCKET_IFNAME = "eth0" },
  launcher = "/usr/bin/python3 " .. root .. "/tests/support/torchrun.py",
})
local t1 = core.now()
print(("torchrun_first_s %.3f s"):format(first - t0))
print(("torchrun_total_s %.3f s"):format(t1 - t0))
