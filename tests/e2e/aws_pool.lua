-- sky.aws end to end on the local cloud (tests/e2e/test_aws.py sets CLOUD to what
-- tests/support/local_cloud.py printed): offers → launch → SSH bootstrap → a task and a
-- broadcast → teardown. Prints what the test checks.
local cloud = sky.json.decode((assert(os.getenv("CLOUD"), "CLOUD is not set")))
local f = sky.fn(function(x) return { x = x * 2, host = sky.instance_info().hostname } end)
do
  local pool <close> = sky.compute {
    provider = sky.aws { endpoint = cloud.endpoint, region = cloud.region, subnet = cloud.subnet,
      public_ip = false, ssh_cidr = "10.203.0.1/32", user = "root", poll_interval = 0.2 },
    accelerator = "T4", nodes = 2, display = "quiet",
  }
  print("uid", pool.uid)
  local r = f(21) >> pool
  print("one", r.x)
  local all = pool:broadcast(f(1))
  print("broadcast", #all, all[1].host, all[2].host)
end
print("closed")
