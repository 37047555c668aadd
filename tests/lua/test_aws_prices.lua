-- providers/aws/prices.lua: live spot prices from DescribeSpotPriceHistory, against a client
-- that answers with EC2's XML (the local cloud checks the same end to end, tests/e2e/test_aws.py).
local t = require "testlib"
local encoding = require "skyhost.encoding"
local prices = require "providers.aws.prices"

local ZONES = [[<DescribeAvailabilityZonesResponse><availabilityZoneInfo>
<item><zoneName>us-east-1a</zoneName><zoneId>use1-az6</zoneId></item>
<item><zoneName>us-east-1b</zoneName><zoneId>use1-az1</zoneId></item>
</availabilityZoneInfo></DescribeAvailabilityZonesResponse>]]

local function record(itype, zone, price, stamp)
  return ("<item><instanceType>%s</instanceType><productDescription>Linux/UNIX</productDescription>"
    .. "<spotPrice>%s</spotPrice><timestamp>%s</timestamp><availabilityZone>%s</availabilityZone></item>")
    :format(itype, price, stamp, zone)
end

-- A client whose answers are `pages` (lists of records; each but the last says nextToken), and
-- that counts calls by action.
local function client(pages, fail)
  local c = { endpoint = "http://127.0.0.1:1/", calls = {}, params = {} }
  local page = 0
  function c:call(action, params)
    self.calls[action] = (self.calls[action] or 0) + 1
    self.params[#self.params + 1] = params
    if fail then error({ code = "AwsError", message = fail }, 0) end
    if action == "DescribeAvailabilityZones" then return (encoding.xml_decode(ZONES)) end
    assert(action == "DescribeSpotPriceHistory", action)
    page = page % #pages + 1
    local next_token = page < #pages and ("<nextToken>p%d</nextToken>"):format(page + 1) or ""
    return (assert(encoding.xml_decode("<DescribeSpotPriceHistoryResponse><spotPriceHistorySet>"
      .. table.concat(pages[page]) .. "</spotPriceHistorySet>" .. next_token .. "</DescribeSpotPriceHistoryResponse>")))
  end
  return c
end

local function offers()
  return {
    { instance_type = "g4dn.xlarge", region = "us-east-1", zone = "use1-az6", price = 0.526, spot_price = 0.2 },
    { instance_type = "g4dn.xlarge", region = "us-east-1", zone = "use1-az1", price = 0.526, spot_price = 0.21 },
    { instance_type = "g4dn.xlarge", region = "us-east-1", price = 0.526, spot_price = 0.22 },
    { instance_type = "p3.2xlarge", region = "us-east-1", zone = "use1-az6", price = 3.06 },  -- no spot
    { instance_type = "g5.xlarge", region = "us-east-1", zone = "use1-az6", price = 1.0, spot_price = 0.4 },
  }
end

local now = 1700000000
prices.now = function() return now end

t.test("spot offers take the live price of their zone; the newest record wins; pages are followed", function()
  prices.reset()
  local c = client({
    { record("g4dn.xlarge", "us-east-1a", "0.1500", "2023-11-14T22:00:00.000Z"),
      record("g4dn.xlarge", "us-east-1a", "0.1600", "2023-11-14T21:00:00.000Z") },
    { record("g4dn.xlarge", "us-east-1b", "0.1700", "2023-11-14T20:00:00.000Z") },
  })
  local list = offers()
  t.eq(prices.apply(list, function(region) t.eq(region, "us-east-1"); return c end), 3)
  t.eq(list[1].spot_price, 0.15, "use1-az6 is us-east-1a; the newer of its two records")
  t.eq(list[1].catalog_spot_price, 0.2)
  t.eq(list[1].spot_source, "DescribeSpotPriceHistory")
  t.eq(list[2].spot_price, 0.17, "use1-az1 is us-east-1b, on the second page")
  t.eq(list[3].spot_price, 0.15, "an offer without a zone: the lowest of the region")
  t.eq(list[4].spot_price, nil, "an offer without spot gets none")
  t.eq(list[5].spot_price, 0.4, "no record for g5.xlarge: the catalog's price stays")
  t.eq(list[5].spot_source, nil)
  t.eq(c.calls.DescribeSpotPriceHistory, 2)
  t.eq(c.params[2].InstanceType, { "g4dn.xlarge", "g5.xlarge" }, "one call for every spot type of the region")
  t.eq(c.params[2].StartTime, "2023-11-14T22:13:20Z")
  t.eq(c.params[3].NextToken, "p2")
end)

t.test("prices are cached for TTL seconds, then read again", function()
  prices.reset()
  local c = client({ { record("g4dn.xlarge", "us-east-1a", "0.15", "2023-11-14T22:00:00Z") } })
  prices.apply(offers(), function() return c end)
  now = now + prices.TTL - 1
  local list = offers()
  prices.apply(list, function() return c end)
  t.eq(c.calls.DescribeSpotPriceHistory, 1, "within the TTL: no second call")
  t.eq(c.calls.DescribeAvailabilityZones, 1)
  t.eq(list[1].spot_price, 0.15)
  now = now + 1
  prices.apply(offers(), function() return c end)
  t.eq(c.calls.DescribeSpotPriceHistory, 2, "after the TTL: read again")
end)

t.test("a region whose prices cannot be read keeps the catalog's, and says why", function()
  prices.reset()
  local list = offers()
  t.eq(prices.apply(list, function() return client({}, "EC2 DescribeSpotPriceHistory: AuthFailure") end), 0)
  t.eq(list[1].spot_price, 0.2)
  t.ok(prices.last_error:find("AuthFailure", 1, true), prices.last_error)
end)

t.done()
