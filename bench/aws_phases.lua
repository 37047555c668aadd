-- sky.aws on the local cloud, timed by phase: one pool of N nodes from sky.compute to the first
-- result, then from the end of its scope to every instance terminated.
--   CLOUD='<local_cloud.py's JSON line>' skyhost bench/aws_phases.lua N
-- Prints "phase seconds" lines (bench/run-aws-phases.sh takes medians over runs):
--   api        sky.compute → the last InstanceLaunched: offers (DescribeSubnets,
--              DescribeSpotPriceHistory), DescribeAvailabilityZones, ImportKeyPair, the security
--              group, RunInstances
--   running    → the last InstanceRunning (DescribeInstances polls)
--   ssh        → the last node's SSH session up (BootstrapPhase "uploading"); on the local cloud
--              this includes the controller making the host after the API says running
--   bootstrap  → ClusterReady (upload and start the worker, its hello)
--   first      → the first task's result
--   to_result  sky.compute → the first result (the sum of the above)
--   teardown   scope end → pool closed: workers stopped, TerminateInstances, DescribeInstances
--              until all are terminated, DeleteSecurityGroup, DeleteKeyPair
local core = require "skyhost.core"

local n = assert(tonumber(arg[1]), "usage: aws_phases.lua N")
local cloud = sky.json.decode((assert(os.getenv("CLOUD"), "CLOUD is not set")))
local last = {}
local function at(kind) last[kind] = core.now() end
local f = sky.fn(function(x) return x + 1 end)

local t0 = core.now()
local pool = sky.compute {
  provider = sky.aws { endpoint = cloud.endpoint, region = cloud.region, subnet = cloud.subnets, public_ip = false,
    ssh_cidr = "10.213.0.1/32", user = "root", poll_interval = 0.2 },
  accelerator = "T4", nodes = n, display = "quiet",
  on_event = function(ev)
    if ev.type == "InstanceLaunched" then at("launched")
    elseif ev.type == "InstanceRunning" then at("running")
    elseif ev.type == "BootstrapPhase" and ev.phase == "uploading" then at("ssh")
    elseif ev.type == "ClusterReady" then at("ready")
    end
  end,
}
assert(f(1) >> pool == 2)
local first = core.now()
local t1 = core.now()
pool:close()
local closed = core.now()

local function out(name, a, b) print(("%s %.3f"):format(name, b - a)) end
out("api", t0, last.launched)
out("running", last.launched, last.running)
out("ssh", last.running, last.ssh)
out("bootstrap", last.ssh, last.ready)
out("first", last.ready, first)
out("to_result", t0, first)
out("teardown", t1, closed)
