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
--   "available"  the same order as "first". It names the broker's contract: what matters is the
--                first attempt that can actually provision, in the user's provider order.
--   a function   function(offers, spec) returning an ordered list of offers (a user policy).
-- Allocations (per offer, in selection order; attempts whose price is missing are not made):
--   "spot-if-available"  spot (if the offer has a spot price), then on-demand of the same offer.
--   "always-spot"        spot only; offers without a spot price are skipped.
--   "on-demand"          on-demand only; offers not sold on demand are skipped.
--   "cheapest"           the lower of spot and on-demand first, then the other one of the same
--                        offer as its fallback. Equal prices: on-demand first (same money, no
--                        preemption).
-- "cheapest" and the attempt lists are lazy (sky._lazy): entries are computed as they are read,
-- so choosing among 10,000 offers costs ~2 ms and reading all 15,000 attempts ~13 ms
-- (bench/select_offers.lua). They read like plain lists; M.materialize makes one plain.
local catalog = require "sky.catalog"
local errors = require "sky.errors"
local suggest = require "sky._suggest"
local lazy = require "sky._lazy"

local M = {}

M.default_selection = "cheapest"
M.default_allocation = "spot-if-available"
M.allocations = { "spot-if-available", "always-spot", "on-demand", "cheapest" }

local _allocation_set = {}
for _, a in ipairs(M.allocations) do _allocation_set[a] = true end

local function _unknown(kind, name, valid)
  local cands = {}
  for _, v in ipairs(valid) do cands[#cands + 1] = { key = v, name = v } end
  local hint = suggest.did_you_mean(suggest.suggest(tostring(name), cands))
  errors.raise(kind == "selection" and "BadSelection" or "BadAllocation", ("unknown %s '%s'%s (valid: %s)"):format(
    kind, tostring(name), hint, table.concat(valid, ", ")))
end

local function _allocation(spec)
  local a = spec and spec.allocation or M.default_allocation
  if not _allocation_set[a] then _unknown("allocation", a, M.allocations) end
  return a
end

-- The price an allocation would pay for an offer on its first attempt; nil if it cannot use it.
local function _relevant_price(o, allocation)
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

M.selection.available = M.selection.first

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
local function _cheapest_slow(offers, allocation)
  local idx = {}
  for i = 1, #offers do idx[i] = i end
  local function key(i) return _relevant_price(offers[i], allocation) or math.huge end
  table.sort(idx, function(a, b)
    local ka, kb = key(a), key(b)
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
  if n > _INDEX_MASK then return _cheapest_slow(offers, allocation) end
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
function M.expand(offers, allocation)
  allocation = allocation or M.default_allocation
  if not _allocation_set[allocation] then _unknown("allocation", allocation, M.allocations) end
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

--- Orders offers by spec.selection (a name or a function; default "cheapest").
function M.select(offers, spec)
  spec = spec or {}
  local sel = spec.selection or M.default_selection
  if type(sel) == "function" then return _check_selected(sel(offers, spec)) end
  local fn = M.selection[sel]
  if type(sel) ~= "string" or not fn then
    local names = {}
    for k in pairs(M.selection) do names[#names + 1] = k end
    table.sort(names)
    if type(sel) ~= "string" then
      errors.raise("BadSelection", ("selection must be a name or a function, got %s"):format(type(sel)))
    end
    _unknown("selection", sel, names)
  end
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
  return M.expand(M.select(matching, spec), spec.allocation)
end

return M
