-- How long choosing among 10,000 offers takes:
--
--   skyhost bench/select_offers.lua [N]      (also the broker's whole choice, below)
--   lua5.4 bench/select_offers.lua [N]       (policies only)
--
-- Times (median of 20 runs, CPU time via os.clock):
--   default    selection "cheapest" + allocation "spot-if-available" (the defaults); target <= 5 ms
--              until the first attempt is known; also the first 20, and every attempt
--   user       selection functions written in Lua + the same expansion: one that sorts with its
--              own comparator, one that filters and then calls the default
--   plan       catalog.query (H100 x 8) + default selection + expansion
--   reference  "cheapest" done with a comparator sort, to show what the heap of packed keys saves
--   broker     under skyhost only: what sky.compute does before its first attempt, for a Lua
--              provider (sky.provider) listing the N offers: offers() called on the driver,
--              validated and filtered for the request, ordered, expanded (broker.plan)
-- The offers are generated from a fixed seed, so every run sees the same input.
local _here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = _here .. "/../stdlib/?.lua;" .. _here .. "/../stdlib/?/init.lua;" .. _here .. "/../?.lua;"
  .. _here .. "/../?/init.lua;" .. package.path

local policy = require "sky.broker.policy"
local catalog = require "providers.catalog"

local N = tonumber(arg and arg[1]) or 10000
local RUNS = 20

-- Park-Miller generator: the same numbers on every Lua build (math.random's seeding differs).
local _state = 12345
local function _rand()
  _state = (_state * 48271) % 2147483647
  return _state / 2147483647
end

local PROVIDERS = { "aws", "gcp", "lambda", "runpod", "vast", "nebius", "oci", "cudo", "verda", "shadeform",
  "primeintellect", "hyperstack", "lium", "daytona", "jarvislabs", "seeweb", "mithril", "fluidstack", "paperspace", "yotta" }
local GPUS = { { "H100", 80, 2.5 }, { "A100", 40, 1.3 }, { "A100-80GB", 80, 1.8 }, { "H200", 141, 3.5 },
  { "B200", 180, 5.5 }, { "L40S", 48, 1.0 }, { "L4", 24, 0.5 }, { "RTX4090", 24, 0.4 } }
local COUNTS = { 1, 2, 4, 8 }

local function generate(n)
  local offers = {}
  for i = 1, n do
    local g = GPUS[1 + math.floor(_rand() * #GPUS)]
    local count = COUNTS[1 + math.floor(_rand() * #COUNTS)]
    local price = math.floor(g[3] * count * (0.6 + _rand()) * 1e4) / 1e4
    local has_od, has_spot = _rand() < 0.9, _rand() < 0.6
    offers[i] = {
      provider = PROVIDERS[1 + math.floor(_rand() * #PROVIDERS)], instance_type = "type-" .. i,
      accelerator = g[1], count = count, gpu_memory = g[2], vcpus = 8 * count, memory = 64 * count,
      region = "region-" .. (i % 17), price = has_od and price or nil,
      spot_price = (has_spot or not has_od) and math.floor(price * (0.3 + 0.5 * _rand()) * 1e4) / 1e4 or nil,
      source = "bench", date = "bench",
    }
  end
  return offers
end

local function time_ms(fn)
  local samples = {}
  fn() -- warm up
  for r = 1, RUNS do
    collectgarbage("collect")
    local t0 = os.clock()
    fn()
    samples[r] = (os.clock() - t0) * 1000
  end
  table.sort(samples)
  return samples[(RUNS + 1) // 2], samples[1], samples[RUNS]
end

-- A user's policy: cheapest per GB of GPU memory, H100/H200 preferred, written the obvious way.
local function user_policy(offers, spec)
  local out = {}
  for i = 1, #offers do
    local o = offers[i]
    if o.price or o.spot_price then out[#out + 1] = o end
  end
  local function cost(o) return (o.spot_price or o.price) / (o.gpu_memory * o.count) end
  table.sort(out, function(a, b)
    local ha = a.accelerator == "H100" or a.accelerator == "H200"
    local hb = b.accelerator == "H100" or b.accelerator == "H200"
    if ha ~= hb then return ha end
    local ca, cb = cost(a), cost(b)
    if ca ~= cb then return ca < cb end
    return a.instance_type < b.instance_type
  end)
  return out
end

-- A user's policy built on the default: no marketplaces, then the default order (cheapest).
local policy_cheapest = policy.selection.cheapest
local function user_filter_policy(offers, spec)
  local keep = {}
  for i = 1, #offers do
    local o = offers[i]
    if o.provider ~= "vast" and o.provider ~= "primeintellect" then keep[#keep + 1] = o end
  end
  return policy_cheapest(keep, spec)
end

-- What "cheapest" would cost with an ordinary comparator sort.
local function comparator_cheapest(offers)
  local out = table.move(offers, 1, #offers, 1, {})
  local idx = {}
  for i, o in ipairs(out) do idx[o] = i end
  table.sort(out, function(a, b)
    local pa, pb = a.spot_price or a.price or math.huge, b.spot_price or b.price or math.huge
    if pa ~= pb then return pa < pb end
    return idx[a] < idx[b]
  end)
  return out
end

local offers = generate(N)
local default_spec = {}
local attempts

local function report(label, med, lo, hi)
  print(("%-44s median %7.3f ms   (min %.3f, max %.3f)"):format(label, med, lo, hi))
end

print(("%s, %d offers, median of %d runs"):format(_VERSION, N, RUNS))
-- The broker reads attempts from the front; selection and expansion compute entries as they
-- are read. "choose" stops once the first attempt exists; "all" computes every attempt.
local first
report("default: choose (first attempt ready)", time_ms(function()
  attempts = policy.expand(policy.select(offers, default_spec), policy.default_allocation)
  first = attempts[1]
end))
print(("  -> first attempt: %s %s spot=%s %.4f USD/h"):format(first.offer.provider, first.offer.instance_type,
  tostring(first.spot), first.price))
report("default: first 20 attempts", time_ms(function()
  attempts = policy.expand(policy.select(offers, default_spec), policy.default_allocation)
  for i = 1, 20 do first = attempts[i] end
end))
report("default: all attempts computed", time_ms(function()
  attempts = policy.materialize(policy.expand(policy.select(offers, default_spec), policy.default_allocation))
end))
print(("  -> %d attempts"):format(#attempts))
report("user Lua policy: choose (first attempt)", time_ms(function()
  attempts = policy.expand(policy.select(offers, { selection = user_policy }), policy.default_allocation)
  first = attempts[1]
end))
report("user Lua policy: all attempts computed", time_ms(function()
  attempts = policy.materialize(policy.expand(policy.select(offers, { selection = user_policy }),
    policy.default_allocation))
end))
report("user policy wrapping cheapest: choose", time_ms(function()
  attempts = policy.expand(policy.select(offers, { selection = user_filter_policy }), policy.default_allocation)
  first = attempts[1]
end))
local plan_spec = { accelerator = "H100", count = 8 }
local n_match = #catalog.query(offers, plan_spec)
report(("plan: query H100x8 (%d match), first attempt"):format(n_match), time_ms(function()
  first = policy.plan(offers, plan_spec)[1]
end))
report("reference: cheapest by comparator sort", time_ms(function() comparator_cheapest(offers) end))

if pcall(require, "skyhost.core") then
  local broker = require "sky.broker"
  local providers = require "providers"
  local noop = function() end
  local prov = providers.define { name = "bench", offers = function() return offers end, provision = noop,
    get_instance = noop, terminate = noop }
  local how
  report("broker: default, first attempt ready", time_ms(function()
    how = broker.plan({ provider = prov })[1]
  end))
  print(("  -> first attempt: %s spot=%s %.4f USD/h"):format(how.offer.instance_type, tostring(how.spot), how.price))
  report("broker: Lua selection function, first attempt", time_ms(function()
    how = broker.plan({ provider = prov, selection = user_policy })[1]
  end))
  report("broker: H100 x8 on the request, first attempt", time_ms(function()
    how = broker.plan({ provider = prov, accelerator = "H100", count = 8 })[1]
  end))
end
