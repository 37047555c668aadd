-- sky.policy: each selection and allocation mode gives exactly the order its name says, on a
-- small hand-made offer set.
local t = require "testlib"
local policy = require "sky.broker.policy"
local catalog = require "providers.catalog"

-- Hand-made offers (catalog order = this order). Prices USD/h.
local function offer(provider, id, price, spot, extra)
  local o = { provider = provider, instance_type = id, accelerator = "H100", count = 1, gpu_memory = 80,
    price = price, spot_price = spot }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
local OFFERS = {
  offer("aws", "a1", 4.0, 1.5),     -- spot much cheaper
  offer("aws", "a2", 3.0, nil),     -- on-demand only
  offer("gcp", "g1", 2.0, 2.5),     -- spot dearer than on-demand (it happens in the data)
  offer("lambda", "l1", 2.5, nil),
  offer("runpod", "r1", nil, 1.0),  -- spot only
  offer("gcp", "g2", 3.0, 3.0),     -- spot = on-demand: spot effectively unavailable
}

local function ids(list)
  local out = {}
  for i, o in ipairs(list) do out[i] = o.instance_type end
  return out
end

-- "a1:spot:1.5" per attempt, for compact exact comparisons.
local function attempts(list)
  local out = {}
  for i, a in ipairs(list) do
    out[i] = ("%s:%s:%g"):format(a.offer.instance_type, a.spot and "spot" or "od", a.price)
  end
  return out
end

-- Selection ----------------------------------------------------------------------------------

t.test("first: provider list order, then catalog order; unlisted providers left out", function()
  local spec = { providers = { "gcp", "runpod", "aws" } }
  t.eq(ids(policy.selection.first(OFFERS, spec)), { "g1", "g2", "r1", "a1", "a2" })
  t.eq(ids(policy.selection.first(OFFERS, { provider = "lambda" })), { "l1" })
  t.eq(ids(policy.selection.first(OFFERS, { providers = { { name = "runpod" }, "lambda" } })), { "r1", "l1" })
end)

t.test("first: no provider list keeps catalog order, and the input is not modified", function()
  local before = ids(OFFERS)
  local out = policy.selection.first(OFFERS, {})
  t.eq(ids(out), before)
  t.ok(out ~= OFFERS, "a new list")
  t.eq(ids(OFFERS), before)
end)

t.test("available: the same order as first", function()
  local spec = { providers = { "lambda", "aws" } }
  t.eq(ids(policy.selection.available(OFFERS, spec)), ids(policy.selection.first(OFFERS, spec)))
  t.eq(ids(policy.selection.available(OFFERS, spec)), { "l1", "a1", "a2" })
end)

t.test("cheapest: by the price the allocation pays first", function()
  -- spot-if-available pays spot where there is one: r1 1.0, a1 1.5, l1 2.5, g1 2.5, a2 3.0, g2 3.0
  t.eq(ids(policy.selection.cheapest(OFFERS, { allocation = "spot-if-available" })), { "r1", "a1", "g1", "l1", "a2", "g2" })
  -- the default allocation is spot-if-available
  t.eq(ids(policy.selection.cheapest(OFFERS, {})), { "r1", "a1", "g1", "l1", "a2", "g2" })
  -- on-demand: g1 2.0, l1 2.5, a2 3.0, g2 3.0, a1 4.0; r1 has no on-demand price and goes last
  t.eq(ids(policy.selection.cheapest(OFFERS, { allocation = "on-demand" })), { "g1", "l1", "a2", "g2", "a1", "r1" })
  -- always-spot: r1 1.0, a1 1.5, g1 2.5, g2 3.0; no spot price last
  t.eq(ids(policy.selection.cheapest(OFFERS, { allocation = "always-spot" })), { "r1", "a1", "g1", "g2", "a2", "l1" })
  -- cheapest: min of both: r1 1.0, a1 1.5, g1 2.0, l1 2.5, a2 3.0, g2 3.0
  t.eq(ids(policy.selection.cheapest(OFFERS, { allocation = "cheapest" })), { "r1", "a1", "g1", "l1", "a2", "g2" })
end)

t.test("cheapest: equal prices keep catalog order (stable)", function()
  local same = {}
  for i = 1, 50 do same[i] = offer("p", "o" .. i, 1.25, nil) end
  local out = policy.selection.cheapest(same, { allocation = "on-demand" })
  for i = 1, 50 do t.eq(out[i].instance_type, "o" .. i) end
end)

t.test("cheapest: prices that differ by a cent or less still sort right", function()
  local list = { offer("p", "x", 1.000002, nil), offer("p", "y", 1.000001, nil), offer("p", "z", 0.99, nil) }
  t.eq(ids(policy.selection.cheapest(list, { allocation = "on-demand" })), { "z", "y", "x" })
end)

-- Allocation ---------------------------------------------------------------------------------

t.test("spot-if-available: spot then on-demand of the same offer, then the next offer", function()
  t.eq(attempts(policy.expand(OFFERS, "spot-if-available")), {
    "a1:spot:1.5", "a1:od:4", "a2:od:3", "g1:spot:2.5", "g1:od:2", "l1:od:2.5", "r1:spot:1", "g2:spot:3", "g2:od:3",
  })
end)

t.test("always-spot: only spot attempts; offers without spot skipped", function()
  t.eq(attempts(policy.expand(OFFERS, "always-spot")), { "a1:spot:1.5", "g1:spot:2.5", "r1:spot:1", "g2:spot:3" })
end)

t.test("on-demand: only on-demand attempts; offers not sold on demand skipped", function()
  t.eq(attempts(policy.expand(OFFERS, "on-demand")), { "a1:od:4", "a2:od:3", "g1:od:2", "l1:od:2.5", "g2:od:3" })
end)

t.test("cheapest: the lower of spot and on-demand first, the other as fallback; ties on-demand first", function()
  t.eq(attempts(policy.expand(OFFERS, "cheapest")), {
    "a1:spot:1.5", "a1:od:4", "a2:od:3", "g1:od:2", "g1:spot:2.5", "l1:od:2.5", "r1:spot:1", "g2:od:3", "g2:spot:3",
  })
end)

t.test("attempts point at the offers themselves", function()
  local a = policy.expand(OFFERS, "on-demand")
  t.ok(a[1].offer == OFFERS[1])
  t.eq(a[1].spot, false)
end)

t.test("unknown modes raise with a suggestion", function()
  t.raises(function() policy.expand(OFFERS, "spot") end, "unknown allocation 'spot'")
  t.raises(function() policy.expand(OFFERS, "on_demand") end, "did you mean on-demand?")
  t.raises(function() policy.select(OFFERS, { selection = "cheapst" }) end, "unknown selection 'cheapst': did you mean cheapest?")
  t.raises(function() policy.select(OFFERS, { selection = 3 }) end, "selection must be a name or a function, got number")
  t.raises(function() policy.selection.cheapest(OFFERS, { allocation = "always_spot" }) end, "did you mean always-spot?")
end)

-- Select / plan --------------------------------------------------------------------------------

t.test("select: by name, default cheapest", function()
  t.eq(ids(policy.select(OFFERS, {})), { "r1", "a1", "g1", "l1", "a2", "g2" })
  t.eq(ids(policy.select(OFFERS, { selection = "first", providers = { "lambda" } })), { "l1" })
end)

t.test("select: a user Lua policy orders the offers", function()
  -- Prefer lambda, then anything by on-demand price, dearest first (a deliberately odd order).
  local function mine(offers, spec)
    t.eq(spec.tag, "mine")
    local out = {}
    for _, o in ipairs(offers) do if o.price then out[#out + 1] = o end end
    table.sort(out, function(a, b)
      if (a.provider == "lambda") ~= (b.provider == "lambda") then return a.provider == "lambda" end
      if a.price ~= b.price then return a.price > b.price end
      return a.instance_type < b.instance_type
    end)
    return out
  end
  t.eq(ids(policy.select(OFFERS, { selection = mine, tag = "mine" })), { "l1", "a1", "a2", "g2", "g1" })
end)

t.test("select: a user policy that returns garbage is named", function()
  t.raises(function() policy.select(OFFERS, { selection = function() return 5 end }) end,
    "selection function must return a list of offers, got number")
  t.raises(function() policy.select(OFFERS, { selection = function() return { OFFERS[1], "x" } end }) end,
    "non-offer at index 2")
end)

t.test("plan: filter, order and expand in one call", function()
  local list = {
    offer("aws", "p5", 55, 20, { count = 8 }),
    offer("lambda", "l8", 24, nil, { count = 8 }),
    offer("runpod", "r8", nil, 16, { count = 8 }),
    offer("lambda", "l1", 2.5, nil),
    offer("vast", "v8", 18, nil, { count = 8, accelerator = "A100-80GB" }),
  }
  local spec = { accelerator = "H100", count = 8 }
  t.eq(attempts(policy.plan(list, spec)), { "r8:spot:16", "p5:spot:20", "p5:od:55", "l8:od:24" })
  spec.allocation = "on-demand"
  t.eq(attempts(policy.plan(list, spec)), { "l8:od:24", "p5:od:55" })
  spec.selection, spec.providers, spec.allocation = "first", { "lambda", "aws" }, "spot-if-available"
  t.eq(attempts(policy.plan(list, spec)), { "l8:od:24", "p5:spot:20", "p5:od:55" })
end)

t.test("plan on the shipped snapshot: 8xH100, cheapest first", function()
  local snap = catalog.snapshot()
  local plan = policy.plan(snap, { accelerator = "H100", count = 8, allocation = "on-demand" })
  t.ok(#plan > 20, #plan .. " attempts")
  for i = 2, #plan do t.ok(plan[i - 1].price <= plan[i].price, "sorted at " .. i) end
  for _, a in ipairs(plan) do
    t.eq({ a.offer.accelerator, a.offer.count, a.spot }, { "H100", 8, false })
  end
end)

-- Lazy lists: "cheapest" and expand compute entries as they are read; every way of reading
-- must give the same order as a plain sort.

local function random_offers(n, seed)
  local state = seed
  local function rand()
    state = (state * 48271) % 2147483647
    return state / 2147483647
  end
  local out = {}
  for i = 1, n do
    local price = rand() < 0.9 and math.floor(rand() * 40) / 4 + 0.25 or nil -- many ties
    local spot = rand() < 0.5 and math.floor(rand() * 40) / 8 + 0.125 or nil
    if not price and not spot then price = 99 end
    out[i] = offer("p" .. (i % 7), "o" .. i, price, spot)
  end
  return out
end

local function reference_cheapest(offers, allocation)
  local idx = {}
  for i = 1, #offers do idx[i] = i end
  local function key(i)
    local o = offers[i]
    local s, d = o.spot_price, o.price
    if allocation == "on-demand" then return d or math.huge end
    if allocation == "always-spot" then return s or math.huge end
    if allocation == "cheapest" then return math.min(s or math.huge, d or math.huge) end
    return s or d or math.huge
  end
  table.sort(idx, function(a, b)
    if key(a) ~= key(b) then return key(a) < key(b) end
    return a < b
  end)
  local out = {}
  for i, j in ipairs(idx) do out[i] = offers[j].instance_type end
  return out
end

local BIG = random_offers(2000, 7)

t.test("lazy cheapest: ipairs, jumps, pairs and # all see the sorted order", function()
  for _, alloc in ipairs(policy.allocations) do
    local want = reference_cheapest(BIG, alloc)
    local spec = { allocation = alloc }
    -- front to back
    local got = {}
    for i, o in ipairs(policy.selection.cheapest(BIG, spec)) do got[i] = o.instance_type end
    t.eq(got, want, alloc .. " ipairs")
    -- a few from the front, then a jump, then the rest
    local l = policy.selection.cheapest(BIG, spec)
    t.eq(#l, #BIG)
    t.eq(l[3].instance_type, want[3])
    t.eq(l[1500].instance_type, want[1500])
    t.eq(ids(l), want, alloc .. " after jump")
    -- pairs computes everything and leaves a plain table
    l = policy.selection.cheapest(BIG, spec)
    t.eq(l[1].instance_type, want[1])
    local n = 0
    for _ in pairs(l) do n = n + 1 end
    t.eq(n, #BIG)
    t.eq(getmetatable(l), nil)
    t.eq(ids(l), want)
  end
end)

t.test("lazy cheapest: writes and table functions work", function()
  local want = reference_cheapest(BIG, "spot-if-available")
  local l = policy.selection.cheapest(BIG, {})
  t.eq(l[1].instance_type, want[1])
  table.insert(l, offer("x", "extra", 1, nil))
  t.eq(#l, #BIG + 1)
  t.eq(l[#l].instance_type, "extra")
  t.eq(l[2].instance_type, want[2])
  l = policy.selection.cheapest(BIG, {})
  table.sort(l, function(a, b) return a.instance_type < b.instance_type end)
  t.eq(l[1].instance_type, "o1")
  t.eq(policy.selection.cheapest({}, {}), {})
  t.eq(getmetatable(policy.materialize(policy.selection.cheapest(BIG, {}))), nil)
end)

t.test("lazy expand over lazy cheapest equals the eager expansion", function()
  for _, alloc in ipairs(policy.allocations) do
    local order = reference_cheapest(BIG, alloc)
    local by_id = {}
    for _, o in ipairs(BIG) do by_id[o.instance_type] = o end
    local eager = {}
    for i, id in ipairs(order) do eager[i] = by_id[id] end
    local want = attempts(policy.materialize(policy.expand(eager, alloc)))
    local spec = { allocation = alloc }
    t.eq(attempts(policy.expand(policy.selection.cheapest(BIG, spec), alloc)), want, alloc)
    local l = policy.expand(policy.selection.cheapest(BIG, spec), alloc)
    t.eq(attempts({ l[1], l[2], l[3] }), { want[1], want[2], want[3] }, alloc .. " front")
    t.ok(getmetatable(l) ~= nil, "still lazy after reading the front")
    t.eq(#l, #want, alloc .. " length")
    t.eq(attempts(l), want, alloc .. " after #")
  end
end)

t.done()
