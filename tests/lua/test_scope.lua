-- The scoped form sky.pool{...}(main), the current pool (`>> sky`, sky.run, sky.broadcast,
-- sky.map), and a pool's lifetime `timeout`, on the local provider. Run by skyhost.
local t = require "testlib"
local sky = require "sky"

local add = sky.fn(function(a, b) return a + b end)
local whoami = sky.fn(function() return sky.instance_info().node end)
local pool_of = sky.fn(function() return sky.instance_info().pool end)
local divmod = sky.fn(function(a, b) return a // b, a % b end)

local alive = t.alive

local function pids_of(p)
  local out = {}
  for _, n in ipairs(p:nodes_info()) do out[#out + 1] = n.pid end
  return out
end

--- Waits (bounded) until none of `pids` runs; returns those still running.
local function gone(pids, within)
  local deadline = os.time() + (within or 20)
  while true do
    local left = {}
    for _, pid in ipairs(pids) do
      if alive(pid) then left[#left + 1] = pid end
    end
    if #left == 0 or os.time() > deadline then return left end
    sky.sleep(0.05)
  end
end

t.test("outside any scoped pool: no current pool, and how to get one", function()
  t.eq(sky.current_pool(), nil)
  local e = t.raises(function() return add(1, 2) >> sky end, "no current pool")
  t.eq(e.code, "NoPool")
  t.ok(tostring(e):find("sky.pool{...}", 1, true), tostring(e))
  t.ok(tostring(e):find("sky.compute{...}", 1, true), tostring(e))
  t.ok(tostring(e):find("^[^:]*test_scope.lua:%d+:"), "blamed on the script's line: " .. tostring(e))
  t.raises(function() return (add(1, 2) & add(3, 4)) >> sky end, "no current pool")
  t.raises(function() return sky.run(add(1, 2)) end, "sky.run: no current pool")
  t.raises(function() return sky.broadcast(whoami()) end, "sky.broadcast: no current pool")
  t.raises(function() return sky.map(add, { 1 }) end, "sky.map: no current pool")
end)

t.test("a scoped pool runs main with its arguments and returns its results", function()
  local seen
  local main = sky.pool { nodes = 2, display = "quiet" }(function(a, b)
    seen = sky.current_pool()
    t.eq(seen.state, "ready")
    t.eq(add(a, b) >> sky, a + b)
    t.eq({ sky.run(divmod(17, 5)) }, { 3, 2 })
    t.eq((add(1, 1) & add(2, 2)) >> sky, { 2, 4 })
    t.eq(sky.gather(add(1, 2), add(3, 4)) >> sky, { 3, 7 })
    t.eq(sky.broadcast(whoami()), { 0, 1 })
    t.eq(sky.map(function(x) return x * x end, { 1, 2, 3 }, { concurrency = 2 }), { 1, 4, 9 })
    return "done", nil, 3
  end)
  t.eq(type(main), "function")
  local r = table.pack(main(20, 22))
  t.eq(r.n, 3)
  t.eq({ r[1], r[2], r[3] }, { "done", nil, 3 })
  t.eq(seen.state, "destroyed")
  t.eq(sky.current_pool(), nil)
  -- The scoped function can be called again: a new pool each time.
  local again = sky.pool { display = "quiet" }(function() return sky.current_pool() end)
  local p1, p2 = again(), again()
  t.ok(p1 ~= p2 and p1.state == "destroyed" and p2.state == "destroyed")
end)

t.test("a scoped pool that raises is torn down and its error goes on", function()
  local pool, pids
  local main = sky.pool { nodes = 2, display = "quiet" }(function()
    pool = sky.current_pool()
    pids = pids_of(pool)
    error({ code = "Mine" })
  end)
  local ok, err = pcall(main)
  t.eq(ok, false)
  t.eq(err.code, "Mine")
  t.eq(pool.state, "destroyed")
  t.eq(gone(pids), {})
  t.eq(sky.current_pool(), nil)
  -- A task's failure inside the scope is the usual TaskFailed.
  local boom = sky.fn(function() error("boom") end)
  t.raises(sky.pool { display = "quiet" }(function() return boom() >> sky end), "task failed on node 0")
end)

t.test("options are checked when the scoped form is made", function()
  t.raises(function() sky.pool { nodez = 2 } end, "unknown option 'nodez'")
  t.raises(function() sky.pool { timeout = 0 } end, "'timeout' must be a positive number")
  t.raises(function() sky.pool {}(42) end, "expected a function, got number")
end)

t.test("nested scoped pools: the inner one is current inside, the outer one after", function()
  local outer_name, inner_name, back
  sky.pool { name = "outer", display = "quiet" }(function()
    outer_name = pool_of() >> sky
    sky.pool { name = "inner", nodes = 2, display = "quiet" }(function()
      inner_name = pool_of() >> sky
      t.eq(#sky.broadcast(whoami()), 2)
    end)()
    back = pool_of() >> sky
  end)()
  t.eq({ outer_name, inner_name, back }, { "outer", "inner", "outer" })
end)

t.test("scoped pools in two coroutines do not see each other's", function()
  local function job(name, nodes)
    return sky.pool { name = name, nodes = nodes, display = "quiet" }(function()
      local seen = {}
      for i = 1, 5 do
        seen[#seen + 1] = pool_of() >> sky
        -- A spawned coroutine shares its parent's current pool.
        seen[#seen + 1] = sky.spawn(function() return pool_of() >> sky end):wait()
        sky.sleep(0.01 * i)  -- let the other coroutine run in between
      end
      return seen, #sky.broadcast(whoami())
    end)
  end
  local a = sky.spawn(job("left", 1))
  local b = sky.spawn(job("right", 3))
  local sa, na = a:wait()
  local sb, nb = b:wait()
  for _, v in ipairs(sa) do t.eq(v, "left") end
  for _, v in ipairs(sb) do t.eq(v, "right") end
  t.eq({ #sa, na, #sb, nb }, { 10, 1, 10, 3 })
  t.eq(sky.current_pool(), nil)
end)

t.test("timeout while idle: the pool ends, tasks after it fail with PoolTimeout", function()
  local evs = {}
  local p = sky.compute { timeout = 1, nodes = 2, display = "quiet", on_event = function(ev) evs[ev.type] = ev end }
  local pids = pids_of(p)
  local deadline = os.time() + 60
  while p.state ~= "destroyed" and os.time() < deadline do sky.sleep(0.05) end
  t.eq(p.state, "destroyed")
  t.eq(gone(pids), {})
  local e = t.raises(function() return add(1, 2) >> p end, "its timeout of 1 s passed")
  t.eq(e.code, "PoolTimeout")
  t.eq(e.timeout, 1)
  t.eq(evs.ClusterDraining.reason, "its timeout of 1 s passed")
  t.eq(evs.ClusterDestroyed.reason, "its timeout of 1 s passed")
  t.eq(evs.CostSummary.reason, "its timeout of 1 s passed")
  p:close()  -- closing it again is fine
end)

t.test("timeout during a task: the waiting task fails with PoolTimeout, nothing runs on", function()
  local evs, started = {}, false
  local nap = sky.fn(function() os.execute("sleep 120") return "woke" end)
  local pids
  local ok, e = pcall(sky.pool { timeout = 2, display = "quiet", on_event = function(ev)
    evs[ev.type] = ev
    if ev.type == "TaskStarted" then started = true end
  end }(function()
    pids = pids_of(sky.current_pool())
    return nap() >> sky
  end))
  t.eq(ok, false)
  t.eq(e.code, "PoolTimeout", tostring(e))
  t.ok(tostring(e):find("its timeout of 2 s passed", 1, true), tostring(e))
  t.eq(evs.CostSummary.reason, "its timeout of 2 s passed")
  if not started then io.stderr:write("note: the pool timed out before its task started\n") end
  t.eq(gone(pids), {})
end)

t.test("timeout during a map, in a scoped pool spawned beside another", function()
  local slow = sky.fn(function(x) os.execute("sleep 120") return x end)
  local timed = sky.spawn(sky.pool { timeout = 2, nodes = 2, display = "quiet" }(function()
    return sky.map(slow, { 1, 2, 3, 4 })
  end))
  local other = sky.spawn(sky.pool { display = "quiet" }(function()
    sky.sleep(0.5)
    return add(1, 2) >> sky
  end))
  t.eq(other:wait(), 3)
  local ok, e = pcall(timed.wait, timed)
  t.eq(ok, false)
  t.eq(e.code, "PoolTimeout", tostring(e))
end)

t.test("a pool ended by its timeout has no live timer left behind", function()
  local core = require "skyhost.core"
  local before = core.live_handles()
  local p = sky.compute { timeout = 30, display = "quiet" }
  t.eq(add(1, 1) >> p, 2)
  p:close()
  sky.sleep(1.5)  -- the watcher's nap ends, and with it the watcher
  t.eq(core.live_handles(), before)
end)

t.done()
