-- The JSON/REST clouds and GCP end to end on their fakes (tests/e2e/test_clouds.py sets FAKE to
-- what tests/support/cloud_fake/cloud_fake.py printed, CLOUDS to a comma-separated provider list,
-- NODES; GCP for sky.gcp, HOLD_FILE to hold the pool until that file exists): offers → launch →
-- SSH → a task and a broadcast → teardown. Prints what the test checks, tab-separated: uid, each
-- failed attempt, where the pool runs, one, broadcast, closed.
local fake = sky.json.decode((assert(os.getenv("FAKE"), "FAKE is not set")))
local make = {
  runpod = function() return sky.runpod { api = fake.runpod, catalog_api = fake.runpod_v2, region = "US", user = "root",
    poll_interval = 0.2 } end,
  lambda = function() return sky.lambda { api = fake.lambda, region = "us-east-1", user = "root", poll_interval = 0.2 } end,
  digitalocean = function() return sky.digitalocean { api = fake.digitalocean, user = "root", poll_interval = 0.2 } end,
  vast = function() return sky.vast { api = fake.vast, user = "root", poll_interval = 0.2 } end,
  -- GCP's fake (tests/support/gcp_fake.py, bed skyg) when GCP is set: {endpoint, zones}.
  gcp = function()
    local g = sky.json.decode((assert(os.getenv("GCP"), "GCP is not set")))
    return sky.gcp { project = "skyhost-test", zone = g.zones, endpoint = g.endpoint, user = "root", poll_interval = 0.2,
      retries = 2, on_expiry = "kill -TERM 1" }  -- powers the test host off (sshd is its PID 1), never this machine
  end,
}
local providers = {}
for name in (assert(os.getenv("CLOUDS"), "CLOUDS is not set")):gmatch("[^,]+") do providers[#providers + 1] = make[name]() end
local f = sky.fn(function(x) return { x = x * 2, host = sky.instance_info().hostname } end)
do
  local pool <close> = sky.compute {
    provider = providers, accelerator = "H100", nodes = tonumber(os.getenv("NODES") or "2"),
    display = "quiet", allocation = os.getenv("ALLOCATION"),
    on_event = function(ev)
      if ev.type == "AttemptFailed" then print("failed", ev.provider, ev.region, ev.zone or "", ev.reason) end
    end,
  }
  print("uid", pool.uid)
  print("placed", pool.offer.provider, pool.offer.region or "", pool.offer.zone or "")
  local hold = os.getenv("HOLD_FILE")  -- clouds_sweep.py: a live pool, held until this file exists
  if hold then
    print("READY")
    io.stdout:flush()
    while not io.open(hold) do sky.sleep(0.1) end
  end
  local r = f(21) >> pool
  print("one", r.x)
  local all = pool:broadcast(f(1))
  local hosts = {}
  for i, v in ipairs(all) do hosts[i] = v.host end
  print("broadcast", #all, table.unpack(hosts))
end
print("closed")
