-- The JSON/REST clouds end to end on their fakes (tests/e2e/test_clouds.py sets FAKE to what
-- tests/support/cloud_fake/cloud_fake.py printed, CLOUDS to a comma-separated provider list and
-- NODES): offers → launch → SSH → a task and a broadcast → teardown. Prints what the test checks,
-- tab-separated: uid, each failed attempt, where the pool runs, one, broadcast, closed.
local fake = sky.json.decode((assert(os.getenv("FAKE"), "FAKE is not set")))
local make = {
  runpod = function() return sky.runpod { api = fake.runpod, region = "US", user = "root", poll_interval = 0.2 } end,
  lambda = function() return sky.lambda { api = fake.lambda, region = "us-east-1", user = "root", poll_interval = 0.2 } end,
  digitalocean = function() return sky.digitalocean { api = fake.digitalocean, user = "root", poll_interval = 0.2 } end,
  vast = function() return sky.vast { api = fake.vast, user = "root", poll_interval = 0.2 } end,
}
local providers = {}
for name in (assert(os.getenv("CLOUDS"), "CLOUDS is not set")):gmatch("[^,]+") do providers[#providers + 1] = make[name]() end
local f = sky.fn(function(x) return { x = x * 2, host = sky.instance_info().hostname } end)
do
  local pool <close> = sky.compute {
    provider = providers, accelerator = "H100", nodes = tonumber(os.getenv("NODES") or "2"),
    display = "quiet",
    on_event = function(ev)
      if ev.type == "AttemptFailed" then print("failed", ev.provider, ev.region, ev.reason) end
    end,
  }
  print("uid", pool.uid)
  local r = f(21) >> pool
  print("one", r.x)
  local all = pool:broadcast(f(1))
  local hosts = {}
  for i, v in ipairs(all) do hosts[i] = v.host end
  print("broadcast", #all, table.unpack(hosts))
end
print("closed")
