-- Driven by tests/e2e/test_slurm.py against tests/support/slurm-cluster.sh. arg[1] = mode.
local mode = arg[1]
local N = tonumber(os.getenv("NODES") or "2")
local opts = { partition = os.getenv("PARTITION"), constraint = os.getenv("CONSTRAINT") }

local hostname = sky.fn(function() return io.open("/proc/sys/kernel/hostname"):read("l") end)
local square = sky.fn(function(x) return x * x end)

if mode == "tasks" then
  local events = {}
  local pool <close> = sky.compute { provider = os.getenv("BYNAME") and "slurm" or sky.slurm(opts), nodes = N, ttl = 30,
    accelerator = os.getenv("ACCEL"),
    on_event = function(ev) events[#events + 1] = ev.type end }
  local hosts = pool:broadcast(hostname())
  print(table.concat(hosts, " "))
  print(table.concat(pool:map(square, { 1, 2, 3, 4, 5, 6, 7, 8, 9 }), " "))
  print(square(7) >> pool)
  local info = sky.fn(function() local i = sky.instance_info(); return i.head_addr, i.total_nodes end)
  local head, total = pool:run(info())
  print(head, total)
elseif mode == "pending" then
  local ok, err = pcall(sky.compute, { provider = sky.slurm(opts), nodes = N, provision_timeout = tonumber(os.getenv("PT") or "4"),
    on_event = function(ev) if ev.type == "JobPending" then print("pending " .. ev.reason) io.stdout:flush() end end })
  print(ok, err and err.code)
  print(tostring(err))
elseif mode == "bad" then
  local ok, err = pcall(sky.compute, { provider = sky.slurm(opts), nodes = N, accelerator = os.getenv("ACCEL") })
  print(ok, err and err.code)
  print(tostring(err))
elseif mode == "hold" then
  -- ready, say so, then wait in a task: the test scancels, drains or kills from outside
  local pool <close> = sky.compute { provider = sky.slurm(opts), nodes = N, ttl = tonumber(os.getenv("TTL") or "30"),
    retries = tonumber(os.getenv("RETRIES") or "1") }
  print("ready") io.stdout:flush()
  local slow = sky.fn(function(s) local t = os.time() + s; while os.time() < t do end; return sky.instance_info().node end)
  local ok, err = pcall(function() return sky.gather(slow(tonumber(os.getenv("SLOW") or "6")), slow(tonumber(os.getenv("SLOW") or "6"))) >> pool end)
  print("result", ok, ok and "" or (err.code or tostring(err)))
  io.stdout:flush()
end

if mode == "timelimit" then
  -- a one-minute allocation running a task that wants three: Slurm ends it, the task fails
  local now = require("skyhost.core").now
  local pool <close> = sky.compute { provider = sky.slurm { time = 1 }, nodes = 1, retries = 0, name = "timelimit" }
  local t0 = now()
  local slow = sky.fn(function() local t = os.time() + 180; while os.time() < t do end; return "finished" end)
  local ok, err = pcall(function() return slow() >> pool end)
  print("result", ok, ok and "" or (err.code or tostring(err)), ("%.0f"):format(now() - t0))
end

if mode == "torch" then
  -- pool:torchrun on Slurm nodes: Debian's python3-torch, gloo between the nodes' addresses
  local pool <close> = sky.compute { provider = sky.slurm(opts), nodes = 2, display = "quiet", metrics_interval = 0 }
  pool:on("log", function(ev) print(ev.node, ev.text) end)
  local rs = pool:torchrun("scripts/torch_ddp.py", { args = { "--steps", 5 }, timeout = 200,
    launcher = "/usr/bin/python3 tests/support/torchrun.py" })
  for _, r in ipairs(rs) do print("rank result", r.node, r.code) end
end

if mode == "bench" then
  -- time to ready of an N-node pool, then the round trip of a trivial task (median of 200)
  local t0 = sky.now and sky.now() or os.clock()
  local now = require("skyhost.core").now
  t0 = now()
  local pool <close> = sky.compute { provider = sky.slurm(opts), nodes = N, display = "quiet" }
  local ready = now() - t0
  local nop = sky.fn(function() return 1 end)
  local _ = nop() >> pool
  local rt = {}
  for i = 1, 200 do
    local s = now()
    _ = nop() >> pool
    rt[i] = now() - s
  end
  table.sort(rt)
  print(("ready_s=%.3f roundtrip_ms=%.3f"):format(ready, rt[100] * 1000))
end
