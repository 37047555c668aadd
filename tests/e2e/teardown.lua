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
elseif mode == "busy-pcall" then
  -- Busy Lua code that catches the interrupt and ends normally: the run was still interrupted.
  -- READY from inside the pcall: the signal cannot land before the code that catches it.
  local _, err = pcall(function()
    print("READY")
    io.stdout:flush()
    while true do end
  end)
  io.stderr:write("caught ", tostring(err.code), "\n")
elseif mode == "task" then
  -- A task starts a child process on the worker; it must go with the worker.
  local h = sky.spawn(function() return nap() >> pool end)
  sky.sleep(0.3)
  print("READY")
  io.stdout:flush()
  return h:wait()
elseif mode == "late" then
  -- Markers around a pool's teardown, so that the test can send later signals at chosen points:
  -- `closing` closes first (the pool's teardown starts right after it), `gone` after the pool.
  local function marker(text)
    return setmetatable({}, { __close = function() print(text); io.stdout:flush() end })
  end
  local gone <close> = marker("WORKERS GONE")
  local inner <close> = sky.compute { nodes = 2, display = "quiet" }
  report(inner)
  local closing <close> = marker("TEARDOWN")
  local h = sky.spawn(function() return nap() >> inner end)
  sky.sleep(0.3)
  print("READY")
  io.stdout:flush()
  return h:wait()
elseif mode == "sh" then
  -- A sky.sh command leads a process group of its own: it must go with its worker all the same.
  local started = false
  pool:on("log", function(ev) started = started or ev.text == "started" end)
  local h = sky.spawn(function()
    return sky.fn(function() sky.sh("sleep 60 & echo started; sleep 60") end)() >> pool
  end)
  while not started do sky.sleep(0.02) end
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
