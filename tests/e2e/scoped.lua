-- Driven by test_teardown.py: a scoped pool (sky.pool{...}(main)) or a pool with a timeout,
-- ending as arg[1] says. Prints "PID n" for every worker and READY once a task runs (its child
-- process is then there for the test to see); "WAIT" lines block on stdin until the test has
-- looked at the processes.
local mode = arg[1]
local nap = sky.fn(function()
  print("napping")  -- a Log event: the task runs, its child comes next
  os.execute("sleep 120")
end)

local function report(p)
  for _, n in ipairs(p:nodes_info()) do print("PID " .. n.pid) end
end

local function wait_for_test(what)
  print("WAIT " .. what)
  io.stdout:flush()
  io.read("l")  -- blocks the whole host, loop included, until the test writes a line
end

--- Starts `nap` on every node of the current pool, from a spawned coroutine (which shares the
--- current pool); prints READY once every node runs it. Returns the spawned task.
local function nap_everywhere()
  local p = sky.current_pool()
  local running = 0
  p:on("Log", function() running = running + 1 end)
  local h = sky.spawn(function() return sky.broadcast(nap()) end)
  while running < p.nodes and p.state == "ready" do sky.sleep(0.02) end
  if running < p.nodes then return h:wait() end  -- raises why (the pool ended first)
  print("READY")
  io.stdout:flush()
  return h
end

if mode == "return" or mode == "raise" then
  -- Teardown at the end of the scoped call, both ways, checked while the host still runs.
  local main = sky.pool { nodes = 2, display = "quiet" }(function(x)
    report(sky.current_pool())
    nap_everywhere()  -- still running when main ends: it goes with the pool
    wait_for_test("scope")
    if mode == "raise" then error("deliberate failure in main") end
    return x * 2
  end)
  local ok, r = pcall(main, 21)
  print(ok and ("RESULT " .. r) or ("CAUGHT " .. tostring(r)))
  wait_for_test("after")
  if not ok then error(r, 0) end
elseif mode == "timeout-task" then
  -- The timeout passes while a task runs: the task fails with PoolTimeout, the script with it.
  sky.pool { nodes = 2, timeout = 3 }(function()
    report(sky.current_pool())
    return nap_everywhere():wait()
  end)()
elseif mode == "timeout-idle" then
  -- The timeout passes while nothing runs; the next task fails with PoolTimeout.
  sky.pool { nodes = 2, timeout = 2 }(function()
    local p = sky.current_pool()
    report(p)
    print("READY")
    io.stdout:flush()
    local deadline = os.time() + 60
    while p.state ~= "destroyed" and os.time() < deadline do sky.sleep(0.05) end
    print("STATE " .. p.state)
    io.stdout:flush()
    local _ = nap() >> sky
  end)()
elseif mode == "stuck" then
  -- The host gets stuck (blocked here, then SIGSTOPped by the test) with a task running: the
  -- workers end on their own once the timeout and its grace have passed.
  sky.pool { nodes = 2, timeout = 3, display = "quiet" }(function()
    report(sky.current_pool())
    nap_everywhere()
    wait_for_test("forever")
  end)()
end
