-- The broker's choice without provisioning (broker.plan) on the shipped catalog, and its parts:
-- the request (sky.request) and the blocklist (sky.blocklist).
local t = require "testlib"
local blocklist = require "sky.broker.blocklist"
local broker = require "sky.broker"
local catalog = require "providers.catalog"
local request = require "sky.broker.request"
local sky = require "sky"

local SNAP = catalog.snapshot()

-- A provider that sells the whole shipped catalog (as a marketplace would): offers keep their
-- own provider names.
local market = sky.provider {
  name = "catalog-market",
  offers = function(_, spec) return catalog.query(SNAP, spec) end,
  provision = function() return {} end,
  get_instance = function() end,
  terminate = function() end,
}

local function take(list, n)
  local out = {}
  for i = 1, n do out[i] = list[i] end
  return out
end

t.test("plan: H100 x8 on demand, cheapest first, equals a plain sort of the catalog", function()
  local plan = broker.plan { provider = market, accelerator = sky.accelerators.H100 { count = 8 }, allocation = "on-demand" }
  local want = {}
  for _, o in ipairs(SNAP) do
    if o.accelerator == "H100" and o.count == 8 and o.price then want[#want + 1] = o end
  end
  table.sort(want, function(a, b) return a.price < b.price end)
  t.eq(#plan, #want)
  for i = 1, #want do
    t.eq(plan[i].price, want[i].price)
    t.eq(plan[i].spot, false)
    t.eq(plan[i].provider, "catalog-market")
  end
end)

t.test("plan: always-spot on the catalog gives only spot attempts, ascending", function()
  local plan = broker.plan { provider = market, accelerator = "A100-80GB", allocation = "always-spot" }
  t.ok(#plan > 0)
  for i, a in ipairs(plan) do
    t.eq(a.spot, true)
    t.eq(a.offer.accelerator, "A100-80GB")
    t.eq(a.offer.count, 1, "a plain name asks for one per node")
    if i > 1 then t.ok(plan[i - 1].price <= a.price) end
  end
end)

t.test("plan: spot-if-available pairs each offer's spot with its on-demand", function()
  local plan = take(broker.plan { provider = market, accelerator = "L4", selection = "first" }, 6)
  for _, a in ipairs(plan) do t.eq(a.offer.accelerator, "L4") end
  for i = 1, 5 do
    if plan[i].offer == plan[i + 1].offer then
      t.eq({ plan[i].spot, plan[i + 1].spot }, { true, false })
    end
  end
end)

t.test("plan: a region on the request reaches the provider and filters", function()
  local plan = broker.plan { provider = market, accelerator = "H100", count = nil, region = "us-east-1" }
  t.ok(#plan > 0)
  for _, a in ipairs(plan) do t.eq(a.offer.region, "us-east-1") end
end)

t.test("plan: providers that are not implemented are reported", function()
  local plan, failures = broker.plan { provider = { "nebius", market }, accelerator = "H100" }
  t.ok(#plan > 0)
  t.eq(#failures, 1)
  t.ok(failures[1].reason:find("provider 'nebius' has %d+ matching offers in the catalog"), failures[1].reason)
end)

t.test("request: the provider forms and what specs inherit", function()
  local p = sky.provider { name = "reqp", offers = function() return {} end, provision = function() end,
    get_instance = function() end, terminate = function() end }
  local r = request.normalize({ provider = p, accelerator = "h100-sxm", region = "eu" }, 2)
  t.eq(#r.specs, 1)
  t.eq({ r.specs[1].name, r.specs[1].accelerator, r.specs[1].count, r.specs[1].region }, { "reqp", "H100", 1, "eu" })
  r = request.normalize({ provider = { "reqp", { provider = p, accelerator = sky.accelerators.L4 { count = 2 }, region = "us" } },
    accelerator = "H100" }, 1)
  t.eq({ r.specs[1].accelerator, r.specs[2].accelerator, r.specs[2].count, r.specs[2].region }, { "H100", "L4", 2, "us" })
  t.ok(r.specs[1].provider == r.specs[2].provider, "one provider object however it is named")
  t.eq(request.normalize({}, 1).specs[1].name, "local")
  t.eq(request.normalize({ spot = true }, 1).allocation, "always-spot")
  t.eq(request.normalize({ spot = false }, 1).allocation, "on-demand")
  t.eq(request.normalize({}, 1).allocation, "spot-if-available")
  t.eq(request.normalize({}, 1).timeout, request.DEFAULT_TIMEOUT)
  t.raises(function() request.normalize({ provider = { { provider = p, nodes = 2 } } }, 1) end, "unknown option 'nodes'")
  t.raises(function() request.normalize({ provision_timeout = 0 }, 1) end, "must be more than 0")
end)

t.test("blocklist: scopes, markets, and narrowing when the offer lacks a field", function()
  local a, b = { name = "a" }, { name = "b" }
  local z1 = { instance_type = "x", region = "r1", zone = "z1" }
  local z2 = { instance_type = "y", region = "r1", zone = "z2" }
  local r2 = { instance_type = "x", region = "r2", zone = "z3" }
  local bl = blocklist.new()
  local e = bl:block(a, z1, true, "zone")
  t.eq(blocklist.describe(e), "zone z1 of a (spot)")
  t.ok(bl:match(a, { instance_type = "other", region = "r1", zone = "z1" }, true), "the whole zone, spot")
  t.ok(not bl:match(a, z1, false), "not on-demand")
  t.ok(not bl:match(a, z2, true)); t.ok(not bl:match(b, z1, true))
  bl:block(a, z2, false, "region")
  t.ok(bl:match(a, z1, false) and not bl:match(a, r2, false))
  bl:block(b, z1, true, "provider")
  t.ok(bl:match(b, r2, false) and bl:match(b, r2, true))
  -- no zone: a zone failure blocks the region; no region either: just that offer
  local bl2 = blocklist.new()
  t.eq(bl2:block(a, { instance_type = "x", region = "r" }, false, "zone").scope, "region")
  local e3 = bl2:block(a, { instance_type = "bare" }, false, "zone")
  t.eq(e3.scope, "offer")
  t.eq(blocklist.describe(e3), "bare of a (on-demand)")
  t.ok(bl2:match(a, { instance_type = "bare" }, false) and not bl2:match(a, { instance_type = "other" }, false))
end)

t.test("blocklist: how wide an error blocks", function()
  t.eq(blocklist.scope_of({ code = "NoCapacity" }), "zone")
  t.eq(blocklist.scope_of({ code = "QuotaExceeded" }), "region")
  t.eq(blocklist.scope_of({ code = "AuthFailed" }), "provider")
  t.eq(blocklist.scope_of({ scope = "region", code = "NoCapacity" }), "region")
  t.eq(blocklist.scope_of("plain error", "offer"), "offer")
  t.eq(blocklist.scope_of("plain error"), "zone")
  t.eq(blocklist.reason({ code = "NoCapacity", message = "none left" }), "NoCapacity: none left")
  t.eq(blocklist.reason("x.lua:3: boom"), "x.lua:3: boom")
end)

t.done()
