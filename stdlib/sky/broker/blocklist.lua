-- What a failed attempt rules out for the rest of a search. A failure blocks a scope:
--   "offer"     this instance type in this zone/region
--   "zone"      every offer of the provider in the zone
--   "region"    every offer of the provider in the region
--   "provider"  the whole provider
-- Except for "provider" (credentials, a provider that cannot work at all), a block holds for one
-- market only: no spot capacity in a zone says nothing about on-demand there, so
-- spot-if-available still tries on-demand of the same offer after its spot attempt failed.
-- An offer that does not say its zone or region is blocked at the narrowest scope it does say.
--
-- How wide a failure blocks: the error's `scope` field if it has one ("zone", ...), else its
-- `code` (M.CODES), else the default the broker gives for the kind of failure. A provider can
-- raise errors.new("NoCapacity", "...") or { scope = "region", message = "..." }.
local M = {}

M.CODES = {
  NoCapacity = "zone", InsufficientCapacity = "zone", CapacityError = "zone",
  QuotaExceeded = "region", Quota = "region",
  AuthFailed = "provider", InvalidCredentials = "provider", NoCredentials = "provider",
  Unauthorized = "provider", NotImplemented = "provider",
}
M.SCOPES = { offer = true, zone = true, region = true, provider = true }

--- The scope a failure blocks: from the error itself, or `default`.
function M.scope_of(err, default)
  if type(err) == "table" then
    if M.SCOPES[err.scope] then return err.scope end
    if type(err.code) == "string" and M.CODES[err.code] then return M.CODES[err.code] end
  end
  return default or "zone"
end

--- The text of a provider's error: a message, a structured error, or a plain table
--- {code =, message =}.
function M.reason(err)
  if type(err) == "table" and getmetatable(err) == nil and type(err.message) == "string" then
    return type(err.code) == "string" and (err.code .. ": " .. err.message) or err.message
  end
  if type(err) == "string" then return err end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  return ("(error object is a %s value)"):format(type(err))
end

local List = {}
List.__index = List

function M.new() return setmetatable({ entries = {} }, List) end

--- Blocks `scope` around `offer` of provider object `prov` for market `spot` (a boolean).
--- Returns the entry, whose scope may be narrower than asked when the offer lacks the field.
function List:block(prov, offer, spot, scope)
  local e = { provider = prov, name = prov.name, spot = spot }
  if scope == "provider" then
    e.spot = nil
  elseif scope == "region" and offer.region then
    e.region = offer.region
  elseif scope == "zone" and offer.zone then
    e.region, e.zone = offer.region, offer.zone
  elseif scope == "zone" and offer.region then
    scope, e.region = "region", offer.region
  else
    scope = "offer"
    e.instance_type, e.region, e.zone = offer.instance_type, offer.region, offer.zone
  end
  e.scope = scope
  self.entries[#self.entries + 1] = e
  return e
end

--- The entry that blocks `offer` of `prov` in market `spot`, or nil.
function List:match(prov, offer, spot)
  for _, e in ipairs(self.entries) do
    if e.provider == prov and (e.spot == nil or e.spot == spot)
      and (e.region == nil or e.region == offer.region)
      and (e.zone == nil or e.zone == offer.zone)
      and (e.instance_type == nil or e.instance_type == offer.instance_type) then
      return e
    end
  end
end

--- "zone us-east-1a of aws (spot)", "provider aws", ...
function M.describe(e)
  local market = e.spot == nil and "" or (e.spot and " (spot)" or " (on-demand)")
  if e.scope == "provider" then return "provider " .. e.name end
  if e.scope == "region" then return ("region %s of %s%s"):format(e.region, e.name, market) end
  if e.scope == "zone" then return ("zone %s of %s%s"):format(e.zone, e.name, market) end
  local where = e.zone or e.region
  return ("%s%s of %s%s"):format(e.instance_type, where and (" in " .. where) or "", e.name, market)
end

return M
