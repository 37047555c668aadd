-- Driven by test_aws_orphans.py and test_aws_crash.py: an AWS pool on the local cloud (CLOUD as
-- in aws_pool.lua, ENDPOINT a fault proxy) that prints its uid and READY, then runs a task of HOLD
-- seconds on every node (or, with MAP=n, n tasks of HOLD seconds, printing `map COUNT SUM` of
-- their results x*2), and ends. TTL is the pool's lease, ON_EXPIRY the nodes' power-off command
-- (sky.aws{on_expiry = ...}); by default the test host's: sshd is PID 1 of its PID namespace, and
-- the local cloud terminates an instance whose host went away. Each InstanceLost prints
-- `lost NODE REASON`.
local cloud = sky.json.decode((assert(os.getenv("CLOUD"), "CLOUD is not set")))
do
  local pool <close> = sky.compute {
    provider = sky.aws { endpoint = os.getenv("ENDPOINT") or cloud.endpoint, region = cloud.region,
      subnet = cloud.subnets, public_ip = false, ssh_cidr = "10.203.0.1/32", user = "root", poll_interval = 0.2,
      on_expiry = os.getenv("ON_EXPIRY") or "kill -TERM 1" },
    accelerator = "T4", nodes = tonumber(os.getenv("NODES") or "1"), display = "quiet", allocation = "on-demand",
    ttl = tonumber(os.getenv("TTL") or "600"),
    -- KEEPALIVE=s: an SSH node silent about 2 s + 1 s is lost (test_aws_crash.py's link dropped)
    keepalive_interval = tonumber(os.getenv("KEEPALIVE") or "15"),
    keepalive_count = os.getenv("KEEPALIVE") and 1 or nil,
    on_event = function(ev)
      if ev.type == "InstanceLost" then print("lost", ev.node, ev.reason) end
    end,
  }
  print("uid", pool.uid)
  print("READY")
  io.stdout:flush()
  local hold = sky.fn(function(s) return sky.sh("sleep " .. s) end)
  if os.getenv("MAP") then  -- MAP tasks of HOLD seconds each, spread over the nodes
    local items = {}
    for i = 1, tonumber(os.getenv("MAP")) do items[i] = i end
    local seconds = os.getenv("HOLD")
    local out = pool:map(function(x)
      sky.sh("sleep " .. seconds)
      return x * 2
    end, items)
    local sum = 0
    for _, v in ipairs(out) do sum = sum + v end
    print("map", #out, sum)
  else
    pool:broadcast(hold(tonumber(os.getenv("HOLD") or "5")))
  end
end
print("done")
