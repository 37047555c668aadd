-- replace = true: a lost or preempted node gets a new instance of the same offer from the same
-- provider (stdlib/sky/pool/replace.lua); the lost node's tasks run there too.
local t = require "testlib"
local fake = require "fakeprov"
local core = require "skyhost.core"
local sched = require "sky.internal.sched"
local sky = require "sky"

local offer = fake.offer
local quiet = "quiet"

-- Waits (up to 20 s) for an event of type `ty` in `seen`; returns it.
local function wait_event(seen, ty)
  local deadline = core.now() + 20
  while core.now() < deadline do
    for _, e in ipairs(seen) do if e.type == ty then return e end end
    sky.sleep(0.02)
  end
end

local function count(seen, ty)
  local n = 0
  for _, e in ipairs(seen) do if e.type == ty then n = n + 1 end end
  return n
end

-- Worker processes this skyhost process still has as children.
local function children()
  local f = io.popen("pgrep -P " .. core.pid() .. " skyworker")
  local out = f:read("a")
  f:close()
  return out
end

local slow_double = sky.fn(function(x)
  os.execute("sleep 0.05")
  return 2 * x
end)

-- Every instance created was terminated, but for `gone` (preempted: its provider ended it).
local function all_ended(l, gone)
  local term = {}
  for _, id in ipairs(l.terminated) do term[id] = (term[id] or 0) + 1 end
  for _, id in ipairs(l.created) do
    if id ~= gone and term[id] ~= 1 then return false, id .. " terminated " .. (term[id] or 0) .. " times" end
  end
  return true
end

local function expected(n)
  local out = {}
  for i = 1, n do out[i] = 2 * i end
  return out
end

local function items(n)
  local out = {}
  for i = 1, n do out[i] = i end
  return out
end

t.test("replace is a checked boolean option", function()
  t.raises(function() sky.compute { replace = "yes", display = quiet } end, "replace")
end)

t.test("a preempted node is replaced, and a map started before completes with every result", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  local results
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, concurrency = 1, replace = true,
      display = quiet, allocation = "always-spot", on_event = function(ev) seen[#seen + 1] = ev end }
    local victim = pool.instances[2].id
    local killer = sched.spawn(function()
      sky.sleep(0.3)
      l.preempted[victim] = true
      os.execute("kill -9 " .. fake.pids(pool)[2])
    end)
    results = pool:map(slow_double, items(80))
    sched.join(killer)
    local pre = wait_event(seen, "InstancePreempted")
    t.ok(pre, "no InstancePreempted")
    local rep = wait_event(seen, "InstanceReplaced")
    t.ok(rep, "no InstanceReplaced")
    t.eq({ rep.node, rep.new_node, rep.old_instance }, { 1, 2, victim })
    t.eq(rep.new_instance, l.created[3])
    t.eq(l.provisions, { "s:spot", "s:spot" })  -- the same offer, the same market
    t.eq(pool.core:alive_count(), 2)
    local on_new = 0
    for _, e in ipairs(seen) do
      if e.type == "TaskCompleted" and e.node == rep.new_node then on_new = on_new + 1 end
    end
    t.ok(on_new > 0, "no task ran on the replacement")
  end
  t.eq(results, expected(80))
  t.ok(all_ended(l, l.created[2]))
  local cost = wait_event(seen, "CostSummary")
  local billed = {}
  for _, r in ipairs(cost.rows) do billed[r.id] = r.node end
  t.eq({ billed[l.created[1]], billed[l.created[2]], billed[l.created[3]] }, { 0, 1, 2 })
  t.eq(count(seen, "ReplaceFailed"), 0)
end)

t.test("a lost link (the worker killed) is replaced", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[1])
    local rep = wait_event(seen, "InstanceReplaced")
    t.ok(rep, "no InstanceReplaced")
    t.eq({ rep.node, rep.old_instance, rep.new_instance }, { 0, l.created[1], l.created[3] })
    t.eq(count(seen, "InstancePreempted"), 0)
    t.eq(pool:map(slow_double, items(8)), expected(8))
    t.eq(pool.core:alive_count(), 2)
  end
  t.ok(fake.all_terminated(l))
end)

t.test("two nodes lost at once: each gets its own replacement", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 3, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    local pids = fake.pids(pool)
    os.execute(("kill -9 %d %d"):format(pids[1], pids[3]))
    local deadline = core.now() + 20
    while count(seen, "InstanceReplaced") < 2 and core.now() < deadline do sky.sleep(0.02) end
    local got = {}
    for _, e in ipairs(seen) do
      if e.type == "InstanceReplaced" then got[e.node] = e.new_node end
    end
    t.ok(got[0] and got[2], "not both replaced")
    t.eq({ math.min(got[0], got[2]), math.max(got[0], got[2]) }, { 3, 4 })
    t.eq(pool.core:alive_count(), 3)
    t.eq(pool:map(slow_double, items(9)), expected(9))
  end
  t.ok(fake.all_terminated(l))
  t.eq(#l.created, 5)
end)

t.test("a replacement that fails: ReplaceFailed, and the tasks go on on the other nodes", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) },
    behave = function(_, _, call) return call == 1 and "ok" or "capacity" end }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, concurrency = 1, replace = true,
      display = quiet, on_event = function(ev) seen[#seen + 1] = ev end }
    local killer = sched.spawn(function()
      sky.sleep(0.2)
      os.execute("kill -9 " .. fake.pids(pool)[2])
    end)
    t.eq(pool:map(slow_double, items(30)), expected(30))
    sched.join(killer)
    local f = wait_event(seen, "ReplaceFailed")
    t.ok(f, "no ReplaceFailed")
    t.eq(f.node, 1)
    t.ok(f.reason:find("capacity"), f.reason)
    t.eq(count(seen, "InstanceReplaced"), 0)
    t.eq(pool.core:alive_count(), 1)
    t.eq(pool:map(slow_double, items(4)), expected(4))
  end
  t.ok(fake.all_terminated(l))
end)

t.test("without replace a lost node is not replaced", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    l.preempted[pool.instances[2].id] = true
    os.execute("kill -9 " .. fake.pids(pool)[2])
    t.ok(wait_event(seen, "InstancePreempted"), "no InstancePreempted")
    sky.sleep(0.3)
    t.eq(#l.provisions, 1)
    t.eq(count(seen, "InstanceReplaced") + count(seen, "ReplaceFailed"), 0)
    t.eq(pool.core:alive_count(), 1)
    t.eq(pool:map(slow_double, items(4)), expected(4))
  end
  t.ok(all_ended(l, l.created[2]))
end)

t.test("at most `nodes` replacements", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 1, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[1])
    local rep = wait_event(seen, "InstanceReplaced")
    t.ok(rep, "no InstanceReplaced")
    t.eq(pool:run(slow_double(5)), 10)
    os.execute("kill -9 " .. pool.core:node(rep.new_node).pid)
    local f = wait_event(seen, "ReplaceFailed")
    t.ok(f, "no ReplaceFailed")
    t.ok(f.reason:find("all 1 replacements"), f.reason)
    t.eq(#l.provisions, 2)
  end
  t.ok(fake.all_terminated(l))
end)

t.test("a pool closed during a replacement leaves no process and no instance", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) },
    behave = function(_, _, call) return call == 1 and "ok" or { slow = 0.5 } end }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[2])
    t.ok(wait_event(seen, "InstanceLost"), "no InstanceLost")
    sky.sleep(0.1)  -- the replacement's provision call is under way
    t.eq(#l.provisions, 2)
  end
  t.ok(fake.all_terminated(l))
  t.eq(#l.created, 3)
  t.eq(count(seen, "InstanceReplaced"), 0)
  t.eq(children(), "")
end)

local whoami = sky.fn(function()
  local info = sky.instance_info()
  return { node = info.node, pid = info.pid }
end)

t.test("a replacement answers to its lost node's index: broadcast, sh, put, get, nodes_info", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[2])
    local rep = wait_event(seen, "InstanceReplaced")
    t.ok(rep, "no InstanceReplaced")
    t.eq({ rep.node, rep.new_node }, { 1, 2 })
    local new_pid = pool.core:node(2).pid
    local info = pool:nodes_info()
    t.eq(#info, 2)
    t.eq({ info[2].node, info[2].worker, info[2].pid, info[2].alive }, { 1, 2, new_pid, true })
    local r = pool:broadcast(whoami())
    t.eq(#r, 2)
    t.eq({ r[1].node, r[2].node, r[2].pid }, { 0, 1, new_pid })  -- it says it is node 1
    t.eq(#pool:sh("true"), 2)
    -- Transfers to node 1 go to the live replacement (worker 1 is dead: they would fail there).
    local f = assert(io.open(dir .. "/in", "w"))
    f:write("payload")
    f:close()
    pool:put(dir .. "/in", dir .. "/remote1", { node = 1 })
    t.eq(pool:get(dir .. "/remote1", dir .. "/back", { node = 1 }), { dir .. "/back" })
    t.eq(#pool:get(dir .. "/remote1", dir .. "/each"), 2)
    f = assert(io.open(dir .. "/each/1/remote1"))
    t.eq(f:read("a"), "payload")
    f:close()
  end
  os.execute("rm -rf '" .. dir .. "'")
  t.ok(fake.all_terminated(l))
end)

t.test("a replacement's replacement is node 1 too", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[2])
    t.ok(wait_event(seen, "InstanceReplaced"), "no first InstanceReplaced")
    os.execute("kill -9 " .. fake.pids(pool)[2])  -- node 1 again: now the replacement's worker
    local deadline = core.now() + 20
    while count(seen, "InstanceReplaced") < 2 and core.now() < deadline do sky.sleep(0.02) end
    local reps = {}
    for _, e in ipairs(seen) do
      if e.type == "InstanceReplaced" then reps[#reps + 1] = { e.node, e.new_node } end
    end
    t.eq(reps, { { 1, 2 }, { 1, 3 } })
    t.eq(pool:nodes_info()[2].worker, 3)
    local r = pool:broadcast(whoami())
    t.eq({ r[2].node, r[2].pid }, { 1, pool.core:node(3).pid })
  end
  t.ok(fake.all_terminated(l))
  t.eq(#l.created, 4)
end)

t.test("a broadcast started while a node is being replaced waits for the replacement", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) },
    behave = function(_, _, call) return call == 1 and "ok" or { slow = 0.5 } end }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[2])
    t.ok(wait_event(seen, "InstanceLost"), "no InstanceLost")
    t.eq(count(seen, "InstanceReplaced"), 0)  -- its provision call takes 0.5 s
    local r = pool:broadcast(whoami())
    local rep = wait_event(seen, "InstanceReplaced")
    t.ok(rep, "no InstanceReplaced")
    t.eq({ r[1].node, r[2].node, r[2].pid }, { 0, 1, pool.core:node(rep.new_node).pid })
  end
  t.ok(fake.all_terminated(l))
end)

t.test("a broadcast started while a replacement fails: that node's task fails, saying why", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) },
    behave = function(_, _, call) return call == 1 and "ok" or { slow = 0.3, ["then"] = "capacity" } end }
  local seen = {}
  do
    local pool <close> = sky.compute { provider = p, nodes = 2, replace = true, display = quiet,
      on_event = function(ev) seen[#seen + 1] = ev end }
    os.execute("kill -9 " .. fake.pids(pool)[2])
    t.ok(wait_event(seen, "InstanceLost"), "no InstanceLost")
    t.raises(function() pool:broadcast(whoami()) end, "node 1")
    t.ok(wait_event(seen, "ReplaceFailed"), "no ReplaceFailed")
    t.raises(function() pool:put("/etc/hostname", "/tmp/x", { node = 1 }) end, "node 1")
    t.eq(pool:run(whoami()).node, 0)  -- the pool as a whole goes on with node 0
  end
  t.ok(fake.all_terminated(l))
end)

t.done()
