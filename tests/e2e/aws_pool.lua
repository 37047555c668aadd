-- sky.aws end to end on the local cloud (tests/e2e/test_aws*.py set CLOUD to what
-- tests/support/local_cloud.py printed, ENDPOINT when a fault proxy stands in front of it, NODES,
-- ALLOCATION and HOST_KEYS): offers → launch → SSH bootstrap → a task and a broadcast → teardown. Prints
-- what the tests check, tab-separated: uid, market (spot or on-demand, $/h per node), each
-- failed attempt, one, broadcast, closed.
local cloud = sky.json.decode((assert(os.getenv("CLOUD"), "CLOUD is not set")))
local f = sky.fn(function(x) return { x = x * 2, host = sky.instance_info().hostname } end)
do
  local pool <close> = sky.compute {
    provider = sky.aws { endpoint = os.getenv("ENDPOINT") or cloud.endpoint, region = cloud.region,
      subnet = cloud.subnets, public_ip = false, ssh_cidr = "10.213.0.1/32", user = "root", poll_interval = 0.2,
      host_keys = os.getenv("HOST_KEYS"),
      on_expiry = "kill -TERM 1" },  -- powers the test host off (sshd is its PID 1), never this machine
    accelerator = "T4", nodes = tonumber(os.getenv("NODES") or "2"), display = "quiet",
    allocation = os.getenv("ALLOCATION") or "spot-if-available",
    on_event = function(ev)
      if ev.type == "AttemptFailed" then
        print("failed", ev.zone, ev.spot and "spot" or "on-demand", ev.reason)
      end
    end,
  }
  print("uid", pool.uid)
  print("market", pool.spot and "spot" or "on-demand", ("%.5f"):format(pool.price))
  local r = f(21) >> pool
  print("one", r.x)
  local all = pool:broadcast(f(1))
  print("broadcast", #all, table.unpack((function()
    local hosts = {}
    for i, v in ipairs(all) do hosts[i] = v.host end
    return hosts
  end)()))
end
print("closed")
