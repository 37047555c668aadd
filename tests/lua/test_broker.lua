-- The broker end to end: selection, allocation and fallback across Lua-defined providers whose
-- instances are local workers. Every failure path must leave nothing running: each provider's
-- terminate saw every id it created, and the workers' processes are gone after close.
local t = require "testlib"
local fake = require "fakeprov"
local sky = require "sky"

local offer = fake.offer
local quiet = "quiet"

-- A pool on `provider` (any form), closed at once after checking it works; returns what the
-- test needs to look at.
local function run_pool(opts)
  opts.display = opts.display or quiet
  opts.nodes = opts.nodes or 2
  local events = {}
  opts.on_event = function(ev) events[#events + 1] = ev end
  local pool = sky.compute(opts)
  local pids = fake.pids(pool)
  local nodes = pool:broadcast(sky.fn(function() return sky.instance_info().node end)())
  local chosen = { provider = pool.provider.name, offer = pool.offer.instance_type, spot = pool.spot }
  pool:close()
  return chosen, nodes, pids, events
end

local function gone(pids)
  local left = fake.wait_gone(pids)
  t.eq(#left, 0, "worker processes still running: " .. table.concat(left, ", "))
end

local function all_terminated(...)
  for _, log in ipairs({ ... }) do t.ok(fake.all_terminated(log)) end
end

t.test("fallback across providers: error, capacity, partial, then success", function()
  local p1, l1 = fake.new { offers = { offer("a1", 1.0) }, behave = function() return "error" end }
  local p2, l2 = fake.new { offers = { offer("b1", 2.0) }, behave = function() return "capacity" end }
  local p3, l3 = fake.new { offers = { offer("c1", 3.0) }, behave = function() return { partial = 1 } end }
  local p4, l4 = fake.new { offers = { offer("d1", 4.0) } }
  local chosen, nodes, pids = run_pool { provider = { p1, p2, p3, p4 }, selection = "first" }
  t.eq(chosen, { provider = p4.name, offer = "d1", spot = false })
  t.eq(nodes, { 0, 1 })
  t.eq({ l1.provisions, l2.provisions, l3.provisions, l4.provisions }, { { "a1:od" }, { "b1:od" }, { "c1:od" }, { "d1:od" } })
  t.eq(#l3.created, 1)
  all_terminated(l1, l2, l3, l4)
  t.eq(#l4.terminated, 2)
  t.eq({ l1.torn, l2.torn, l3.torn, l4.torn }, { 1, 1, 1, 1 })
  gone(pids)
end)

t.test("offers go to the provider that listed them (same instance type, two providers)", function()
  local p1, l1 = fake.new { offers = { offer("same", 1.0) }, behave = function() return "capacity" end }
  local p2, l2 = fake.new { offers = { offer("same", 2.0) } }
  local chosen = run_pool { provider = { p1, p2 }, nodes = 1 }
  t.eq(chosen.provider, p2.name)
  t.eq(#l1.provisions, 1); t.eq(#l2.provisions, 1)
  all_terminated(l1, l2)
end)

t.test("spot-if-available: spot, then on-demand of the same offer, then the next offer", function()
  local p, l = fake.new {
    offers = { offer("a", 2.0, 1.0), offer("b", 3.0, 1.5) },
    behave = function(o) return (o.instance_type == "a") and "capacity" or (o.spot and "capacity" or "ok") end,
  }
  local chosen = run_pool { provider = p, selection = "first", allocation = "spot-if-available" }
  t.eq(l.provisions, { "a:spot", "a:od", "b:spot", "b:od" })
  t.eq(chosen, { provider = p.name, offer = "b", spot = false })
  all_terminated(l)
end)

t.test("always-spot: only spot attempts; offers without spot are never tried", function()
  local p, l = fake.new {
    offers = { offer("od-only", 1.0, nil), offer("s1", 5.0, 2.0), offer("s2", 5.0, 3.0) },
    behave = function(o) return o.instance_type == "s1" and "capacity" or "ok" end,
  }
  local chosen = run_pool { provider = p, selection = "first", allocation = "always-spot" }
  t.eq(l.provisions, { "s1:spot", "s2:spot" })
  t.eq(chosen.spot, true)
end)

t.test("spot = true is always-spot; spot = false is on-demand", function()
  local p, l = fake.new { offers = { offer("a", 1.0, 0.5), offer("b", 2.0, nil) } }
  t.eq(run_pool({ provider = p, spot = true, nodes = 1 }).spot, true)
  t.eq(run_pool({ provider = p, spot = false, nodes = 1, selection = "first" }).spot, false)
  t.eq(l.provisions, { "a:spot", "a:od" })
  t.raises(function() sky.compute { provider = p, spot = true, allocation = "on-demand" } end, "contradicts")
end)

t.test("on-demand: never buys spot, even where spot is cheaper", function()
  local p, l = fake.new { offers = { offer("a", 4.0, 0.5), offer("spot-only", nil, 0.1), offer("b", 3.0, 1.0) },
    behave = function(o) return o.instance_type == "b" and "capacity" or "ok" end }
  local chosen = run_pool { provider = p, allocation = "on-demand" }
  t.eq(l.provisions, { "b:od", "a:od" })
  t.eq(chosen, { provider = p.name, offer = "a", spot = false })
end)

t.test("allocation cheapest: the cheaper market first, the other as fallback", function()
  local p, l = fake.new { offers = { offer("a", 1.0, 2.0), offer("b", 3.0, 1.5) },
    behave = function() return "capacity" end }
  local err = t.raises(function() sky.compute { provider = p, allocation = "cheapest", selection = "first", display = quiet } end,
    "all 4 attempts failed")
  t.eq(l.provisions, { "a:od", "a:spot", "b:spot", "b:od" })
  t.eq(err.code, "ProvisionFailed")
  all_terminated(l)
end)

t.test("selection first: provider list order even when a later provider is cheaper", function()
  local dear, ld = fake.new { offers = { offer("dear", 9.0) } }
  local cheap, lc = fake.new { offers = { offer("cheap", 1.0) } }
  t.eq(run_pool({ provider = { dear, cheap }, selection = "first", nodes = 1 }).provider, dear.name)
  t.eq(run_pool({ provider = { dear, cheap }, selection = "cheapest", nodes = 1 }).provider, cheap.name)
  t.eq(run_pool({ provider = { dear, cheap }, nodes = 1 }).provider, cheap.name, "cheapest is the default")
  t.eq(#ld.provisions, 1); t.eq(#lc.provisions, 2)
end)

t.test("selection available: offers reported out of stock are not tried; in stock first", function()
  local p, l = fake.new { offers = {
    offer("sold-out", 1.0, nil, { available = false }), offer("few", 1.0, nil, { capacity = 1 }),
    offer("unknown", 1.0), offer("in-stock", 5.0, nil, { available = true }),
  }, behave = function(o) return o.instance_type == "in-stock" and "capacity" or "ok" end }
  local chosen = run_pool { provider = p, selection = "available", nodes = 2 }
  t.eq(l.provisions, { "in-stock:od", "unknown:od" })
  t.eq(chosen.offer, "unknown")
end)

t.test("a selection function orders the offers; it sees the request", function()
  local p, l = fake.new { offers = { offer("x", 1.0), offer("y", 2.0), offer("z", 3.0) } }
  local seen
  local chosen = run_pool { provider = p, nodes = 1, selection = function(offers, spec)
    seen = spec
    local out = {}
    for i = #offers, 1, -1 do out[#out + 1] = offers[i] end
    return out
  end }
  t.eq(chosen.offer, "z")
  t.eq(seen.nodes, 1)
  t.eq(seen.specs[1].name, p.name)
  t.eq(l.provisions, { "z:od" })
  t.raises(function() sky.compute { provider = p, selection = function() return { 1, 2 } end, display = quiet } end,
    "non-offer at index 1")
  t.raises(function() sky.compute { provider = p, selection = "cheapes" } end, "did you mean cheapest?")
end)

t.test("an allocation function gives each offer's attempts", function()
  local p, l = fake.new { offers = { offer("a", 2.0, 1.0) }, behave = function(o) return o.spot and "ok" or "capacity" end }
  local chosen = run_pool { provider = p, nodes = 1,
    allocation = function(o) return { { spot = false, price = o.price }, { spot = true, price = o.spot_price } } end }
  t.eq(l.provisions, { "a:od", "a:spot" })
  t.eq(chosen.spot, true)
end)

t.test("a zone failure blocks the zone (same market) for the rest of the search", function()
  local p, l = fake.new { offers = {
    offer("a", 1.0, 0.5, { region = "r1", zone = "z1" }), offer("b", 1.1, nil, { region = "r1", zone = "z1" }),
    offer("c", 1.2, nil, { region = "r1", zone = "z2" }),
  }, behave = function(o, _, call) return call == 1 and "capacity" or (o.instance_type == "a" and "capacity" or "ok") end }
  local chosen = run_pool { provider = p, selection = "first", nodes = 1 }
  -- a:spot fails (zone z1 blocked for spot); a:od is another market and is tried; it fails
  -- (z1 blocked for on-demand), so b (z1, on-demand) is skipped and c runs.
  t.eq(l.provisions, { "a:spot", "a:od", "c:od" })
  t.eq(chosen.offer, "c")
end)

t.test("quota blocks the region; credentials block the provider", function()
  local p, l = fake.new { offers = {
    offer("a", 1.0, nil, { region = "r1", zone = "z1" }), offer("b", 1.0, nil, { region = "r1", zone = "z2" }),
    offer("c", 1.0, nil, { region = "r2", zone = "z3" }),
  }, behave = function(o) return o.instance_type == "a" and "quota" or "ok" end }
  t.eq(run_pool({ provider = p, selection = "first", nodes = 1 }).offer, "c")
  t.eq(l.provisions, { "a:od", "c:od" })
  local q, lq = fake.new { offers = { offer("a", 1.0, 0.5), offer("b", 2.0) }, behave = function() return "auth" end }
  local good = fake.new { offers = { offer("g", 50.0) } }
  t.eq(run_pool({ provider = { q, good }, selection = "first", nodes = 1 }).provider, good.name)
  t.eq(lq.provisions, { "a:spot" })
end)

t.test("when everything fails the error lists every attempt, why, and what was blocked", function()
  local p1, l1 = fake.new { name = "alpha", offers = { offer("a", 1.0, 0.5, { zone = "z1", region = "r" }) },
    behave = function(o) return o.spot and "capacity" or "error" end }
  local p2, l2 = fake.new { name = "beta", offers = { offer("b", 2.0) }, behave = function() return { partial = 1 } end }
  local p3, l3 = fake.new { name = "gamma", offers = { offer("c", 2.0) }, behave = function() return "error_after_create" end }
  local err = t.raises(function()
    sky.compute { provider = { p1, p2, p3, "nebius" }, nodes = 2, selection = "first", display = quiet }
  end, "could not provision 2 nodes")
  local text = tostring(err)
  t.ok(text:find("test_broker.lua:%d+: sky.compute"), text)
  t.ok(text:find("2. a on alpha (z1, spot, $0.5000/h): NoCapacity: capacity trouble at alpha [blocked zone z1 of alpha (spot)]", 1, true), text)
  t.ok(text:find("3. a on alpha (z1, on-demand, $1.0000/h): ", 1, true) and text:find("fakeprov.lua:", 1, true), text)
  t.ok(text:find("boom from alpha [blocked zone z1 of alpha (on-demand)]", 1, true), text)
  t.ok(text:find("b on beta (-, on-demand, $2.0000/h): provisioned 1 of 2 nodes", 1, true), text)
  t.ok(text:find("c on gamma (-, on-demand, $2.0000/h): failed after creating some", 1, true), text)
  t.ok(text:find("provider 'nebius' has %d+ matching offers in the catalog"), text)
  t.eq(#err.attempts, 5)
  all_terminated(l1, l2, l3)
  t.eq(#l3.created, 2)
  t.eq({ l1.torn, l2.torn, l3.torn }, { 1, 1, 1 })
end)

t.test("a provider the catalog knows but skyhost does not implement is reported, never used", function()
  local good = fake.new { offers = { offer("g", 1.0) } }
  local chosen, _, _, events = run_pool { provider = { sky.nebius { region = "eu-north1" }, good }, nodes = 1 }
  t.eq(chosen.provider, good.name)
  local failed
  for _, ev in ipairs(events) do if ev.type == "AttemptFailed" then failed = ev end end
  t.ok(failed and failed.provider == "nebius" and failed.reason:find("not implemented in this build"), failed and failed.reason)
  t.raises(function() sky.compute { provider = "nebius", accelerator = "H100", display = quiet } end,
    "provider 'nebius' has")
  t.raises(function() sky.compute { provider = "awz" } end, "did you mean aws?")
end)

t.test("instances: pending is waited for; terminated before running fails the attempt", function()
  local p, l = fake.new { offers = { offer("dies", 1.0), offer("slow-boot", 2.0) },
    behave = function(o) return o.instance_type == "dies" and "terminated" or "pending" end }
  local chosen, nodes = run_pool { provider = p, selection = "first" }
  t.eq(chosen.offer, "slow-boot")
  t.eq(nodes, { 0, 1 })
  all_terminated(l)
end)

t.test("a provision slower than provision_timeout falls back; its late ids are terminated", function()
  local p, l = fake.new { offers = { offer("slow", 1.0), offer("fast", 2.0) },
    behave = function(o) return o.instance_type == "slow" and { slow = 3.0 } or "ok" end }
  -- The timeout covers the whole attempt, the fast offer's worker start too: 1 s leaves a loaded
  -- machine room to start two workers, while the slow call still outlasts it.
  local chosen = run_pool { provider = p, selection = "first", provision_timeout = 1.0 }
  t.eq(chosen.offer, "fast")
  -- close() waited for the slow call: what it made is gone too
  t.eq(#l.created, 4)
  all_terminated(l)
end)

t.test("workers that fail to start: the attempt is dropped, its worker processes are gone", function()
  local p, l = fake.new { offers = { offer("nossh", 1.0), offer("ok", 2.0) },
    behave = function(o) return o.instance_type == "nossh" and { ssh_port = 1 } or "ok" end }
  local events = {}
  local pool <close> = sky.compute { provider = p, nodes = 2, selection = "first", display = quiet, connect_timeout = 1,
    on_event = function(ev) events[#events + 1] = ev end }
  t.eq(pool.offer.instance_type, "ok")
  local failed
  for _, ev in ipairs(events) do if ev.type == "AttemptFailed" then failed = ev end end
  t.ok(failed and failed.reason:find("workers did not start"), failed and failed.reason)
  local rec = require("sky.broker").failures(pool)[1]
  t.ok(rec.pids and #rec.pids == 1, "node 0's worker had started")
  gone(rec.pids)
  t.eq(l.terminated, { l.created[1], l.created[2] })
end)

t.test("every attempt's workers fail to start: the error lists them, no process is left", function()
  local p, l = fake.new { offers = { offer("n1", 1.0, nil, { zone = "a" }), offer("n2", 2.0, nil, { zone = "b" }) },
    behave = function() return { ssh_port = 1 } end }
  local err = t.raises(function()
    sky.compute { provider = p, nodes = 2, selection = "first", display = quiet, connect_timeout = 1 }
  end, "all 2 attempts failed")
  t.eq(#err.attempts, 2)
  local pids = {}
  for _, a in ipairs(err.attempts) do
    t.ok(a.reason:find("workers did not start"), a.reason)
    t.eq(#a.pids, 1)
    pids[#pids + 1] = a.pids[1]
  end
  gone(pids)
  all_terminated(l)
  t.eq(#l.terminated, 4)
end)

t.test("a provider returning bad data is blocked with a clear reason", function()
  local bad, lb = fake.new { offers = { offer("x", 1.0), offer("y", 1.0) }, behave = function() return "bad_ids" end }
  local noprice = fake.new { offers = { { instance_type = "np" } } }
  local boom = fake.new { offers = {}, offers_error = "cannot list" }
  local good = fake.new { offers = { offer("g", 5.0) } }
  local chosen, _, _, events = run_pool { provider = { bad, noprice, boom, good }, selection = "first", nodes = 1 }
  t.eq(chosen.provider, good.name)
  t.eq(lb.provisions, { "x:od" })
  local reasons = {}
  for _, ev in ipairs(events) do if ev.type == "AttemptFailed" then reasons[#reasons + 1] = ev.reason end end
  t.eq(reasons, { ("offers() of '%s': offer 1 (np) has neither price nor spot_price"):format(noprice.name), "offers() failed: cannot list",
    "provision returned string, not a list of instance ids" })
end)

t.done()
