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
  t.raises(function() pool:map(add, { 1 }, { concurency = 2 }) end, "unknown option 'concurency'")
end)

t.test("a closed pool refuses work", function()
  local p = sky.compute { nodes = 1, display = "quiet" }
  p:close()
  p:close()  -- idempotent
  t.raises(function() return add(1, 1) >> p end, "is destroyed")
end)

t.done()
