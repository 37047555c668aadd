-- Driven by test_aws_spot.py: a spot pool of two on the local cloud (CLOUD as in aws_pool.lua)
-- with replace = true; SPOT_NOTICE=0 sets sky.aws's spot_notice = false. Prints its uid,
-- `node I INSTANCE` per node and READY, then runs MAP tasks of HOLD seconds (x → x*2), one at a
-- time per node and none queued ahead on a node (prefetch 0), so that a drained node takes no
-- more. Events of lost, preempted and replaced nodes are printed as they come; with WAIT_LOST=1
-- the script waits (60 s at most) for a node to be lost and replaced before the map's line,
-- `map COUNT SUM`.
local cloud = sky.json.decode((assert(os.getenv("CLOUD"), "CLOUD is not set")))
local function say(...)
  print(...)
  io.stdout:flush()
end
local seen = {}
do
  local pool <close> = sky.compute {
    provider = sky.aws { endpoint = cloud.endpoint, region = cloud.region, subnet = cloud.subnets, public_ip = false,
      ssh_cidr = "10.213.0.1/32", user = "root", poll_interval = 0.2, spot_notice = os.getenv("SPOT_NOTICE") ~= "0",
      on_expiry = "kill -TERM 1" },  -- powers the test host off (sshd is its PID 1), never this machine
    accelerator = "T4", nodes = 2, display = "quiet", allocation = "always-spot", replace = true,
    concurrency = 1, prefetch = 0,
    on_event = function(ev)
      seen[ev.type] = true
      if ev.type == "InstancePreempted" then
        say("preempted", ev.node, ev.instance, ev.reason, ev.action or "", ev.notice_time or "")
      elseif ev.type == "InstanceLost" then
        say("lost", ev.node, ev.reason)
      elseif ev.type == "InstanceReplaced" then
        say("replaced", ev.node, ev.new_node, ev.old_instance, ev.new_instance)
      elseif ev.type == "ReplaceFailed" then
        say("replace_failed", ev.node, ev.reason)
      end
    end,
  }
  say("uid", pool.uid)
  say("market", pool.spot and "spot" or "on-demand")
  for i, inst in ipairs(pool.instances) do say("node", i - 1, inst.id) end
  say("READY")
  local items = {}
  for i = 1, tonumber(os.getenv("MAP") or "8") do items[i] = i end
  local seconds = os.getenv("HOLD") or "2"
  local out = pool:map(function(x)
    sky.sh("sleep " .. seconds)
    return x * 2
  end, items)
  if os.getenv("WAIT_LOST") == "1" then
    local t = 0
    while not (seen.InstanceLost and (seen.InstanceReplaced or seen.ReplaceFailed)) and t < 60 do
      sky.sleep(0.1)
      t = t + 0.1
    end
  end
  local sum = 0
  for _, v in ipairs(out) do sum = sum + v end
  say("map", #out, sum)
end
say("closed")
