-- sky.accelerators: names, aliases, typo suggestions, constructors and their validation.
local t = require "testlib"
local acc = require "sky.broker.accelerators"

local function name_of(s)
  local e, err = acc.resolve(s)
  return e and e.name or nil, err
end

t.test("canonical names resolve to themselves", function()
  for _, n in ipairs({ "H100", "A100", "A100-80GB", "B200", "L40S", "T4", "MI300X", "tpu-v5p", "Trainium2", "Gaudi2" }) do
    t.eq(name_of(n), n)
  end
end)

t.test("aliases ignore case, spaces, dashes and underscores", function()
  for _, n in ipairs({ "A100-80GB", "A100 80GB", "a100_80", "a100-80gb", "A100_80GB", "A100-80G-PCIe",
    "A100-80GB-SXM", "a100 sxm4 80gb" }) do
    t.eq(name_of(n), "A100-80GB", n)
  end
  for _, n in ipairs({ "H100-SXM", "H100 PCIe", "h100_sxm5", "H100-80G-SXM5", "H100-NVLINK", "H100-MEGA",
    "NVIDIA-H100-80GB-HBM3", "nvidia h100" }) do
    t.eq(name_of(n), "H100", n)
  end
  t.eq(name_of("A100-40GB"), "A100")
  t.eq(name_of("V100-32GB"), "V100-32GB")
  t.eq(name_of("H100 NVL"), "H100-NVL")
end)

t.test("provider spellings of workstation and consumer cards", function()
  t.eq(name_of("RTXA6000"), "A6000")
  t.eq(name_of("RTX-A6000"), "A6000")
  t.eq(name_of("RTX A4000"), "A4000")
  t.eq(name_of("RTX6000Ada"), "RTX6000-Ada")
  t.eq(name_of("RTX-6000-Ada"), "RTX6000-Ada")
  t.eq(name_of("RTX6000"), "RTX6000") -- the Turing Quadro, a different card
  t.eq(name_of("RTX PRO 6000 96GB"), "RTXPRO6000")
  t.eq(name_of("RTXPRO6000S"), "RTXPRO6000")
  t.eq(name_of("RTXPRO6000-WK"), "RTXPRO6000")
  t.eq(name_of("GeForce RTX 4090"), "RTX4090")
  t.eq(name_of("GAUDI2"), "Gaudi2")
  t.eq(name_of("Gaudi HL-205"), "Gaudi")
  t.eq(name_of("Radeon Pro V520"), "V520")
  t.eq(name_of("inf2"), "Inferentia2")
  t.eq(name_of("trn1"), "Trainium")
end)

t.test("TPU slice names resolve to the chip", function()
  t.eq(name_of("tpu-v5p-8"), "tpu-v5p")
  t.eq(name_of("tpu-v6e-16"), "tpu-v6e")
  t.eq(name_of("tpu-v5e"), "tpu-v5litepod")
end)

t.test("entries carry vendor and memory", function()
  local e = acc.resolve("H100")
  t.eq({ e.vendor, e.memory }, { "nvidia", 80 })
  t.eq(acc.resolve("MI300X").vendor, "amd")
  t.eq(acc.resolve("MI300X").memory, 192)
  t.eq(acc.resolve("tpu-v5p").vendor, "google")
  t.eq(acc.resolve("Trainium2").vendor, "aws")
  t.eq(acc.resolve("Gaudi3").vendor, "intel")
  t.eq(acc.resolve("A100-80GB").memory, 80)
end)

t.test("a typo is an error that suggests the closest name", function()
  local e, err = acc.resolve("H10")
  t.eq(e, nil)
  t.eq(err, "unknown accelerator 'H10': did you mean H100?")
  t.ok(select(2, acc.resolve("A10O")):find("A100", 1, true))
  t.ok(select(2, acc.resolve("L40X")):find("L40S", 1, true))
  t.ok(select(2, acc.resolve("mi300")):find("MI300X", 1, true))
  t.eq(select(2, acc.resolve("quantum-chip")), "unknown accelerator 'quantum-chip'")
  t.ok(select(2, acc.resolve(42)):find("must be a string", 1, true))
end)

t.test("a memory size that no variant has is named in the error", function()
  local _, err = acc.resolve("A100-60GB")
  t.ok(err:find("A100 has no 60 GiB variant", 1, true), err)
  t.ok(err:find("A100-80GB 80 GiB", 1, true), err)
end)

t.test("constructor via the module table", function()
  t.eq(acc.H100 { count = 8, memory = 80 }, { name = "H100", count = 8, memory = 80, vendor = "nvidia" })
  t.eq(acc.H100 { count = 8 }, { name = "H100", count = 8, memory = 80, vendor = "nvidia" })
  t.eq(acc.L4 {}, { name = "L4", count = 1, memory = 24, vendor = "nvidia" })
  t.eq(acc["A100-80GB"] { count = 2 }, { name = "A100-80GB", count = 2, memory = 80, vendor = "nvidia" })
  t.eq(acc.h100_sxm { count = 1 }.name, "H100")
  -- Used without a call it is a spec for one device.
  local one = acc.T4
  t.eq({ one.name, one.count, one.memory }, { "T4", 1, 16 })
end)

t.test("memory picks the family variant", function()
  t.eq(acc.A100 { memory = 80 }.name, "A100-80GB")
  t.eq(acc.A100 { memory = "80GB" }.name, "A100-80GB")
  t.eq(acc.A100 { memory = 40 }.name, "A100")
  t.eq(acc.V100 { memory = 32 }.name, "V100-32GB")
  t.eq(acc.H100 { memory = 90 }.name, "H100-NVL")
  -- More than any variant: keep the name, keep the requirement (the query then finds none or
  -- the few unusual offers that have it).
  t.eq(acc.RTX4090 { memory = 48 }, { name = "RTX4090", count = 1, memory = 48, vendor = "nvidia" })
end)

t.test("fractional counts are kept", function()
  t.eq(acc.spec("T4", { count = 0.5 }).count, 0.5)
end)

t.test("constructor validation names the key and the types", function()
  t.raises(function() return acc.H100 { cnt = 8 } end, "unknown option 'cnt' (valid: count, memory)")
  t.raises(function() return acc.H100 { count = "8" } end, "option 'count' must be a number, got string")
  t.raises(function() return acc.H100 { memory = true } end, "option 'memory' must be a number or string, got boolean")
  t.raises(function() return acc.H100 { memory = "lots" } end, "option 'memory' must be GiB > 0")
  t.raises(function() return acc.H100 { count = 0 } end, "option 'count' must be > 0")
  t.raises(function() return acc.H100("8") end, "options must be a table, got string")
end)

t.test("unknown field on the module is an error with a suggestion", function()
  t.raises(function() return acc.H10 { count = 1 } end, "unknown accelerator 'H10': did you mean H100?")
  t.raises(function() return acc.B20 end, "did you mean B200")
  local err = t.raises(function() local s = acc.spec("H10"); return s end) -- no tail call: keep the frame
  t.eq(type(err), "table")
  t.eq(err.code, "UnknownAccelerator")
  t.ok(err.where and err.where:find("test_accelerators.lua:%d+$"), "blamed on the test line: " .. tostring(err.where))
end)

t.test("classify snaps reported memory to the variant", function()
  local function cls(n, m)
    local e, mem = acc.classify(n, m)
    return e.name, mem
  end
  t.eq({ cls("A100", 80) }, { "A100-80GB", 80 })     -- Cudo and Seeweb call their 80 GB A100 "A100"
  t.eq({ cls("H100", 79.65) }, { "H100", 80 })       -- usable vs nominal memory
  t.eq({ cls("H100", 93.58) }, { "H100-NVL", 94 })   -- Vast's H100 NVL
  t.eq({ cls("RTX4090", 47.99) }, { "RTX4090", 48 }) -- far from every variant: kept as reported
  t.eq({ cls("L4", nil) }, { "L4", 24 })
end)

t.test("no alias maps to two entries and every entry is listed", function()
  local list = acc.list()
  t.ok(#list > 80, "table has " .. #list .. " entries")
  local names = {}
  for _, e in ipairs(list) do
    t.ok(not names[e.name], "duplicate " .. e.name)
    names[e.name] = true
    t.eq(acc.resolve(e.name), e, e.name)
    for _, a in ipairs(e.aliases) do t.eq(acc.resolve(a), e, a) end
    t.ok(type(e.memory) == "number" and e.memory > 0, e.name)
  end
end)

t.done()
