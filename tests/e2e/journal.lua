-- Driven by test_journal.py: a pool on a provider the script defines ("mycloud", $1/h, its
-- instances are local workers), or on the local provider; prints its workers' PIDs and READY,
-- then waits for ever.
local provider = arg[1] == "local" and "local" or sky.provider {
  name = "mycloud",
  offers = function() return { { provider = "mycloud", instance_type = "m1", count = 0, price = 1.0 } } end,
  provision = function(_, _, n)
    local ids = {}
    for i = 1, n do ids[i] = "m-" .. i end
    return ids
  end,
  get_instance = function(_, _, id) return { id = id, state = "running", transport = "local" } end,
  terminate = function() end,
}
local pool <close> = sky.compute { provider = provider, nodes = 2, display = "quiet", name = arg[2] }
for _, n in ipairs(pool:nodes_info()) do print("PID " .. n.pid) end
print("READY")
io.stdout:flush()
while true do sky.sleep(1) end
