-- Extending and combining: sky.provider and sky.override, provider spec lists, the offers
-- cache, sky.multipool, and the errors a script gets for mistakes.
local t = require "testlib"
local fake = require "fakeprov"
local core = require "skyhost.core"
local sky = require "sky"

local offer = fake.offer
local quiet = "quiet"

t.test("sky.override wraps a built-in provider's method, and can be undone", function()
  local calls = {}
  local undo = sky.override("providers.local.provision", function(base, self, cluster, n, o)
    calls[#calls + 1] = { n = n, instance_type = o.instance_type }
    return base(self, cluster, n, o)
  end)
  do
    local pool <close> = sky.compute { nodes = 2, display = quiet }
    t.eq(sky.fn(function() return 1 end)() >> pool, 1)
  end
  undo()
  do local _ <close> = sky.compute { nodes = 1, display = quiet } end
  t.eq(calls, { { n = 2, instance_type = "process" } })
end)

t.test("sky.override wraps a sky.provider's method by name", function()
  local p, l = fake.new { name = "wrapme", offers = { offer("a", 1.0) } }
  local seen = 0
  local undo = sky.override("providers.wrapme.get_instance", function(base, ...)
    seen = seen + 1
    return base(...)
  end)
  do local _ <close> = sky.compute { provider = "wrapme", nodes = 2, display = quiet } end
  undo()
  t.eq(seen, 2)
  t.eq(#l.provisions, 1)
  t.ok(p.name == "wrapme")
end)

t.test("sky.override replaces a default policy", function()
  local p, l = fake.new { offers = { offer("cheap", 1.0), offer("dear", 9.0) } }
  local undo = sky.override("selection.cheapest", function(base, offers, spec)
    local out = {}
    for _, o in ipairs(sky.policy.materialize(base(offers, spec))) do table.insert(out, 1, o) end
    return out
  end)
  do local _ <close> = sky.compute { provider = p, nodes = 1, display = quiet } end
  undo()
  local undo2 = sky.override("allocation.spot-if-available", function(_, o)
    return { { spot = false, price = o.price } }
  end)
  do local _ <close> = sky.compute { provider = p, nodes = 1, display = quiet } end
  undo2()
  do local _ <close> = sky.compute { provider = p, nodes = 1, display = quiet } end
  t.eq(l.provisions, { "dear:od", "cheap:od", "cheap:od" })
end)

t.test("sky.override: mistakes are errors that say what exists", function()
  t.raises(function() sky.override("providers.locl.provision", function() end) end, "did you mean local?")
  t.raises(function() sky.override("providers.local.provison", function() end) end, "method 'provison' does not exist")
  t.raises(function() sky.override("providers.aws.provision", function() end) end, "not implemented in this build")
  t.raises(function() sky.override("selection.cheapst", function() end) end, "did you mean cheapest?")
  t.raises(function() sky.override("scheduler.x", function() end) end, "paths: providers.<name>.<method>")
  t.raises(function() sky.override("selection.first") end, "expected function(base, ...)")
end)

t.test("sky.provider checks its definition", function()
  t.raises(function() sky.provider { name = "x", offers = function() end } end, "has no method 'provision'")
  t.raises(function() sky.provider { name = "x", offer = function() end } end, "unknown option 'offer'")
  t.raises(function() sky.provider { offers = function() end } end, "'name' is required")
  t.raises(function() sky.provider { name = "local" } end, "built-in provider")
end)

t.test("a list of specs: each provider gets its own hardware request", function()
  local p1, l1 = fake.new { offers = { offer("h", 1.0) }, behave = function() return "capacity" end }
  local p2, l2 = fake.new { offers = {
    offer("h", 0.5), offer("a2", 2.0, nil, { accelerator = "A100", count = 2, gpu_memory = 40 }),
  } }
  local pool <close> = sky.compute { display = quiet, accelerator = "H100", provider = {
    { provider = p1 },
    { provider = p2, accelerator = sky.accelerators.A100 { count = 2 }, max_price = 3 },
  } }
  t.eq(pool.provider.name, p2.name)
  t.eq(pool.offer.instance_type, "a2", "p2's H100 offer does not match its spec")
  t.eq({ l1.spec.accelerator, l1.spec.count }, { "H100", 1 })
  t.eq({ l2.spec.accelerator, l2.spec.count }, { "A100", 2 })
  t.eq(l1.cluster.nodes, 1)
  t.ok(l1.cluster.ssh_public_key and l1.cluster.ssh_public_key:find("^ssh%-ed25519 "), "the pool's key")
  t.raises(function() sky.compute { provider = { { provider = p1, acelerator = "H100" } } } end,
    "unknown option 'acelerator'")
end)

t.test("mistakes in hardware or policy are errors on the script's line", function()
  local err = t.raises(function() sky.compute { accelerator = "H10" } end, "did you mean H100?")
  t.ok(tostring(err):find("test_broker_extend.lua:%d+:"), tostring(err))
  t.raises(function() sky.compute { allocation = "spot" } end, "unknown allocation 'spot'")
  t.raises(function() sky.compute { selection = 3 } end, "option 'selection' must be string or function")
  t.raises(function() sky.compute { provider = {} } end, "empty list")
  local e2 = t.raises(function() sky.compute { accelerator = "H100", display = quiet } end, "no offer matches H100 x1 on local")
  t.eq(e2.code, "NoOffers")
end)

t.test("offers are cached per provider for offers_ttl seconds (sky.state)", function()
  local state = require "sky.state"  -- part of every build (SQLite)
  local dir = os.tmpname()
  os.remove(dir)
  local store = state.open(dir .. ".db")
  local providers = require "providers"
  providers.set_cache(store)
  local p, l = fake.new { offers = { offer("c", 1.0) }, offers_ttl = 60 }
  for _ = 1, 2 do
    local _ <close> = sky.compute { provider = p, nodes = 1, display = quiet }
  end
  local q, lq = fake.new { offers = { offer("c", 1.0) } }
  for _ = 1, 2 do
    local _ <close> = sky.compute { provider = q, nodes = 1, display = quiet }
  end
  providers.set_cache(nil)
  store:close()
  os.remove(dir .. ".db")
  t.eq(l.offers_calls, 1, "cached")
  t.eq(lq.offers_calls, 2, "no offers_ttl: always live")
  t.eq(#l.provisions, 2)
end)

t.test("sky.multipool provisions pools at once and returns them in order", function()
  local a = fake.new { offers = { offer("a", 1.0) }, behave = function() return { slow = 0.8 } end }
  local b = fake.new { offers = { offer("b", 1.0) }, behave = function() return { slow = 0.8 } end }
  local t0 = core.now()
  local pools <close> = sky.multipool { { provider = a, nodes = 2, display = quiet }, { provider = b, display = quiet } }
  local took = core.now() - t0
  t.ok(took < 1.5, ("took %.2f s: not concurrent"):format(took))
  t.eq(#pools, 2)
  t.eq({ pools[1].provider.name, pools[2].provider.name }, { a.name, b.name })
  t.eq({ pools[1].nodes, pools[2].nodes }, { 2, 1 })
  local p1, p2 = table.unpack(pools)
  t.eq(sky.fn(function() return 7 end)() >> p2, 7)
  t.ok(p1 ~= p2)
end)

t.test("sky.multipool: if one pool fails, the others are torn down", function()
  local good, lg = fake.new { offers = { offer("g", 1.0) } }
  local bad = fake.new { offers = { offer("x", 1.0) }, behave = function() return { slow = 0.2, ["then"] = "error" } end }
  local pids = {}
  local function ready(ev)
    if ev.type ~= "ClusterReady" then return end
    for _, p in ipairs(require("sky.pool").open_pools()) do
      if p.id == ev.pool then pids = fake.pids(p) end
    end
  end
  local err = t.raises(function()
    sky.multipool { { provider = good, nodes = 2, display = quiet, on_event = ready }, { provider = bad, display = quiet } }
  end, "pool 2 of 2 failed, the others were torn down")
  t.eq(#pids, 2, "the good pool had started")
  t.eq(err.index, 2)
  t.ok(tostring(err):find("test_broker_extend.lua:%d+:"), tostring(err))
  t.ok(fake.all_terminated(lg))
  t.eq(#lg.terminated, 2)
  t.eq(#fake.wait_gone(pids), 0)
  t.raises(function() sky.multipool {} end, "expected a list of pool specs")
end)

t.test("a Lua provider uses sky.http and sky.json from the scheduler (a price API)", function()
  local server = assert(io.popen("exec /usr/bin/python3 tests/support/http_echo.py --lifetime 30"))
  local port, pid = server:read("l"):match("^(%d+) (%d+)$")
  local api = "http://127.0.0.1:" .. port
  local listed = { { instance_type = "api-gpu", accelerator = "L4", count = 1, price = 0.7 } }
  local p, l = fake.new { offers = {} }
  p.offers = function(_, spec)
    -- The echo server returns what it was sent: a stand-in for a provider's price list.
    local r = sky.http.post(api .. "/echo", sky.json.encode({ gpu = spec.accelerator, offers = listed }))
    local doc = sky.json.decode(r.body)
    return sky.json.decode(doc.body).offers
  end
  local pool <close> = sky.compute { provider = p, accelerator = "L4", display = quiet }
  t.eq(pool.offer.instance_type, "api-gpu")
  t.eq(l.provisions, { "api-gpu:od" })
  os.execute("kill " .. pid)
  server:close()
end)

t.test("Ctrl-C while instances come up: what was created is terminated", function()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
local core = require "skyhost.core"
local n = 0
local p = sky.provider { name = "intr",
  offers = function() return { { instance_type = "x", price = 1 } } end,
  provision = function(_, _, k)
    local ids = {}
    for i = 1, k do n = n + 1; ids[i] = "i" .. n; print("created " .. ids[i]) end
    return ids
  end,
  get_instance = function(_, _, id)
    io.popen("kill -INT " .. core.pid()):close() -- os.execute would ignore SIGINT while it waits
    sky.sleep(5)
    return { id = id, state = "running", transport = "local" }
  end,
  terminate = function(_, _, ids) for _, id in ipairs(ids) do print("terminated " .. id) end end,
}
local pool <close> = sky.compute { provider = p, nodes = 2, display = "quiet" }
print("not reached")
]])
  f:close()
  local skyhost = arg and arg[-1] or "skyhost"
  local proc = io.popen(("'%s' '%s' 2>&1; echo \"exit $?\""):format(skyhost, script))
  local out = proc:read("a")
  proc:close()
  os.remove(script)
  t.eq(out:gsub("[^\n]*interrupted[^\n]*\n", ""), "created i1\ncreated i2\nterminated i1\nterminated i2\nexit 130\n", out)
end)

t.test("a node its provider reports preempted: InstancePreempted, and its tasks go on", function()
  local p, l = fake.new { offers = { offer("s", 2.0, 0.5) } }
  local seen = {}
  local pool <close> = sky.compute { provider = p, nodes = 2, display = quiet, allocation = "always-spot",
    on_event = function(ev) seen[#seen + 1] = ev end }
  t.eq(pool.spot, true)
  local victim = pool.instances[2].id
  l.preempted[victim] = true
  os.execute("kill -9 " .. fake.pids(pool)[2])  -- the machine is gone, and its worker with it
  local deadline, ev = core.now() + 20, nil
  while not ev and core.now() < deadline do
    for _, e in ipairs(seen) do if e.type == "InstancePreempted" then ev = e end end
    if not ev then sky.sleep(0.02) end
  end
  t.ok(ev, "no InstancePreempted event")
  t.eq({ ev.node, ev.instance, ev.reason }, { 1, victim, "spot interruption" })
  local double = sky.fn(function(x) return 2 * x end)
  t.eq(pool:map(double, { 1, 2, 3, 4 }), { 2, 4, 6, 8 })  -- node 0 runs them
end)

t.done()
