-- Driven by test_teardown.py: opens pools, reports their worker PIDs, then ends as arg[1] says.
local pool <close> = sky.compute { nodes = 3, display = "quiet" }
local function report(p)
  for _, n in ipairs(p:nodes_info()) do print("PID " .. n.pid) end
end
report(pool)
local nap = sky.fn(function() os.execute("sleep 60") end)
local mode = arg[1]
if mode == "normal" then
  return
elseif mode == "error" then
  error("deliberate failure")
elseif mode == "left-open" then
  report(sky.compute { nodes = 2, display = "quiet" })  -- never closed by the script
  print("READY")
  return
elseif mode == "busy" then
  print("READY")
  io.stdout:flush()
  while true do end
elseif mode == "task" then
  -- A task starts a child process on the worker; it must go with the worker.
  local h = sky.spawn(function() return nap() >> pool end)
  sky.sleep(0.3)
  print("READY")
  io.stdout:flush()
  return h:wait()
elseif mode == "pcall" then
  -- Every call wrapped in pcall, retried for ever: the script itself never lets an error
  -- through, yet an interrupt must still end it.
  local first = true
  while true do
    pcall(function()
      local h = sky.spawn(function() return nap() >> pool end)
      if first then
        first = false
        sky.sleep(0.3)
        print("READY")
        io.stdout:flush()
      end
      return h:wait()
    end)
    pcall(sky.sleep, 0.01)
  end
elseif mode == "spawned" then
  -- A pool opened inside a spawned coroutine that is still waiting when the script is stopped.
  sky.spawn(function()
    local inner <close> = sky.compute { nodes = 1, display = "quiet" }
    report(inner)
    return nap() >> inner
  end)
  sky.sleep(0.5)
  print("READY")
  io.stdout:flush()
  return nap() >> pool
end
