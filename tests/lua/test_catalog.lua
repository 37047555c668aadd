-- sky.csv (the catalog builder's reader), sky.catalog (snapshot loading and queries), and the
-- shipped snapshot itself. Run from the repository root.
local t = require "testlib"
local csv = require "sky.csv"
local catalog = require "providers.catalog"

-- CSV -------------------------------------------------------------------------------------------

t.test("csv: plain rows with LF, CRLF and no final newline", function()
  t.eq(csv.parse("a,b\n1,2\n"), { { "a", "b" }, { "1", "2" } })
  t.eq(csv.parse("a,b\r\n1,2\r\n"), { { "a", "b" }, { "1", "2" } })
  t.eq(csv.parse("a,b\r\n1,2"), { { "a", "b" }, { "1", "2" } })
  t.eq(csv.parse("a,b\r1,2\r"), { { "a", "b" }, { "1", "2" } }) -- old Mac CR
end)

t.test("csv: quoted fields with commas, doubled quotes and line breaks", function()
  t.eq(csv.parse('x,"Michigan, US, NA",y\n'), { { "x", "Michigan, US, NA", "y" } })
  t.eq(csv.parse('"say ""hi""",2\n'), { { 'say "hi"', "2" } })
  t.eq(csv.parse('"{""Gpus"":[{""Name"":""A100""}]}",1'), { { '{"Gpus":[{"Name":"A100"}]}', "1" } })
  t.eq(csv.parse('"two\r\nlines",b\r\nc,d'), { { "two\r\nlines", "b" }, { "c", "d" } })
  t.eq(csv.parse('"",""\n'), { { "", "" } })
end)

t.test("csv: empty fields, trailing commas and blank lines", function()
  t.eq(csv.parse("a,,c\n"), { { "a", "", "c" } })
  t.eq(csv.parse("a,b,\n"), { { "a", "b", "" } })
  t.eq(csv.parse("a,b,"), { { "a", "b", "" } })
  t.eq(csv.parse(",\n"), { { "", "" } })
  t.eq(csv.parse("a\n\n\r\nb\n"), { { "a" }, { "b" } })
  t.eq(csv.parse(""), {})
end)

t.test("csv: UTF-8 text and a byte order mark", function()
  t.eq(csv.parse("\239\187\191name,city\nx,\"Zürich, CH\"\n"), { { "name", "city" }, { "x", "Zürich, CH" } })
end)

t.test("csv: malformed input returns nil and the line", function()
  local rows, err = csv.parse('a,b\n"open,c\n')
  t.eq(rows, nil)
  t.ok(err:find("line 2: unterminated quoted field", 1, true), err)
  rows, err = csv.parse('"a"x,b\n')
  t.eq(rows, nil)
  t.ok(err:find("after closing quote", 1, true), err)
end)

t.test("csv: records by header name, short rows padded", function()
  local recs, header = csv.records("InstanceType,Price,SpotPrice\r\np5.48xlarge,98.32,\r\ng4dn.xlarge,0.526")
  t.eq(header, { "InstanceType", "Price", "SpotPrice" })
  t.eq(recs, {
    { InstanceType = "p5.48xlarge", Price = "98.32", SpotPrice = "" },
    { InstanceType = "g4dn.xlarge", Price = "0.526", SpotPrice = "" },
  })
  local bad, err = csv.records("a,b\n1,2,3\n")
  t.eq(bad, nil)
  t.ok(err:find("record 1 has 3 fields", 1, true), err)
end)

-- TSV loading -----------------------------------------------------------------------------------

local HEADER = "provider\tinstance_type\taccelerator\tcount\tgpu_memory_gib\tvcpus\tmemory_gib\tregion\tzone\tprice\tspot_price\tsource\tdate\n"

t.test("load: parses a TSV string into typed offers", function()
  local offers = assert(catalog.load(HEADER ..
    "aws\tp5.48xlarge\tH100\t8\t80\t192\t2048\tus-east-1\tuse1-az1\t55.04\t20.1\taws.csv\tlate-2025\n" ..
    "vast\t1x-T4\tT4\t0.5\t16\t4\t16\tFrance, FR, EU\t\t0.1\t\tvast.csv\tlate-2025\n"))
  t.eq(offers[1], { provider = "aws", instance_type = "p5.48xlarge", accelerator = "H100", count = 8,
    gpu_memory = 80, vcpus = 192, memory = 2048, region = "us-east-1", zone = "use1-az1", price = 55.04,
    spot_price = 20.1, source = "aws.csv", date = "late-2025" })
  t.eq(offers[2].count, 0.5)
  t.eq(offers[2].zone, nil)
  t.eq(offers[2].spot_price, nil)
  t.eq(offers[2].region, "France, FR, EU")
end)

t.test("load: errors are returned, not raised", function()
  local o, err = catalog.load("/nonexistent/offers.tsv")
  t.eq(o, nil)
  t.ok(err:find("catalog.load", 1, true), err)
  o, err = catalog.load(HEADER .. "aws\tx\tH100\teight\t80\t1\t1\tr\t\t1\t\ts\td\n")
  t.eq(o, nil)
  t.ok(err:find("count is not a number", 1, true), err)
  o, err = catalog.load(HEADER .. "aws\tx\n")
  t.eq(o, nil)
  t.ok(err:find("has 2 fields", 1, true), err)
end)

-- The shipped snapshot --------------------------------------------------------------------------

local snap = catalog.snapshot()

t.test("snapshot: loads, every offer complete and priced", function()
  t.ok(#snap > 1500, "snapshot has " .. #snap .. " offers")
  local acc = require "sky.broker.accelerators"
  for i, o in ipairs(snap) do
    t.ok(o.provider and o.instance_type and o.accelerator and o.count and o.gpu_memory, "row " .. i)
    t.ok(o.price or o.spot_price, "row " .. i .. " has a price")
    t.eq(acc.resolve(o.accelerator).name, o.accelerator, "row " .. i .. " canonical name")
    t.ok(o.source and o.date, "row " .. i .. " provenance")
  end
end)

t.test("snapshot: H100 and A100 from several providers at sane prices", function()
  for _, name in ipairs({ "H100", "A100", "A100-80GB" }) do
    local by_provider = {}
    for _, o in ipairs(catalog.query(snap, { accelerator = name })) do
      by_provider[o.provider] = true
      local per_gpu = (o.price or o.spot_price) / o.count
      -- Late-2025 market: a datacenter GPU hour costs between a few dimes and ~15 USD.
      t.ok(per_gpu > 0.2 and per_gpu < 15, ("%s %s %s: %.2f USD/GPU/h"):format(name, o.provider, o.instance_type, per_gpu))
    end
    local n = 0
    for _ in pairs(by_provider) do n = n + 1 end
    t.ok(n >= 5, name .. " offered by " .. n .. " providers")
  end
  local h100 = catalog.query(snap, { accelerator = "H100" })
  local seen = {}
  for _, o in ipairs(h100) do seen[o.provider] = true end
  for _, p in ipairs({ "aws", "gcp", "lambda", "runpod", "nebius" }) do t.ok(seen[p], "H100 on " .. p) end
end)

t.test("snapshot: spot prices where the source has them, below on-demand on AWS", function()
  local spot = catalog.query(snap, { accelerator = "H100", provider = "aws", spot = true })
  t.ok(#spot > 10)
  for _, o in ipairs(spot) do
    t.ok(o.spot_price <= o.price, o.instance_type .. " " .. (o.zone or ""))
  end
end)

-- Queries ---------------------------------------------------------------------------------------

local offers = assert(catalog.load(HEADER .. table.concat({
  "aws\tp5.48xlarge\tH100\t8\t80\t192\t2048\tus-east-1\tuse1-az1\t55\t20\ts\td",
  "aws\tp4d.24xlarge\tA100\t8\t40\t96\t1152\tus-east-1\tuse1-az1\t22\t6\ts\td",
  "aws\tp4de.24xlarge\tA100-80GB\t8\t80\t96\t1152\tus-west-2\tusw2-az1\t27\t\ts\td",
  "lambda\tgpu_1x_h100\tH100\t1\t80\t26\t225\tus-east-1\t\t2.5\t\ts\td",
  "vast\t1x-H100-NVL\tH100-NVL\t1\t94\t32\t64\tMichigan, US, NA\t\t2.1\t\ts\td",
  "runpod\t8x_H100\tH100\t8\t80\t128\t1000\tCA\t\t\t16\ts\td",
  "vast\t1x-T4\tT4\t0.5\t16\t4\t16\tFR\t\t0.1\t\ts\td",
}, "\n")))

local function types(list)
  local out = {}
  for i, o in ipairs(list) do out[i] = o.instance_type end
  return out
end

t.test("query: by accelerator name, alias or constructor spec", function()
  local acc = require "sky.broker.accelerators"
  t.eq(types(catalog.query(offers, { accelerator = "H100" })), { "p5.48xlarge", "gpu_1x_h100", "8x_H100" })
  t.eq(types(catalog.query(offers, { accelerator = "h100-sxm" })), { "p5.48xlarge", "gpu_1x_h100", "8x_H100" })
  t.eq(types(catalog.query(offers, { accelerator = acc.H100 { count = 8 } })), { "p5.48xlarge", "8x_H100" })
  t.eq(#catalog.query(offers, {}), #offers)
end)

t.test("query: count is exact, fractions included", function()
  t.eq(types(catalog.query(offers, { accelerator = "H100", count = 1 })), { "gpu_1x_h100" })
  t.eq(types(catalog.query(offers, { count = 0.5 })), { "1x-T4" })
end)

t.test("query: memory is a minimum and picks the variant", function()
  t.eq(types(catalog.query(offers, { accelerator = "A100" })), { "p4d.24xlarge" })
  t.eq(types(catalog.query(offers, { accelerator = "A100", memory = 80 })), { "p4de.24xlarge" })
  t.eq(types(catalog.query(offers, { memory = 90 })), { "1x-H100-NVL" })
  t.eq(types(catalog.query(offers, { accelerator = "H100", memory = 90 })), { "1x-H100-NVL" })
end)

t.test("query: spot true needs a spot price, spot false an on-demand price", function()
  t.eq(types(catalog.query(offers, { accelerator = "H100", spot = true })), { "p5.48xlarge", "8x_H100" })
  t.eq(types(catalog.query(offers, { accelerator = "H100", spot = false })), { "p5.48xlarge", "gpu_1x_h100" })
end)

t.test("query: provider by name, list or provider object; region and minimums", function()
  t.eq(types(catalog.query(offers, { accelerator = "H100", provider = "lambda" })), { "gpu_1x_h100" })
  t.eq(types(catalog.query(offers, { accelerator = "H100", provider = { "runpod", "lambda" } })), { "gpu_1x_h100", "8x_H100" })
  t.eq(types(catalog.query(offers, { accelerator = "H100", providers = { { name = "runpod" } } })), { "8x_H100" })
  t.eq(types(catalog.query(offers, { region = "us-east-1" })), { "p5.48xlarge", "p4d.24xlarge", "gpu_1x_h100" })
  t.eq(types(catalog.query(offers, { region = { "CA", "FR" } })), { "8x_H100", "1x-T4" })
  t.eq(types(catalog.query(offers, { vcpus = 96, ram = 1100 })), { "p5.48xlarge", "p4d.24xlarge", "p4de.24xlarge" })
  t.eq(types(catalog.query(offers, { vcpus = 128, ram = 1100 })), { "p5.48xlarge" })
end)

t.test("query: bad specs raise with the key named", function()
  t.raises(function() catalog.query(offers, { accelerator = "H10" }) end, "did you mean H100")
  t.raises(function() catalog.query(offers, { count = "8" }) end, "'count' must be a number, got string")
  t.raises(function() catalog.query(offers, { spot = "yes" }) end, "'spot' must be a boolean, got string")
  t.raises(function() catalog.query(offers, { accelerator = 5 }) end, "'accelerator' must be a name")
end)

t.done()
