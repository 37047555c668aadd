-- Plugins (sky.plugin) through the real worker and its plugin hosts, on the local provider:
-- every operator, the value model, binary data, Lua on the node calling plugins, failures of
-- every kind (and the node serving the next task), load failures, two executors at once.
-- The plugins are tests/plugins/*.cpp, built into $SKYT_PLUGINS.
local t = require "testlib"
local sky = require "sky"

local dir = assert(os.getenv("SKYT_PLUGINS"), "SKYT_PLUGINS: the built test plugins")
local lib = dir .. "/libsky_test_plugins.so"
local P = setmetatable({}, { __index = function(self, name)
  local h = sky.plugin(lib, name)
  rawset(self, name, h)
  return h
end })

local pool <close> = sky.compute { nodes = 2, concurrency = 2, display = "quiet" }
-- One node, so that "the node goes on" is about the node that saw the failure.
local solo <close> = sky.compute { nodes = 1, concurrency = 2, display = "quiet" }

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function copy(from, to)
  local f = assert(io.open(from, "rb"))
  local data = f:read("a")
  f:close()
  local g = assert(io.open(to, "wb"))
  g:write(data)
  g:close()
  return data
end

t.test("every operator", function()
  local inc, add = P.inc, P.add
  t.eq(inc(1) >> pool, 2)
  t.eq(table.pack(pool:run(P.several(5))), { n = 4, 5, "two", true, nil })
  t.eq((inc(1) & inc(2)) >> pool, { 2, 3 })
  t.eq(table.pack(pool:run(inc(1) & add(2, 3))), { n = 2, 2, 5 })
  t.eq(sky.gather(inc(1), add(1, 1), inc(3)) >> pool, { 2, 2, 4 })
  t.eq(sky.gather({ inc(10), inc(20) }) >> pool, { 11, 21 })
  local items, want = {}, {}
  for i = 1, 200 do items[i], want[i] = i, i + 1 end
  t.eq(pool:map(inc, items), want)
  t.eq(pool:map(inc, items, { concurrency = 3 }), want)
  local pids = pool:broadcast(P.host_pid())
  t.eq(#pids, 2)
  t.ok(pids[1] ~= pids[2], "each node has its own plugin host")
  t.eq(tostring(inc), "sky.plugin(inc from " .. lib .. ")")
  t.eq(pool:run(P.nothing()), nil)
end)

t.test("events as for a Lua function", function()
  local started, completed = 0, {}
  pool:on("task_started", function() started = started + 1 end)
  pool:on("TaskCompleted", function(ev) completed[#completed + 1] = ev end)
  local _ = P.inc(1) >> pool
  pcall(function() return P.fail("x") >> pool end)
  sky.sleep(0)  -- events are delivered between loop turns
  t.eq(started, 2)
  t.eq(#completed, 2)
  t.eq(completed[1].ok, true)
  t.eq(completed[2].ok, false)
  t.ok(completed[1].duration >= 0 and completed[1].node ~= nil)
end)

t.test("errors: a thrown exception is a TaskFailed with its message", function()
  local err = t.raises(function() return P.fail("boom") >> pool end, "plugin 'fail': boom")
  t.eq(err.code, "TaskFailed")
  t.ok(err.node == 0 or err.node == 1)
  t.raises(function() return P.inc("x") >> pool end,
    "plugin 'inc': argument 1: expected an integer, got a string")
  t.raises(function() return P.inc() >> pool end, "expected 1 argument, got 0")
  t.raises(function() return P.add(1, 2, 3) >> pool end, "expected 2 arguments, got 3")
  t.raises(function() return P.inc(print) >> pool end, "cannot be passed to a plugin")
  t.raises(function() return P.inc(setmetatable({}, {})) >> pool end, "metatable")
  local cyc = {}
  cyc.me = cyc
  t.raises(function() return P.echo1(cyc) >> pool end, "contains itself")
  t.raises(function() return P.short_list() >> pool end, "unfinished")
  t.raises(function() return P.inc(io.stdout) >> pool end, "userdata")
end)

t.test("values: the codec's model in and out", function()
  local v = { 1, 2.5, "a\0b", true, false, { 3, { 4 } }, k = { x = "y" }, [10] = 7 }
  local back = P.echo1(v) >> pool
  t.eq(back, v)
  t.eq(math.type(back[1]), "integer")
  t.eq(math.type(back[2]), "float")
  t.eq(P.echo1(nil) >> pool, nil)
  t.eq(P.echo1({}) >> pool, {})
  t.eq(P.echo1(math.mininteger) >> pool, math.mininteger)
  t.eq(P.echo1(1 / 0) >> pool, 1 / 0)
  local shared = { 1 }
  t.eq(P.echo1({ a = shared, b = shared }) >> pool, { a = { 1 }, b = { 1 } })
  t.eq(P.sum({ 1, 2, 3.5 }) >> pool, 6.5)
  t.eq(P.keys({ b = 2, a = 1 }) >> pool, { "a=1", "b=2" })
  t.eq(P.nested(3) >> pool, { k0 = {}, k1 = { 1 }, k2 = { 2, 2 } })
  t.eq(P.count_types(1, 2.5, "s", { 1 }, { a = 1 }, true, nil) >> pool,
    { int = 1, float = 1, string = 1, list = 1, map = 1, bool = 1, ["nil"] = 1 })
  t.eq(table.pack(pool:run(P.several(nil))), { n = 4, -1, "two", true, nil })
end)

t.test("binary strings of 0 B, 1 B and 64 MiB, in and out", function()
  for _, n in ipairs({ 0, 1, 64 << 20 }) do
    local s = n > 0 and string.rep("\1\0\255x", n // 4 + 1):sub(1, n) or ""
    local back, size = pool:run(P.bytes_back(s))
    t.eq(size, n)
    t.ok(back == s, ("%d bytes came back unchanged"):format(n))
    local made = P.make_bytes(n, "z") >> pool
    t.eq(#made, n)
    t.ok(n == 0 or (made:sub(1, 1) == "z" and made:sub(-1) == "z"))
  end
end)

t.test("a Lua function on the node calls plugins it captured", function()
  local inc, add, fail, bytes_back = P.inc, P.add, P.fail, P.bytes_back
  local f = sky.fn(function(x)
    local ok, err = pcall(fail, "inner")
    local big = bytes_back(string.rep("q", 100000))
    return inc(x) * 10 + add(x, x), ok, err, #big
  end)
  local r, ok, err, n = pool:run(f(4))
  t.eq(r, 58)
  t.eq(ok, false)
  t.ok(err:find("plugin 'fail': inner", 1, true), err)
  t.eq(n, 100000)
  t.eq(pool:map(sky.fn(function(x) return add(x, 1) end), { 1, 2, 3 }), { 2, 3, 4 })
  -- and a handle as an argument
  t.eq(sky.fn(function(h, x) return h(x) end)(inc, 41) >> pool, 42)
end)

-- The failure names the plugin, how its host died, the node and the task; the worker stays.
local function check_death(call, ...)
  local before = solo:nodes_info()[1]
  local host_before = P.host_pid() >> solo
  local err = t.raises(function() return call() >> solo end)
  local msg = tostring(err)
  local matched = false
  for _, pattern in ipairs({ ... }) do matched = matched or msg:find(pattern) ~= nil end
  t.ok(matched, msg)
  t.ok(msg:find("on node 0 %(") and msg:find("task %d+"), msg)
  -- the next tasks run on the same node and the same worker, with a new plugin host
  t.eq(P.inc(1) >> solo, 2)
  t.eq(sky.fn(function() return "lua too" end)() >> solo, "lua too")
  local after = solo:nodes_info()[1]
  t.eq(after.pid, before.pid)
  t.eq(after.alive, true)
  t.ok((P.host_pid() >> solo) ~= nil and host_before ~= nil)
end

t.test("a segfaulting plugin fails its task; the node goes on", function()
  -- (a sanitized build's plugin host may report the fault and exit instead)
  check_death(P.crash, "plugin 'crash' %(.*%) was killed by signal %d+",
    "plugin 'crash' %(.*%) exited with status %d+")
end)

t.test("an aborting plugin fails its task; the node goes on", function()
  check_death(P.die_abort, "plugin 'die_abort' %(.*%) was killed by signal 6")
end)

t.test("a plugin calling exit fails its task; the node goes on", function()
  check_death(function() return P.quit(3) end, "plugin 'quit' %(.*%) exited with status 3")
end)

t.test("a crash in a map fails the map at that item; the node goes on", function()
  local items = {}
  for i = 1, 60 do items[i] = i end
  for _ = 1, 3 do  -- cheap calls are batched: the crash is in the middle of a batch
    local err = t.raises(function() return solo:map(P.crash_on_13, items) end,
      "plugin 'crash_on_13' %(.*%) ")
    t.eq(err.code, "TaskFailed")
    local ok = {}
    for i = 1, 12 do ok[i] = i end
    t.eq(solo:map(P.crash_on_13, ok), ok)
  end
end)

t.test("a crash inside a Lua function on the node is an error it can catch", function()
  local crash, inc = P.crash, P.inc
  local ok, msg, after = solo:run(sky.fn(function()
    local okc, err = pcall(crash)
    return okc, err, inc(1)
  end)())
  t.eq(ok, false)
  t.ok(msg:find("plugin .crash. %(.*%) was killed by signal") or msg:find("exited with status"), msg)
  t.eq(after, 2)
end)

t.test("load failures name the loader's message, the node and the path", function()
  local d = tmpdir()
  -- the file is gone by the time the node loads it
  local gone = d .. "/libgone.so"
  copy(lib, gone)
  local h = sky.plugin(gone, "inc")
  os.remove(gone)
  t.raises(function() return h(1) >> solo end,
    "cannot load plugin 'inc' on node 0 %(")
  t.raises(function() return h(1) >> solo end, gone .. ": cannot open shared object file")
  -- built for another machine: e_machine (offset 18) says AArch64
  local arm = d .. "/libarm.so"
  local data = copy(lib, arm)
  local f = assert(io.open(arm, "wb"))
  f:write(data:sub(1, 18) .. string.pack("<I2", 183) .. data:sub(21))
  f:close()
  local e = t.raises(function() return sky.plugin(arm, "inc")(1) >> solo end, arm)
  t.ok(tostring(e):find("cannot load plugin .inc. on node 0") and tostring(e):find("built for AArch64"), tostring(e))
  -- no such function in the library
  t.raises(function() return sky.plugin(lib, "no_such")(1) >> solo end,
    lib .. ": no plugin 'no_such' (symbol sky_plugin_no_such not found")
  -- a library it needs is nowhere to be found
  local needs = dir .. "/libsky_test_needs_missing.so"
  t.raises(function() return sky.plugin(needs, "uses_missing")() >> solo end,
    "libsky_test_missing.so: cannot open shared object file")
  -- a file the host cannot read fails at once, before any node
  t.raises(function() return sky.plugin(d .. "/nothing.so", "inc") end, "cannot read")
  t.raises(function() return sky.plugin(lib, "not a name") end, "C identifier")
  t.eq(P.inc(1) >> solo, 2)
  os.execute("rm -rf '" .. d .. "'")
end)

t.test("isolate = false: the plugin runs in the worker itself; a crash takes the node", function()
  local fast = sky.plugin(lib, "inc", { isolate = false })
  t.eq(fast(1) >> pool, 2)
  t.eq(pool:map(fast, { 1, 2, 3 }), { 2, 3, 4 })
  t.eq(sky.fn(function(x) return fast(x) * 10 end)(5) >> pool, 60)
  t.eq(sky.plugin { path = lib, name = "add", isolate = false }(2, 3) >> pool, 5)
  local n = 3 << 20
  t.eq(#(sky.plugin(lib, "make_bytes", { isolate = false })(n, "y") >> pool), n)
  t.raises(function() return sky.plugin(lib, "inc", { isolated = false }) end,
    "unknown option 'isolated'")
  local doomed <close> = sky.compute { nodes = 1, retries = 0, display = "quiet" }
  t.raises(function() return sky.plugin(lib, "crash", { isolate = false })() >> doomed end,
    "node 0 was lost: worker killed by signal %d+")  -- 6 under ASan, which aborts
  t.eq(doomed:nodes_info()[1].alive, false)
end)

t.test("one plugin from two executors at once", function()
  local d = tmpdir()
  local meet = P.rendezvous
  -- each call waits until both have started: they return only if they ran side by side
  local pids = sky.gather(meet(d, 2), meet(d, 2)) >> solo
  t.ok(pids[1] ~= pids[2], "two plugin hosts")
  os.execute("rm -rf '" .. d .. "'")
  d = tmpdir()
  local pids2 = sky.gather(
    sky.fn(function() return meet(d, 2) end)(), sky.fn(function() return meet(d, 2) end)()) >> solo
  t.ok(pids2[1] ~= pids2[2])
  os.execute("rm -rf '" .. d .. "'")
end)

t.done()
