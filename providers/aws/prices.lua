-- Live spot prices: DescribeSpotPriceHistory for the instance types of the offers a pool
-- considers, in the regions it considers, so that the broker ranks and the ledger bills by the
-- price AWS charges now rather than the catalog's snapshot. Prices are cached per endpoint,
-- region and instance type for M.TTL seconds; a region whose prices cannot be read keeps the
-- catalog's (the reason is kept in M.last_error). See docs/aws.md.
local ec2 = require "providers.aws.ec2"

local M = {}

--- How long a price read is used (seconds), as long as the catalog snapshot's prices are taken
--- to be current between two catalog refreshes of a running program.
M.TTL = 3600

--- Clock (seconds); tests replace it.
M.now = os.time

-- (endpoint .. " " .. region) → { zones = {[zone id] = zone name} , types = {[type] =
-- {at = time read, by_zone = {[zone name] = $/h}}} }
local _cache = {}

--- Forgets every price read (tests).
function M.reset() _cache = {} end

-- The AWS products whose price is that of a Linux instance (VPC accounts report the second).
M.PRODUCTS = { "Linux/UNIX", "Linux/UNIX (Amazon VPC)" }

--- The DescribeSpotPriceHistory parameters for the current price of `types` at time `now`
--- (tests compare their encoding with botocore's).
function M.request(types, now)
  return { InstanceType = types, ProductDescription = M.PRODUCTS, StartTime = os.date("!%Y-%m-%dT%H:%M:%SZ", now) }
end

-- zone id → zone name of the client's region (catalog offers name zones by id, such as use1-az6).
local function _zones(entry, client)
  if entry.zones then return entry.zones end
  local zones = {}
  for _, z in ipairs(ec2.items(client:call("DescribeAvailabilityZones", {}), "availabilityZoneInfo")) do
    local name = ec2.text(z, "zoneName")
    if name then
      zones[name] = name
      if ec2.text(z, "zoneId") then zones[ec2.text(z, "zoneId")] = name end
    end
  end
  entry.zones = zones
  return zones
end

-- Reads the current spot price of `types` (a list) in the client's region: {[type] = {[zone
-- name] = $/h}}. The newest record per type and zone wins.
local function _read(client, types)
  local out, when = {}, {}
  for _, t in ipairs(types) do out[t] = {} end
  local params = M.request(types, M.now())
  for _ = 1, 20 do -- pages
    local doc = client:call("DescribeSpotPriceHistory", params)
    for _, item in ipairs(ec2.items(doc, "spotPriceHistorySet")) do
      local t, zone = ec2.text(item, "instanceType"), ec2.text(item, "availabilityZone")
      local price = tonumber(ec2.text(item, "spotPrice") or "")
      local stamp = ec2.text(item, "timestamp") or ""
      if out[t] and zone and price and price >= 0 then
        local k = t .. " " .. zone
        if not when[k] or stamp > when[k] then
          out[t][zone], when[k] = price, stamp
        end
      end
    end
    local token = ec2.text(doc, "nextToken")
    if not token or token == "" then break end
    params.NextToken = token
  end
  return out
end

--- The live spot prices of `types` in `region` through `client` (an ec2 client): a function
--- (zone id or name, or nil for the region) → $/h, or nil where AWS reports none. Raises what
--- the API raised.
function M.spot(client, region, types)
  local key = (client.endpoint or "") .. " " .. region
  local entry = _cache[key]
  if not entry then
    entry = { types = {} }
    _cache[key] = entry
  end
  local now, stale = M.now(), {}
  for _, t in ipairs(types) do
    local e = entry.types[t]
    if not e or now - e.at >= M.TTL then stale[#stale + 1] = t end
  end
  local zones = _zones(entry, client)
  if #stale > 0 then
    table.sort(stale)
    for t, by_zone in pairs(_read(client, stale)) do entry.types[t] = { at = now, by_zone = by_zone } end
  end
  return function(instance_type, zone)
    local e = entry.types[instance_type]
    if not e then return nil end
    if zone then return e.by_zone[zones[zone] or zone] end
    local low
    for _, p in pairs(e.by_zone) do
      if not low or p < low then low = p end
    end
    return low
  end
end

--- Replaces the spot_price of each offer of `offers` (catalog rows of one provider) that has
--- one by the live price, region by region; `client_of(region)` gives the ec2 client. An offer
--- keeps its catalog price in a region whose prices cannot be read, or where AWS reports none
--- for its type and zone. Returns how many offers got a live price.
function M.apply(offers, client_of)
  local by_region = {}
  for _, o in ipairs(offers) do
    if o.spot_price and o.region then
      local r = by_region[o.region] or { types = {}, seen = {} }
      by_region[o.region] = r
      if not r.seen[o.instance_type] then
        r.seen[o.instance_type] = true
        r.types[#r.types + 1] = o.instance_type
      end
    end
  end
  local live = {}
  M.last_error = nil
  for region, r in pairs(by_region) do
    local ok, price = pcall(function() return M.spot(client_of(region), region, r.types) end)
    if ok then
      live[region] = price
    else
      M.last_error = type(price) == "table" and price.message or tostring(price)
    end
  end
  local n = 0
  for _, o in ipairs(offers) do
    local price = o.spot_price and live[o.region] and live[o.region](o.instance_type, o.zone)
    if price then
      o.catalog_spot_price, o.spot_price, o.spot_source = o.spot_price, price, "DescribeSpotPriceHistory"
      n = n + 1
    end
  end
  return n
end

return M
