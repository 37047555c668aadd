-- sky.gcp end to end on the GCP fake behind Prism (tests/e2e/test_gcp.py sets ENDPOINT to Prism's
-- address, ZONES, NODES, and GOOGLE_APPLICATION_CREDENTIALS to a key whose token_uri is the
-- fake's; PUBLIC_IP=1 for an external address): offers → instances.insert → SSH bootstrap → a task and a broadcast → teardown. Prints
-- what the test checks, tab-separated: uid, each failed attempt, one, broadcast, closed.
local zones = {}
for z in (assert(os.getenv("ZONES"), "ZONES is not set")):gmatch("[^,]+") do zones[#zones + 1] = z end
local f = sky.fn(function(x) return { x = x * 2, host = sky.instance_info().hostname } end)
do
  local pool <close> = sky.compute {
    provider = sky.gcp { project = "skyhost-test", zone = zones, endpoint = assert(os.getenv("ENDPOINT")),
      public_ip = os.getenv("PUBLIC_IP") == "1", user = "root", poll_interval = 0.2, retries = 2,
      on_expiry = "kill -TERM 1" },  -- powers the test host off (sshd is its PID 1), never this machine
    accelerator = "H100", nodes = tonumber(os.getenv("NODES") or "2"), display = "quiet",
    allocation = "on-demand",
    on_event = function(ev)
      if ev.type == "AttemptFailed" then print("failed", ev.zone, ev.reason) end
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
