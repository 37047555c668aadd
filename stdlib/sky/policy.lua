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
local catalog = require "sky.catalog"
local errors = require "sky._errors"

local M = {}

M.default_selection = "cheapest"
M.default_allocation = "spot-if-available"
M.allocations = { "spot-if-available", "always-spot", "on-demand", "cheapest" }

local _allocation_set = {}
for _, a in ipairs(M.allocations) do _allocation_set[a] = true end

-- Helpers take an error level as error() does: 1 is the helper itself, 2 its caller, ...
local function _unknown(kind, name, valid, level)
  local cands = {}
  for _, v in ipairs(valid) do cands[#cands + 1] = { key = v, name = v } end
  local hint = errors.did_you_mean(errors.suggest(tostring(name), cands))
  errors.raise("bad_" .. kind, ("unknown %s '%s'%s (valid: %s)"):format(kind, tostring(name), hint,
    table.concat(valid, ", ")), level)
end

local function _allocation(spec, level)
  local a = spec and spec.allocation or M.default_allocation
  if not _allocation_set[a] then _unknown("allocation", a, M.allocations, level + 1) end
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

-- Sorting 10,000 offers with a Lua comparator costs ~15 ms; sorting integers needs none. Each key
-- packs the price in micro-dollars above the offer's index, so integer order is price order
-- with ties in catalog order (a stable sort), and the index comes back out of the low bits.
local _INDEX_BITS = 20
local _INDEX_MASK = (1 << _INDEX_BITS) - 1
local _NO_PRICE = (1 << 42) - 1 -- micro-dollars; above any real price (4.4 M USD/h)

--- Cheapest first by the price the allocation pays first; no price sorts last.
function M.selection.cheapest(offers, spec)
  local allocation = _allocation(spec, 3)
  local n = #offers
  if n > _INDEX_MASK then -- too many to pack; the slow, stable way
    local idx = {}
    for i = 1, n do idx[i] = i end
    local function key(i) return _relevant_price(offers[i], allocation) or math.huge end
    table.sort(idx, function(a, b)
      local ka, kb = key(a), key(b)
      if ka ~= kb then return ka < kb end
      return a < b
    end)
    for i = 1, n do idx[i] = offers[idx[i]] end
    return idx
  end
  local keys, floor = {}, math.floor
  for i = 1, n do
    local p = _relevant_price(offers[i], allocation)
    local micro = p and floor(p * 1e6 + 0.5) or _NO_PRICE
    if micro > _NO_PRICE then micro = _NO_PRICE end
    if micro < 0 then micro = 0 end
    keys[i] = (micro << _INDEX_BITS) | i
  end
  table.sort(keys)
  local out = {}
  for i = 1, n do out[i] = offers[keys[i] & _INDEX_MASK] end
  return out
end

--- Attempts for an ordered list of offers under an allocation mode. Each attempt is
--- {offer = <offer>, spot = <boolean>, price = <USD/h of that attempt>}.
function M.expand(offers, allocation)
  allocation = allocation or M.default_allocation
  if not _allocation_set[allocation] then _unknown("allocation", allocation, M.allocations, 3) end
  local out, n = {}, 0
  local want_spot = allocation ~= "on-demand"
  local want_od = allocation ~= "always-spot"
  local cheapest = allocation == "cheapest"
  for i = 1, #offers do
    local o = offers[i]
    local s = want_spot and o.spot_price or nil
    local p = want_od and o.price or nil
    if cheapest and s and p and p <= s then
      out[n + 1] = { offer = o, spot = false, price = p }
      out[n + 2] = { offer = o, spot = true, price = s }
      n = n + 2
    else
      if s then n = n + 1; out[n] = { offer = o, spot = true, price = s } end
      if p then n = n + 1; out[n] = { offer = o, spot = false, price = p } end
    end
  end
  return out
end

-- A user policy's answer must be a list of offers; say exactly what is wrong otherwise.
local function _check_selected(result, level)
  if type(result) ~= "table" then
    errors.raise("bad_selection", ("selection function must return a list of offers, got %s"):format(type(result)), level)
  end
  for i, o in ipairs(result) do
    if type(o) ~= "table" or type(o.provider) ~= "string" then
      errors.raise("bad_selection", ("selection function returned a non-offer at index %d (%s)"):format(i, type(o)), level)
    end
  end
  return result
end

--- Orders offers by spec.selection (a name or a function; default "cheapest").
function M.select(offers, spec)
  spec = spec or {}
  local sel = spec.selection or M.default_selection
  if type(sel) == "function" then return _check_selected(sel(offers, spec), 3) end
  local fn = M.selection[sel]
  if type(sel) ~= "string" or not fn then
    local names = {}
    for k in pairs(M.selection) do names[#names + 1] = k end
    table.sort(names)
    if type(sel) ~= "string" then
      errors.raise("bad_selection", ("selection must be a name or a function, got %s"):format(type(sel)), 2)
    end
    _unknown("selection", sel, names, 3)
  end
  return fn(offers, spec)
end

--- The whole choice for a pool: filter (catalog.query), order (selection), expand (allocation).
--- Returns the attempts the broker makes, in order.
function M.plan(offers, spec)
  spec = spec or {}
  _allocation(spec, 3)
  local matching = catalog.query(offers, spec)
  return M.expand(M.select(matching, spec), spec.allocation)
end

return M
