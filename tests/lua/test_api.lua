-- The sky API end to end on the local provider: run by skyhost (see tests/CMakeLists.txt).
local t = require "testlib"
local sky = require "sky"

local pool <close> = sky.compute { nodes = 3, display = "quiet" }

local add = sky.fn(function(a, b) return a + b end)
local multi = sky.fn(function() return 1, nil, "three" end)
local whoami = sky.fn(function() return sky.instance_info().node end)

t.test("sky is preloaded and requireable", function()
  t.eq(require("sky"), sky)
  t.eq(_G.sky, sky)
end)

t.test("calling a sky.fn runs nothing and returns a pending task", function()
  local ran = false
  local f = sky.fn(function() ran = true end)
  local p = f()
  t.ok(tostring(p):find("^sky.pending"), tostring(p))
  t.eq(ran, false)
end)

t.test("local_call runs in this process", function()
  t.eq(add.local_call(2, 3), 5)
  t.eq(whoami.local_call(), 0)
end)

t.test(">> returns the first value", function()
  t.eq(add(2, 3) >> pool, 5)
  t.eq(multi() >> pool, 1)
end)

t.test("pool:run keeps every return value, nils included", function()
  local r = table.pack(pool:run(multi()))
  t.eq(r.n, 3)
  t.eq(r[1], 1); t.eq(r[2], nil); t.eq(r[3], "three")
end)

t.test("& runs tasks in parallel, results in order", function()
  local rs = (add(1, 1) & add(2, 2) & add(3, 3)) >> pool
  t.eq(rs, { 2, 4, 6 })
  local a, b = pool:run(add(10, 1) & add(20, 2))
  t.eq({ a, b }, { 11, 22 })
end)

t.test("sky.gather with many tasks returns a list", function()
  local ps = {}
  for i = 1, 500 do ps[i] = add(i, 1) end
  local rs = sky.gather(ps) >> pool
  t.eq(#rs, 500)
  for i = 1, 500 do t.eq(rs[i], i + 1) end
  t.eq(sky.gather(add(1, 2), add(3, 4)) >> pool, { 3, 7 })
end)

t.test("broadcast runs on every node, in node order", function()
  t.eq(pool:broadcast(whoami()), { 0, 1, 2 })
end)

t.test("map keeps input order and spreads over nodes", function()
  local items = {}
  for i = 1, 2000 do items[i] = i end
  local sq = pool:map(function(x) return x * x end, items)
  for i = 1, 2000 do t.eq(sq[i], i * i) end
  local nodes = pool:map(whoami, items, { concurrency = 8 })
  local seen = {}
  for _, n in ipairs(nodes) do seen[n] = true end
  t.eq(seen, { [0] = true, [1] = true, [2] = true })
  t.eq(pool:map(add, {}), {})
end)

t.test("instance_info on a worker", function()
  local info = pool:broadcast(sky.fn(function() return sky.instance_info() end)())
  t.eq(#info, 3)
  for i, inf in ipairs(info) do
    t.eq(inf.node, i - 1)
    t.eq(inf.total_nodes, 3)
    t.eq(inf.is_head, i == 1)
    t.eq(inf.provider, "local")
    t.ok(type(inf.hostname) == "string" and #inf.hostname > 0)
    t.ok(math.type(inf.pid) == "integer")
    t.ok(inf.head_addr)
  end
end)

t.test("shard splits lists with the same indices on every node", function()
  local xs, ys = {}, {}
  for i = 1, 10 do xs[i], ys[i] = i, -i end
  local parts = pool:broadcast(sky.fn(function(a, b)
    local mine, theirs = sky.shard(a, b)
    return { mine, theirs }
  end)(xs, ys))
  local all = {}
  for _, p in ipairs(parts) do
    for j, x in ipairs(p[1]) do
      all[#all + 1] = x
      t.eq(p[2][j], -x)
    end
  end
  t.eq(all, xs)
  local shuffled = pool:broadcast(sky.fn(function(a)
    return sky.shard(a, { shuffle = true, seed = 7 })
  end)(xs))
  local seen, order = {}, {}
  for _, p in ipairs(shuffled) do
    for _, x in ipairs(p) do seen[x] = true; order[#order + 1] = x end
  end
  t.eq(#order, 10)
  for i = 1, 10 do t.ok(seen[i], "item " .. i .. " in some shard") end
  t.ok(table.concat(order, ",") ~= table.concat(xs, ","), "shuffled")
  local again = pool:broadcast(sky.fn(function(a)
    return sky.shard(a, { shuffle = true, seed = 7 })
  end)(xs))
  t.eq(again, shuffled)
  t.eq({ sky.shard({ 1, 2, 3, 4 }, { node = 1, total_nodes = 2 }) }, { { 3, 4 } })
  t.raises(function() sky.shard({ 1 }, { 1, 2 }) end, "differ in length")
end)

t.test("a remote error is raised at the >> with node and message", function()
  local boom = sky.fn(function() error("boom") end)
  local err = t.raises(function() return boom() >> pool end, "test_api.lua:%d+: task failed on node %d: .*test_api.lua:%d+: boom")
  t.eq(err.code, "TaskFailed")
  t.ok(err.remote_traceback:find("stack traceback"), err.remote_traceback)
  t.ok(math.type(err.node) == "integer")
  -- The pool is still usable.
  t.eq(add(1, 2) >> pool, 3)
end)

t.test("the first failing task fails a group", function()
  local maybe = sky.fn(function(x) if x == 3 then error("three") end return x end)
  t.raises(function() return (maybe(1) & maybe(3)) >> pool end, "three")
  local items = { 1, 2, 3, 4 }
  t.raises(function() return pool:map(maybe, items) end, "three")
end)

t.test("unsendable results are an error, not a crash", function()
  local f = sky.fn(function() return coroutine.create(print) end)
  t.raises(function() return f() >> pool end, "cannot return thread %(result 1%)")
end)

t.test("functions and metatables do not come back, and the error says why", function()
  local fun = sky.fn(function() return 1, { f = function() end } end)
  t.raises(function() return pool:run(fun()) end,
    "task failed on node %d: cannot return function %(field 'f' of result 2%): a task returns data only")
  local meta = sky.fn(function() return setmetatable({}, { __index = function() end }) end)
  t.raises(function() return meta() >> pool end,
    "cannot return a table with a metatable %(result 1%).*the host never runs code that a node sends")
  local named = sky.fn(function() return { fmt = string.format } end)
  t.raises(function() return named() >> pool end, "cannot return function %(field 'fmt' of result 1%)")
  local env = sky.fn(function() return _ENV end)
  t.raises(function() return env() >> pool end, "cannot return the global table %(result 1%)")
  -- the pool is still usable, on the same node
  t.eq(sky.fn(function() return { 1, { x = "y" } } end)() >> pool, { 1, { x = "y" } })
end)

t.test("worker print comes back as Log events tagged with node", function()
  local logs = {}
  pool:on("log", function(ev) logs[#logs + 1] = ev end)
  local _ = sky.fn(function() print("hello", 42) end)() >> pool
  t.eq(#logs, 1)
  t.eq(logs[1].text, "hello\t42")
  t.ok(math.type(logs[1].node) == "integer")
  t.eq(logs[1].type, "Log")
end)

t.test("TaskStarted and TaskCompleted events", function()
  local started, completed = {}, {}
  pool:on("task_started", function(ev) started[#started + 1] = ev end)
  pool:on("TaskCompleted", function(ev) completed[#completed + 1] = ev end)
  local _ = add(1, 1) >> pool
  t.raises(function() return sky.fn(function() error("x") end)() >> pool end)
  t.eq(#started, 2)
  t.eq(#completed, 2)
  t.eq(completed[1].ok, true)
  t.eq(completed[2].ok, false)
  t.ok(completed[1].duration >= 0 and completed[1].duration < 5)
  t.eq(completed[1].task, started[1].task)
  t.raises(function() pool:on("no_such_event", print) end, "unknown event 'no_such_event'")
end)

t.test("two pools from two coroutines progress at the same time", function()
  local other <close> = sky.compute { nodes = 1, display = "quiet" }
  local nap = sky.fn(function(s) os.execute("sleep " .. s) return s end)
  local t0 = require("skyhost.core").now()
  local h1 = sky.spawn(function() return nap(0.5) >> pool end)
  local h2 = sky.spawn(function() return nap(0.5) >> other end)
  t.eq(sky.wait_all { h1, h2 }, { 0.5, 0.5 })
  local dt = require("skyhost.core").now() - t0
  t.ok(dt < 0.9, ("took %.2fs: the two waits did not overlap"):format(dt))
end)

t.test("a wait inside a plain coroutine works", function()
  local co = coroutine.wrap(function(x) return add(x, 1) >> pool end)
  t.eq(co(41), 42)
end)

t.test("a slow task does not block the others on its node", function()
  local one <close> = sky.compute { nodes = 1, concurrency = 2, display = "quiet" }
  local nap = sky.fn(function(s) os.execute("sleep " .. s) return s end)
  local core = require "skyhost.core"
  local slow = sky.spawn(function() return nap(1) >> one end)
  local t0 = core.now()
  t.eq(add(2, 2) >> one, 4)
  t.ok(core.now() - t0 < 0.5, "quick task waited for the slow one")
  t.eq(slow:wait(), 1)
end)

t.test("options are validated", function()
  t.raises(function() sky.compute { nodez = 2 } end,
    "test_api.lua:%d+: sky.compute: unknown option 'nodez' %(valid options: .*nodes")
  t.raises(function() sky.compute { nodes = "2" } end,
    "option 'nodes' must be integer, got string")
  t.raises(function() sky.compute { nodes = 0 } end, "at least 1")
  t.raises(function() sky.compute { display = "fancy" } end, "one of auto, log, quiet, spinner")
  t.raises(function() sky.compute { provider = "nowhere" } end, "unknown provider 'nowhere'")
  t.raises(function() sky.fn(42) end, "sky.fn: expected a function, got number")
  t.raises(function() return add(1, 2) >> 5 end, "must be a pool")
  t.raises(function() sky.compute { task_timeout = -1 } end, "option 'task_timeout' must be a positive number")
  t.raises(function() sky.compute { keepalive_interval = 0 } end, "'keepalive_interval' must be a positive number")
  t.raises(function() sky.compute { keepalive_count = 0 } end, "'keepalive_count' must be at least 1")
  t.raises(function() pool:map(add, { 1 }, { concurency = 2 }) end, "unknown option 'concurency'")
end)

-- Waits up to `seconds` for a sky.spawn handle: a call that hangs fails its test instead of
-- hanging the suite.
local function finishes(h, seconds)
  local core = require "skyhost.core"
  local deadline = core.now() + seconds
  while not h:done() and core.now() < deadline do sky.sleep(0.05) end
  return h:done()
end

-- Runs fn in a coroutine and returns what pcall(fn) gives; fails the test if fn has not
-- returned within `seconds` (a hang fails the test instead of hanging the suite).
local function within(seconds, fn)
  local h = sky.spawn(function() return table.pack(pcall(fn)) end)
  if not finishes(h, seconds) then error(("did not finish within %d s"):format(seconds), 2) end
  local r = h:wait()
  return table.unpack(r, 1, r.n)
end

t.test("an empty group returns at once: {} from >>, nothing from pool:run", function()
  local h = sky.spawn(function() return sky.gather({}) >> pool end)
  t.ok(finishes(h, 10), "sky.gather({}) >> pool hangs")
  t.eq(h:wait(), {})
  h = sky.spawn(function() return table.pack(pool:run(sky.gather({}))) end)
  t.ok(finishes(h, 10), "pool:run(sky.gather({})) hangs")
  t.eq(h:wait().n, 0)
end)

t.test("a pool whose nodes are all lost fails at once, naming why; its state says so", function()
  local p <close> = sky.compute { nodes = 1, retries = 0, display = "quiet" }
  local die = sky.fn(function() os.exit(3) end)
  t.raises(function() return die() >> p end, "task failed on node 0: node 0 was lost")
  local h = sky.spawn(function() return pcall(function() return add(1, 1) >> p end) end)
  t.ok(finishes(h, 10), "a task for a dead pool hangs")
  local ok, err = h:wait()
  t.eq(ok, false)
  t.eq(err.code, "NoLiveNodes")
  t.ok(tostring(err):find("test_api.lua:%d+: pool 'pool%-%d+' has no live nodes left %(node 0: worker exited with status 3%)"), tostring(err))
  t.eq(p.state, "failed")
  t.ok(tostring(p):find("0 of 1 node alive, failed", 1, true), tostring(p))
  t.eq(p:nodes_info()[1].lost, "worker exited with status 3")
  t.raises(function() local r = p:map(add, { 1 }) return r end, "test_api.lua:%d+: pool 'pool%-%d+' has no live nodes")
end)

t.test("a task past its timeout fails with TaskTimeout and frees its executor", function()
  local one <close> = sky.compute { nodes = 1, concurrency = 1, display = "quiet" }
  local spin = sky.fn(function() while true do end end, { timeout = 0.5 })
  local ok, err = within(20, function() local r = spin() >> one return r end)
  t.eq(ok, false)
  t.eq(err.code, "TaskTimeout")
  t.ok(tostring(err):find("test_api.lua:%d+: task %d+ %(.*test_api.lua:%d+%) timed out after 0.5 s on node 0"), tostring(err))
  t.eq(err.node, 0)
  t.eq(within(20, function() return add(1, 2) >> one end), true)  -- its only executor is free
  -- A command the task runs is stopped too; a per-call timeout.
  local nap = sky.fn(function() os.execute("sleep 60") return "woke" end)
  ok, err = within(20, function() return one:run(nap(), { timeout = 0.5 }) end)
  t.eq(err.code, "TaskTimeout")
  t.eq(within(20, function() return add(2, 2) >> one end), true)
  -- A task that catches the error it is stopped with is stopped all the same.
  local stubborn = sky.fn(function() while true do pcall(function() while true do end end) end end)
  ok, err = within(20, function() return one:broadcast(stubborn(), { timeout = 0.3 }) end)
  t.eq(err.code, "TaskTimeout")
  t.eq(within(20, function() return add(3, 3) >> one end), true)
  -- The pool-wide limit, and map items.
  local capped <close> = sky.compute { nodes = 1, task_timeout = 0.5, display = "quiet" }
  local forever = sky.fn(function(x) if x == 2 then while true do end end return x end)
  ok, err = within(20, function() return forever(2) >> capped end)
  t.eq(err.code, "TaskTimeout")
  ok, err = within(20, function() local r = capped:map(forever, { 1, 2, 3 }) return r end)
  t.ok(tostring(err):find("test_api.lua:%d+: pool:map: item 2 %(.*%) timed out after 0.5 s on node 0"), tostring(err))
  t.eq(err.index, 2)
  t.raises(function() pool:run(add(1, 2), { timeot = 1 }) end, "pool:run: unknown option 'timeot'")
  t.raises(function() sky.fn(print, { timeout = 0 }) end, "positive number of seconds")
end)

t.test("when the script stops waiting, the tasks it left are cancelled on their nodes", function()
  local two <close> = sky.compute { nodes = 1, concurrency = 2, prefetch = 0, display = "quiet" }
  local nap = sky.fn(function() os.execute("sleep 60") return "woke" end)
  local boom = sky.fn(function() error("boom") end)
  -- The failure fails the group at once; the sleeper, which nobody waits for, is stopped.
  t.raises(function() return (nap() & boom()) >> two end, "boom")
  -- Both executors are free again: two tasks that each wait for the other both see it.
  local dir = os.tmpname()
  os.remove(dir)
  local meet = sky.fn(function(me, other)
    io.open(me, "w"):close()
    for _ = 1, 200 do
      local f = io.open(other)
      if f then f:close() return true end
      os.execute("sleep 0.05")
    end
    return false
  end)
  local ok, met = within(30, function() return (meet(dir .. ".a", dir .. ".b") & meet(dir .. ".b", dir .. ".a")) >> two end)
  os.remove(dir .. ".a")
  os.remove(dir .. ".b")
  t.eq(ok, true)
  t.eq(met, { true, true }, "the abandoned task still holds its executor")
end)

t.test("map failures name the item and node; errors = 'return' keeps the rest", function()
  local maybe = sky.fn(function(x) if x % 3 == 0 then error("bad " .. x) end return x * 10 end)
  local err = t.raises(function() local r = pool:map(maybe, { 1, 2, 3, 4 }) return r end,
    "test_api.lua:%d+: pool:map: item 3 failed on node %d: .*bad 3")
  t.eq(err.index, 3)
  t.ok(math.type(err.node) == "integer")
  local res, fails = pool:map(maybe, { 1, 2, 3, 4, 5, 6 }, { errors = "return" })
  t.eq(res, { 10, 20, nil, 40, 50, nil })
  t.eq(#fails, 2)
  t.eq(fails[1].index, 3)
  t.eq(fails[2].index, 6)
  t.eq(fails[1].error.code, "TaskFailed")
  t.ok(fails[2].error.message:find("bad 6"), fails[2].error.message)
  local all, none = pool:map(maybe, { 1, 2 }, { errors = "return" })
  t.eq(all, { 10, 20 })
  t.eq(none, {})
  t.raises(function() pool:map(maybe, { 1 }, { errors = "ignore" }) end, "one of raise, return")
end)

t.test("an error object that is a table arrives as that table", function()
  local raise = sky.fn(function() error({ code = "E42", detail = { n = 1 } }) end)
  local err = t.raises(function() return raise() >> pool end, 'task failed on node %d: {code = "E42"')
  t.eq(err.value, { code = "E42", detail = { n = 1 } })
  local _, fails = pool:map(raise, { 1 }, { errors = "return" })
  t.eq(fails[1].error.value.code, "E42")
end)

t.test("a global of the script used remotely gets a hint", function()
  rawset(_G, "helper_only_here", function(x) return x end)
  local f = sky.fn(function(x) return helper_only_here(x) end)  -- luacheck: ignore
  t.raises(function() return f(1) >> pool end, "hint: 'helper_only_here' is a global of this script")
  rawset(_G, "helper_only_here", nil)
end)

t.test("mistakes on the left of >> say what to write", function()
  local sq = sky.fn(function(x) return x * x end)
  t.raises(function() return sq >> pool end, "test_api.lua:%d+: left side of >> is a sky.fn that was not called: write f%(args%) >> pool")
  t.raises(function() return 5 >> pool end, "test_api.lua:%d+: left side of >> must be a pending task, such as f%(x%) >> pool")
  t.raises(function() return pool:run(sq) end, "a sky.fn: call it")
end)

t.test("bad map options and arguments are errors on the caller's line", function()
  t.raises(function() local r = pool:map(add, { 1 }, { concurrency = 0 }) return r end,
    "test_api.lua:%d+: pool:map: option 'concurrency' must be at least 1, got 0")
  t.raises(function() local r = pool:map(add, { io.stdout }) return r end,
    "test_api.lua:%d+: pool:map: item 1: cannot send userdata")
  t.raises(function() local r = add(io.stdout, 1) >> pool return r end,
    "test_api.lua:%d+: task 1: cannot send userdata")
  t.raises(function() pool:on("log", 42) end, "pool:on: expected a function to call with each event, got number")
end)

t.test("executors per node follow the node's cores", function()
  local core = require "skyhost.core"
  for _, n in ipairs(pool:nodes_info()) do t.eq(n.executors, core.cores()) end
  local fixed <close> = sky.compute { nodes = 1, concurrency = 3, display = "quiet" }
  t.eq(fixed:nodes_info()[1].executors, 3)
  t.eq(tostring(fixed):match("1 node,") ~= nil, true)
  -- Far more local workers than cores: a warning, not silence.
  local said = {}
  local real = io.stderr
  io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do said[#said + 1] = s end end }
  local ok, e = pcall(require("sky.pool.connect").warn_local, { name = "big", opts = {} },
    setmetatable({}, { __pairs = function() local i = 0 return function() i = i + 1 if i <= 1000 then return i, true end end end }))
  io.stderr = real
  t.ok(ok, tostring(e))
  t.ok(table.concat(said):find("starts 1000 local workers"), table.concat(said))
end)

t.test("progress of a running batch: done/total, failures, rate, ETA", function()
  local display = require "sky.pool.display"
  t.eq(display.progress_text("map", 2000, 500, 2, 2.0), "map 500/2000 done, 2 failed, 250/s, ETA 6.0s")
  t.eq(display.progress_text("map", 2000, 0, 0, 1.0), "map 0/2000 done, 0 failed, 0/s")
  t.eq(display.progress_text("map", 100, 10, 0, 10), "map 10/100 done, 0 failed, 1/s, ETA 1m30s")
  t.eq(display.progress_text("map", 2000, 2000, 2, 4.0, true), "map 2000/2000 done, 2 failed in 4.0s (500/s)")
  t.eq(display.plural(1, "node"), "1 node")
  t.eq(display.plural(3, "node"), "3 nodes")
end)

t.test("a wait takes a timeout", function()
  local sched = require "sky.internal.sched"
  local core = require "skyhost.core"
  t.eq({ within(10, function() return sched.await(sched.new_wait(), 0.05) end) }, { true, false })
  t.eq(sched.await(core.sleep(0.01), 5), true)
end)

t.test("a closed pool refuses work", function()
  local p = sky.compute { nodes = 1, display = "quiet" }
  p:close()
  p:close()  -- idempotent
  t.raises(function() return add(1, 1) >> p end, "is destroyed")
end)

t.done()
