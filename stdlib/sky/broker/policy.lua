-- Selection and allocation: which offers a pool tries, in which order, spot or on-demand.
--
-- Two independent steps, both pure functions:
--   selection  (spec.selection)  orders offers:      function(offers, spec) -> ordered offers
--   allocation (spec.allocation) turns the ordered offers into attempts {offer, spot, price}
-- The broker walks the attempts in order and stops at the first that provisions; every failed
-- attempt falls through to the next, across providers. So a policy only ever decides an order.
--
-- Selections:
--   "first"      offers of spec.providers in the order the providers are listed, catalog order
--                inside one provider; offers of providers not listed are left out.
--   "cheapest"   by the price the allocation would pay first (see _relevant_price), cheapest
--                first; offers with no such price last; ties keep catalog order.
--   "available"  the first offer that can actually provision, in provider list order: offers a
--                provider reports as out of stock (available = false, or capacity below the
--                pool's nodes) are left out, offers reported in stock come first, then the
--                rest in "first" order; the broker then walks them until one provisions.
--   a function   function(offers, spec) returning an ordered list of offers (a user policy).
-- Allocations (per offer, in selection order; attempts whose price is missing are not made):
--   "spot-if-available"  spot (if the offer has a spot price), then on-demand of the same offer.
--   "always-spot"        spot only; offers without a spot price are skipped.
--   "on-demand"          on-demand only; offers not sold on demand are skipped.
--   "cheapest"           the lower of spot and on-demand first, then the other one of the same
--                        offer as its fallback. Equal prices: on-demand first (same money, no
--                        preemption).
--   a function           function(offer, spec) returning that offer's attempts, in order, as a
--                        list of {spot = <boolean>, price = <USD/h>}.
-- The named ones are functions in M.selection and M.allocation, so a script can wrap or replace
-- them (sky.override("selection.cheapest", function(base, offers, spec) ... end)).
-- "cheapest" and the attempt lists are lazy (sky._lazy): entries are computed as they are read,
-- so choosing among 10,000 offers costs ~2 ms and reading all 15,000 attempts ~13 ms
-- (bench/select_offers.lua). They read like plain lists; M.materialize makes one plain.
local catalog = require "providers.catalog"
local errors = require "sky.errors"
local suggest = require "sky.internal.suggest"
local lazy = require "sky.internal.lazy"

local M = {}

M.default_selection = "cheapest"
M.default_allocation = "spot-if-available"
M.allocations = { "spot-if-available", "always-spot", "on-demand", "cheapest" }

-- The named allocations as functions of one offer, returning its attempts in order. expand and
-- cheapest use an inlined equivalent while a name still maps to its original function.
M.allocation = {}
M.allocation["spot-if-available"] = function(o)
  local out = {}
  if o.spot_price then out[1] = { spot = true, price = o.spot_price } end
  if o.price then out[#out + 1] = { spot = false, price = o.price } end
  return out
end
M.allocation["always-spot"] = function(o)
  return o.spot_price and { { spot = true, price = o.spot_price } } or {}
end
M.allocation["on-demand"] = function(o)
  return o.price and { { spot = false, price = o.price } } or {}
end
M.allocation["cheapest"] = function(o)
  local s, p = o.spot_price, o.price
  if s and p then
    if p <= s then return { { spot = false, price = p }, { spot = true, price = s } } end
    return { { spot = true, price = s }, { spot = false, price = p } }
  end
  if s then return { { spot = true, price = s } } end
  return p and { { spot = false, price = p } } or {}
end
local _original = {}
for k, f in pairs(M.allocation) do _original[k] = f end

-- The function behind an allocation, and whether it is a built-in left as it was (fast path).
local function _allocation_fn(a)
  if type(a) == "function" then return a, false end
  local f = M.allocation[a]
  return f, f == _original[a]
end

local function _unknown(kind, name, valid)
  local cands = {}
  for _, v in ipairs(valid) do cands[#cands + 1] = { key = v, name = v } end
  local hint = suggest.did_you_mean(suggest.suggest(tostring(name), cands))
  errors.raise(kind == "selection" and "BadSelection" or "BadAllocation", ("unknown %s '%s'%s (valid: %s)"):format(
    kind, tostring(name), hint, table.concat(valid, ", ")))
end

--- Raises unless `a` is an allocation name or function; returns it.
function M.check_allocation(a)
  if type(a) == "function" then return a end
  if type(a) ~= "string" then
    errors.raise("BadAllocation", ("allocation must be a name or a function, got %s"):format(type(a)))
  end
  if not M.allocation[a] then
    local names = {}
    for k in pairs(M.allocation) do names[#names + 1] = k end
    table.sort(names)
    _unknown("allocation", a, names)
  end
  return a
end

local function _allocation(spec)
  return M.check_allocation(spec and spec.allocation or M.default_allocation)
end

-- A user allocation's attempts for one offer, checked.
local function _user_attempts(fn, o, spec)
  local list = fn(o, spec)
  if type(list) ~= "table" then
    errors.raise("BadAllocation", ("allocation function must return a list of {spot =, price =}, got %s"):format(type(list)))
  end
  for i, a in ipairs(list) do
    if type(a) ~= "table" or type(a.spot) ~= "boolean" or type(a.price) ~= "number" then
      errors.raise("BadAllocation", ("allocation function returned a bad attempt at index %d for %s: need {spot = <boolean>, price = <number>}")
        :format(i, tostring(o.instance_type)))
    end
  end
  return list
end

-- The price an allocation would pay for an offer on its first attempt; nil if it cannot use it.
local function _relevant_price(o, allocation, spec)
  local fn, builtin = _allocation_fn(allocation)
  if not builtin then
    local first = _user_attempts(fn, o, spec)[1]
    return first and first.price
  end
  local p, s = o.price, o.spot_price
  if allocation == "on-demand" then return p end
  if allocation == "always-spot" then return s end
  if allocation == "cheapest" then
    if p and s then return s < p and s or p end
    return p or s
  end
  return s or p -- spot-if-available: spot comes first where there is one
end

M.selection = {}

--- Provider list order, then catalog order; providers not listed are left out.
function M.selection.first(offers, spec)
  local providers = catalog.provider_list(spec or {})
  if not providers then return table.move(offers, 1, #offers, 1, {}) end
  local rank, buckets = {}, {}
  for i, p in ipairs(providers) do
    if not rank[p] then rank[p], buckets[i] = i, {} end
  end
  for i = 1, #offers do
    local o = offers[i]
    local r = rank[o.provider]
    if r then
      local b = buckets[r]
      b[#b + 1] = o
    end
  end
  local out = {}
  for i = 1, #providers do
    local b = buckets[i]
    if b then table.move(b, 1, #b, #out + 1, out) end
  end
  return out
end

--- Provider list order, without offers known to be out of stock; offers known in stock first.
function M.selection.available(offers, spec)
  local ordered = M.selection.first(offers, spec)
  local nodes = spec and spec.nodes or 1
  local yes, unknown = {}, {}
  for i = 1, #ordered do
    local o = ordered[i]
    local cap = o.capacity
    if o.available == false or (cap and cap < nodes) then
      -- left out: the provider says it cannot give this many now
    elseif o.available == true or cap then
      yes[#yes + 1] = o
    else
      unknown[#unknown + 1] = o
    end
  end
  return table.move(unknown, 1, #unknown, #yes + 1, yes)
end

-- "cheapest" must choose among 10,000 offers in a few milliseconds, and the broker reads the
-- result from the front. So: pack each offer's price (micro-dollars) above its index into one
-- integer (integer order = price order, ties in catalog order, and no Lua comparator), build a
-- binary heap of those keys (O(n)), and pop entries only as the list is read. After the first
-- _POP_LIMIT entries, or when a reader jumps further ahead, the rest is sorted in one go.
local _INDEX_BITS = 20
local _INDEX_MASK = (1 << _INDEX_BITS) - 1
local _NO_PRICE = (1 << 42) - 1 -- micro-dollars; above any real price (4.4 M USD/h)
local _POP_LIMIT = 64

-- Restores the heap property below position j, for value v placed there.
local function _sift_down(h, n, j, v)
  while true do
    local c = 2 * j
    if c > n then break end
    local cv = h[c]
    if c < n then
      local c2 = h[c + 1]
      if c2 < cv then c, cv = c + 1, c2 end
    end
    if cv >= v then break end
    h[j] = cv
    j = c
  end
  h[j] = v
end

-- Beyond 2^20 offers the index does not fit beside the price: sort tables the ordinary way.
-- Also the way for allocations that are user functions (each offer's price comes from a call).
local function _cheapest_slow(offers, allocation, spec)
  local idx, keys = {}, {}
  for i = 1, #offers do
    idx[i] = i
    keys[i] = _relevant_price(offers[i], allocation, spec) or math.huge
  end
  table.sort(idx, function(a, b)
    local ka, kb = keys[a], keys[b]
    if ka ~= kb then return ka < kb end
    return a < b
  end)
  for i = 1, #idx do idx[i] = offers[idx[i]] end
  return idx
end

--- Cheapest first by the price the allocation pays first; no price sorts last; ties keep
--- catalog order. Returns a lazy list (see sky._lazy): entries are ordered as they are read.
function M.selection.cheapest(offers, spec)
  local allocation = _allocation(spec)
  local n = #offers
  if n == 0 then return {} end
  if n > _INDEX_MASK or not select(2, _allocation_fn(allocation)) then
    return _cheapest_slow(offers, allocation, spec)
  end
  local use_spot, use_od, lower = allocation ~= "on-demand", allocation ~= "always-spot", allocation == "cheapest"
  local heap, floor = {}, math.floor
  for i = 1, n do
    local o = offers[i]
    -- _relevant_price, inlined: this loop is most of the cost of choosing.
    local s, d = use_spot and o.spot_price or nil, use_od and o.price or nil
    local p
    if s and d then
      p = (lower and d < s) and d or s
    else
      p = s or d
    end
    local micro = p and floor(p * 1e6 + 0.5) or _NO_PRICE
    if micro > _NO_PRICE then micro = _NO_PRICE elseif micro < 0 then micro = 0 end
    heap[i] = (micro << _INDEX_BITS) | i
  end
  for j = n // 2, 1, -1 do _sift_down(heap, n, j, heap[j]) end

  local hn, filled = n, 0
  local function fill(t, upto)
    if upto > n then upto = n end
    if filled >= _POP_LIMIT or upto - filled > _POP_LIMIT then
      -- heap[1..hn] holds exactly the keys not yet placed (pops nil the tail).
      table.sort(heap)
      for j = 1, hn do rawset(t, filled + j, offers[heap[j] & _INDEX_MASK]) end
      filled, hn, heap = n, 0, {}
      return true
    end
    while filled < upto do
      local top = heap[1]
      local last = heap[hn]
      heap[hn] = nil
      hn = hn - 1
      if hn > 0 then _sift_down(heap, hn, 1, last) end
      filled = filled + 1
      rawset(t, filled, offers[top & _INDEX_MASK])
    end
    return filled >= n
  end
  return lazy.list(fill, n)
end

--- Attempts for an ordered list of offers under an allocation mode. Each attempt is
--- {offer = <offer>, spot = <boolean>, price = <USD/h of that attempt>}. Returns a lazy list:
--- attempts are made as the broker reads them (most pools stop at the first).
function M.expand(offers, allocation, spec)
  allocation = M.check_allocation(allocation or M.default_allocation)
  local fn, builtin = _allocation_fn(allocation)
  if not builtin then return M._expand_with(offers, fn, spec) end
  local want_spot = allocation ~= "on-demand"
  local want_od = allocation ~= "always-spot"
  local cheapest = allocation == "cheapest"
  local n_offers, oi, count = #offers, 0, 0
  local function fill(t, upto)
    if upto == math.huge then lazy.materialize(offers) end -- all of it: let the input sort at once
    while count < upto and oi < n_offers do
      oi = oi + 1
      local o = offers[oi]
      local s = want_spot and o.spot_price or nil
      local p = want_od and o.price or nil
      if cheapest and s and p and p <= s then
        rawset(t, count + 1, { offer = o, spot = false, price = p })
        rawset(t, count + 2, { offer = o, spot = true, price = s })
        count = count + 2
      else
        if s then count = count + 1; rawset(t, count, { offer = o, spot = true, price = s }) end
        if p then count = count + 1; rawset(t, count, { offer = o, spot = false, price = p }) end
      end
    end
    return oi >= n_offers
  end
  return lazy.list(fill)
end

-- expand for an allocation function: its attempts per offer, in offer order, made lazily.
function M._expand_with(offers, fn, spec)
  local n_offers, oi, count = #offers, 0, 0
  local function fill(t, upto)
    if upto == math.huge then lazy.materialize(offers) end
    while count < upto and oi < n_offers do
      oi = oi + 1
      local o = offers[oi]
      for _, a in ipairs(_user_attempts(fn, o, spec)) do
        count = count + 1
        rawset(t, count, { offer = o, spot = a.spot, price = a.price })
      end
    end
    return oi >= n_offers
  end
  return lazy.list(fill)
end

-- A user policy's answer must be a list of offers; say exactly what is wrong otherwise. A lazy
-- list (a user policy that returns the result of a built-in one) came from here and is not read,
-- so that checking does not compute it.
local function _check_selected(result)
  if type(result) ~= "table" then
    errors.raise("BadSelection", ("selection function must return a list of offers, got %s"):format(type(result)))
  end
  if getmetatable(result) == nil then
    for i = 1, #result do
      local o = result[i]
      if type(o) ~= "table" or type(o.provider) ~= "string" then
        errors.raise("BadSelection", ("selection function returned a non-offer at index %d (%s)"):format(i, type(o)))
      end
    end
  end
  return result
end

--- Raises unless `sel` is a selection name or function; returns the function.
function M.check_selection(sel)
  if type(sel) == "function" then return sel end
  local fn = type(sel) == "string" and M.selection[sel]
  if not fn then
    local names = {}
    for k in pairs(M.selection) do names[#names + 1] = k end
    table.sort(names)
    if type(sel) ~= "string" then
      errors.raise("BadSelection", ("selection must be a name or a function, got %s"):format(type(sel)))
    end
    _unknown("selection", sel, names)
  end
  return fn
end

--- Orders offers by spec.selection (a name or a function; default "cheapest").
function M.select(offers, spec)
  spec = spec or {}
  local sel = spec.selection or M.default_selection
  local fn = M.check_selection(sel)
  if type(sel) == "function" then return _check_selected(fn(offers, spec)) end
  return fn(offers, spec)
end

--- Computes a lazy list (from cheapest or expand) in full; returns it as a plain table.
M.materialize = lazy.materialize

--- The whole choice for a pool: filter (catalog.query), order (selection), expand (allocation).
--- Returns the attempts the broker makes, in order.
function M.plan(offers, spec)
  spec = spec or {}
  _allocation(spec)
  local matching = catalog.query(offers, spec)
  return M.expand(M.select(matching, spec), spec.allocation, spec)
end

return M
