-- Known accelerators: one canonical name per device model, its vendor, memory per device (GiB)
-- and the aliases providers and users write. Names are matched case-insensitively and ignoring
-- spaces, dashes and underscores ("A100 80GB" = "a100-80gb" = "A100_80GB").
--
--   accelerators.resolve("h100 sxm")          --> entry for H100, or nil, err with a suggestion
--   accelerators.H100{count = 8}              --> { name = "H100", count = 8, memory = 80, vendor = "nvidia" }
--   accelerators.A100{memory = 80}            --> name "A100-80GB": memory picks the variant
--   accelerators["RTX6000-Ada"]               --> the same kind of spec, count 1
--
-- Form factors (SXM, PCIe, NVLink bridges) are not told apart: every 80 GiB H100 is "H100", as in
-- the public catalogs; the instance type keeps the detail. Variants that differ in memory are
-- separate entries of one family (A100 / A100-80GB, V100 / V100-32GB, H100 / H100-NVL).
-- Memory is the nominal size per device (per chip for TPU, Trainium, Inferentia); providers
-- report slightly less usable memory, which the catalog builder snaps to these values.
local errors = require "sky.errors"
local suggest = require "sky.internal.suggest"

local M = {}

local _entries, _by_key, _candidates = {}, {}, {}

-- Lower-case, letters and digits only: the form all lookups compare.
local function _key(s)
  return (s:lower():gsub("[^%w]", ""))
end

local function _add(name, vendor, memory, aliases, family)
  local e = { name = name, vendor = vendor, memory = memory, family = family or name, aliases = aliases or {} }
  _entries[#_entries + 1] = e
  for _, n in ipairs({ name, table.unpack(e.aliases) }) do
    local k = _key(n)
    -- Two entries claiming one spelling would make resolve() depend on table order.
    assert(_by_key[k] == nil or _by_key[k] == e, "accelerator alias collision: " .. n)
    _by_key[k] = e
    _candidates[#_candidates + 1] = { key = k, name = name }
  end
end

-- NVIDIA datacenter ------------------------------------------------------------------------------
_add("GB300", "nvidia", 288, { "GB300-NVL72" })
_add("B300", "nvidia", 288, { "B300-SXM", "HGX-B300", "Blackwell-Ultra" })
_add("GB200", "nvidia", 192, { "GB200-NVL72" })   -- OCI reports 192 GiB per GPU
_add("B200", "nvidia", 180, { "B200-SXM", "HGX-B200" })
_add("GH200", "nvidia", 96, { "GH200-96GB", "Grace-Hopper" })
_add("H200", "nvidia", 141, { "H200-SXM", "H200-NVL", "H200-141GB", "H200-SXM5" })
_add("H100", "nvidia", 80, {
  "H100-SXM", "H100-SXM5", "H100-PCIe", "H100-80GB", "H100-80GB-HBM3", "H100-HBM3",
  "H100-NVLINK", "H100-80G-PCIe", "H100-80G-PCIe-NVLink", "H100-80G-SXM5", "H100-SXM5-80GB",
  "H100-PCIe-80GB", "H100-MEGA", "Hopper",
}, "H100")
_add("H100-NVL", "nvidia", 94, { "H100NVL", "H100-94GB", "H100-NVL-94GB" }, "H100")
_add("H800", "nvidia", 80, { "H800-SXM", "H800-PCIe" })
_add("H20", "nvidia", 96, {})
_add("A100", "nvidia", 40, { "A100-40GB", "A100-SXM4-40GB", "A100-PCIe-40GB", "A100-40G" }, "A100")
_add("A100-80GB", "nvidia", 80, {
  "A100-80GB-SXM", "A100-80GB-PCIe", "A100-80G-PCIe", "A100-80G-PCIe-NVLink", "A100-SXM4-80GB",
  "A100-PCIe-80GB", "A100_80", "A100-80", "A100-80G",
}, "A100")
_add("A800", "nvidia", 80, { "A800-80GB", "A800-SXM4-80GB", "A800-PCIe" })
_add("L40S", "nvidia", 48, { "L40S-48GB" })
_add("L40", "nvidia", 48, { "L40-48GB" })
_add("L20", "nvidia", 48, {})
_add("L4", "nvidia", 24, { "L4-24GB" })
_add("A40", "nvidia", 48, { "A40-48GB" })
_add("A30", "nvidia", 24, { "A30-24GB" })
_add("A16", "nvidia", 16, {})                         -- per GPU; the board carries four
_add("A10G", "nvidia", 24, {})
_add("A10", "nvidia", 24, { "A10-24GB" })
_add("A2", "nvidia", 16, {})
_add("T4", "nvidia", 16, { "T4-16GB" })
_add("T4g", "nvidia", 16, { "T4-Graviton" })
_add("V100", "nvidia", 16, { "V100-16GB", "V100-SXM2-16GB", "V100-PCIe-16GB" }, "V100")
_add("V100-32GB", "nvidia", 32, { "V100-SXM2-32GB", "V100-PCIe-32GB", "V100S" }, "V100")
_add("P100", "nvidia", 16, { "P100-16GB" })
_add("P40", "nvidia", 24, {})
_add("P4", "nvidia", 8, {})
_add("K80", "nvidia", 12, {})                        -- per GPU; the board carries two
_add("M60", "nvidia", 8, {})                         -- per GPU; the board carries two

-- NVIDIA workstation -----------------------------------------------------------------------------
_add("RTXPRO6000", "nvidia", 96, {
  "RTX-PRO-6000", "RTX PRO 6000 Blackwell", "RTXPRO6000S", "RTXPRO6000WS", "RTXPRO6000-WK",
  "RTX PRO 6000 Server", "RTX PRO 6000 Max-Q", "RTXPRO6000-MaxQ",
})
_add("RTXPRO5000", "nvidia", 48, { "RTX-PRO-5000" })
_add("RTX6000-Ada", "nvidia", 48, { "RTX6000Ada", "RTX 6000 Ada Generation", "RTX6000-Ada-48GB" })
_add("RTX5000-Ada", "nvidia", 32, { "RTX5000Ada" })
_add("RTX4000-Ada", "nvidia", 20, { "RTX4000Ada", "RTX4000-SFF-Ada", "RTX 4000 SFF Ada Generation" })
_add("RTX2000-Ada", "nvidia", 16, { "RTX2000Ada" })
_add("RTX8000", "nvidia", 48, { "Quadro RTX 8000" })
_add("RTX6000", "nvidia", 24, { "Quadro RTX 6000", "RTX6000-24GB" })  -- Turing; not the Ada card
_add("RTX5000", "nvidia", 16, { "Quadro RTX 5000" })
_add("RTX4000", "nvidia", 8, { "Quadro RTX 4000" })
_add("A6000", "nvidia", 48, { "RTXA6000", "RTX A6000" })
_add("A5000", "nvidia", 24, { "RTXA5000" })
_add("A4500", "nvidia", 20, { "RTXA4500" })
_add("A4000", "nvidia", 16, { "RTXA4000" })
_add("A2000", "nvidia", 6, { "RTXA2000" })
_add("P6000", "nvidia", 24, { "Quadro P6000" })
_add("P5000", "nvidia", 16, { "Quadro P5000" })
_add("P4000", "nvidia", 8, { "Quadro P4000" })
_add("M4000", "nvidia", 8, { "Quadro M4000" })

-- NVIDIA consumer (vendor prefixes like "GeForce" are ignored by resolve) ------------------------
_add("RTX5090", "nvidia", 32, {})
_add("RTX5080", "nvidia", 16, {})
_add("RTX5070Ti", "nvidia", 16, {})
_add("RTX5070", "nvidia", 12, {})
_add("RTX5060Ti", "nvidia", 16, {})
_add("RTX5060", "nvidia", 8, {})
_add("RTX4090", "nvidia", 24, { "RTX4090D" })
_add("RTX4080", "nvidia", 16, { "RTX4080S", "RTX4080Super" })
_add("RTX4070Ti", "nvidia", 12, {})
_add("RTX4070", "nvidia", 12, {})
_add("RTX4060Ti", "nvidia", 8, {})
_add("RTX4060", "nvidia", 8, {})
_add("RTX3090Ti", "nvidia", 24, {})
_add("RTX3090", "nvidia", 24, {})
_add("RTX3080Ti", "nvidia", 12, {})
_add("RTX3080", "nvidia", 10, {})
_add("RTX3070", "nvidia", 8, {})
_add("RTX3060Ti", "nvidia", 8, {})
_add("RTX3060", "nvidia", 12, {})
_add("RTX2080Ti", "nvidia", 11, {})
_add("GTX1080Ti", "nvidia", 11, {})
_add("GTX1660S", "nvidia", 6, { "GTX1660Super" })

-- AMD Instinct and Radeon ------------------------------------------------------------------------
_add("MI355X", "amd", 288, {})
_add("MI350X", "amd", 288, {})
_add("MI325X", "amd", 256, {})
_add("MI300X", "amd", 192, {})
_add("MI300A", "amd", 128, {})
_add("MI250X", "amd", 128, {})
_add("MI250", "amd", 128, {})
_add("MI210", "amd", 64, {})
_add("MI100", "amd", 32, {})
_add("MI50", "amd", 32, {})
_add("MI25", "amd", 16, { "Radeon MI25", "Radeon Instinct MI25" })
_add("V520", "amd", 8, { "Radeon Pro V520" })

-- Google TPU (memory per chip; slice names like "tpu-v5p-8" resolve to the chip) -----------------
_add("tpu-v2", "google", 16, { "TPUv2" })
_add("tpu-v3", "google", 32, { "TPUv3" })
_add("tpu-v4", "google", 32, { "TPUv4" })
_add("tpu-v5litepod", "google", 16, { "tpu-v5e", "TPUv5e", "v5litepod" })
_add("tpu-v5p", "google", 95, { "TPUv5p" })
_add("tpu-v6e", "google", 32, { "TPUv6e", "Trillium" })

-- AWS Trainium / Inferentia (memory per chip) ----------------------------------------------------
_add("Trainium", "aws", 32, { "Trainium1", "trn1" })
_add("Trainium2", "aws", 96, { "trn2" })
_add("Inferentia", "aws", 8, { "Inferentia1", "inf1" })
_add("Inferentia2", "aws", 32, { "inf2" })

-- Intel Gaudi ------------------------------------------------------------------------------------
_add("Gaudi", "intel", 32, { "Gaudi HL-205", "HL-205", "Gaudi1" })
_add("Gaudi2", "intel", 96, { "HL-225", "Gaudi2-HL-225" })
_add("Gaudi3", "intel", 128, { "HL-325", "HL-325L" })

-- Words providers put in front of a model name ("NVIDIA-H100-80GB-HBM3", "GeForce RTX 4090").
local _prefixes = { "nvidia", "geforce", "tesla", "quadro", "amd", "instinct", "intel", "habana", "google", "aws" }

local function _strip_prefix(k)
  for _, p in ipairs(_prefixes) do
    if #k > #p and k:sub(1, #p) == p then return k:sub(#p + 1) end
  end
end

-- Exact or prefix-stripped lookup of a normalized key.
local function _lookup(k)
  local seen = 0
  while k and seen < 4 do
    if _by_key[k] then return _by_key[k] end
    k, seen = _strip_prefix(k), seen + 1
  end
end

--- Variants of one device family (same chip, different memory), smallest memory first.
function M.variants(entry)
  local out = {}
  for _, e in ipairs(_entries) do
    if e.family == entry.family then out[#out + 1] = e end
  end
  table.sort(out, function(a, b) return a.memory < b.memory end)
  return out
end

-- The variant of `entry` whose memory is `gib`, if any.
local function _variant_with(entry, gib)
  for _, v in ipairs(M.variants(entry)) do
    if v.memory == gib then return v end
  end
end

--- Canonical entry for a name, or nil, err. Err suggests the closest known names.
---@param name string
---@return table|nil entry, string|nil err
function M.resolve(name)
  if type(name) ~= "string" then
    return nil, ("accelerator name must be a string, got %s"):format(type(name))
  end
  local k = _key(name)
  local e = _lookup(k)
  if e then return e end
  -- A trailing memory size picks the variant: "A100 80GB", "V100-32G", "RTX PRO 6000 96GB".
  -- The size runs into the model number once separators are gone ("a10080gb"), so try a 2- and
  -- a 3-digit size and keep the split whose base is a known name.
  local head, digits = k:match("^(.-)(%d+)gi?b?$")
  if head and k:sub(-1) ~= digits:sub(-1) then
    for width = 2, 3 do
      if #digits >= width then
        local base, gib = head .. digits:sub(1, -width - 1), tonumber(digits:sub(-width))
        local be = base ~= "" and _lookup(base)
        if be then
          local v = _variant_with(be, gib)
          if v then return v end
          local sizes = {}
          for _, x in ipairs(M.variants(be)) do sizes[#sizes + 1] = ("%s %d GiB"):format(x.name, x.memory) end
          return nil, ("unknown accelerator '%s': %s has no %d GiB variant (known: %s)"):format(
            name, be.name, gib, table.concat(sizes, ", "))
        end
      end
    end
  end
  -- TPU slices: "tpu-v5p-8", "tpu-v6e-16" name the chip and a slice size.
  local tpu = k:match("^(tpuv%d%w-)%d+$")
  if tpu and _by_key[tpu] then return _by_key[tpu] end
  return nil, ("unknown accelerator '%s'%s"):format(name, suggest.did_you_mean(suggest.suggest(k, _candidates, 3)))
end

--- Entry for a name as a provider reports it, plus that provider's memory figure (GiB per device,
--- nil if unknown). Usable memory is a little under the nominal size, so a figure within 10% of a
--- variant's nominal memory picks that variant ("A100" reported with 80 GiB is an A100-80GB);
--- a figure far from every variant is kept as reported (a 48 GiB RTX 4090 exists).
---@return table|nil entry, number|string memory_or_err
function M.classify(name, reported_gib)
  local e, err = M.resolve(name)
  if not e then return nil, err end
  if not reported_gib or reported_gib <= 0 then return e, e.memory end
  local best, best_d
  for _, v in ipairs(M.variants(e)) do
    local d = math.abs(reported_gib - v.memory)
    if d <= 0.1 * v.memory and (not best_d or d < best_d) then best, best_d = v, d end
  end
  if best then return best, best.memory end
  return e, math.floor(reported_gib * 10 + 0.5) / 10
end

--- All entries, in table order (a copy of the list; entries themselves are shared).
function M.list()
  return table.move(_entries, 1, #_entries, 1, {})
end

local _opt_types = { count = "number", memory = "number or string" }
local _opt_names = "count, memory"

-- "80GB", "80 GiB", "80G", "80" -> 80
local function _parse_memory(v)
  if type(v) == "number" then return v end
  local n = v:lower():match("^%s*(%d+%.?%d*)%s*g?i?b?%s*$")
  return n and tonumber(n)
end

--- Accelerator request {name, count, memory, vendor}. `memory` is the minimum per device (GiB)
--- and picks the smallest variant of the family that has it; `count` may be fractional (0.5).
--- Raises a structured error (sky.errors) on an unknown name, an unknown option or a wrong type.
---@param name string
---@param opts? {count?: number, memory?: number|string}
function M.spec(name, opts)
  local e, err = M.resolve(name)
  if not e then errors.raise("UnknownAccelerator", err) end
  opts = opts or {}
  if type(opts) ~= "table" then
    errors.raise("BadOption", ("%s{...}: options must be a table, got %s"):format(e.name, type(opts)))
  end
  for k, v in pairs(opts) do
    local want = _opt_types[k]
    if not want then
      errors.raise("BadOption", ("%s{...}: unknown option '%s' (valid: %s)"):format(e.name, tostring(k), _opt_names))
    end
    local ok = type(v) == "number" or (k == "memory" and type(v) == "string")
    if not ok then
      errors.raise("BadOption", ("%s{...}: option '%s' must be a %s, got %s"):format(e.name, k, want, type(v)))
    end
  end
  local count = opts.count or 1
  if count <= 0 or count ~= count then
    errors.raise("BadOption", ("%s{...}: option 'count' must be > 0, got %s"):format(e.name, tostring(count)))
  end
  local memory = e.memory
  if opts.memory ~= nil then
    memory = _parse_memory(opts.memory)
    if not memory or memory <= 0 then
      errors.raise("BadOption", ("%s{...}: option 'memory' must be GiB > 0 (80 or \"80GB\"), got %q"):format(
        e.name, tostring(opts.memory)))
    end
    if memory > e.memory then
      -- Ask for more memory than this variant has: move up to the smallest variant that has it.
      for _, v in ipairs(M.variants(e)) do
        if v.memory >= memory then e = v; break end
      end
    end
  end
  return { name = e.name, count = count, memory = memory, vendor = e.vendor }
end

-- accelerators.H100 is a spec for one H100 that can be called with options: H100{count = 8}.
local _ctor_mt = {
  __call = function(self, opts) return M.spec(self.name, opts) end,
}

setmetatable(M, {
  __index = function(_, k)
    if type(k) ~= "string" then
      errors.raise("UnknownAccelerator", ("accelerators[%s]: names are strings"):format(tostring(k)))
    end
    local e, err = M.resolve(k)
    if not e then errors.raise("UnknownAccelerator", err) end
    return setmetatable({ name = e.name, count = 1, memory = e.memory, vendor = e.vendor }, _ctor_mt)
  end,
})

return M
