-- Builds the shipped offer snapshot from the public catalog CSVs (skypilot-catalog data, see
-- README.md next to this file):
--
--   lua5.4 providers/catalog/build.lua /work/shared/catalog-data providers/catalog/offers.tsv
--
-- One TSV row per offer that has an accelerator, names unified through sky.accelerators, memory
-- per GPU in GiB, prices in USD/h. The output is sorted and byte-for-byte reproducible. The build
-- fails on an accelerator name sky.accelerators does not know, so that table stays complete.

-- Find stdlib/ from this script's own path, so the build runs from any directory.
local _here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = _here .. "/../../stdlib/?.lua;" .. package.path

local csv = require "sky.csv"
local accelerators = require "sky.broker.accelerators"

-- Every input file, its provider name and how its GpuInfo states memory (SOURCES.md "Caveats"):
--   mib      SizeInMiB is MiB per GPU (most files)
--   gib      the SizeInMiB field holds GB per GPU (Shadeform)
--   mib_all  SizeInMiB is the total over all GPUs (Vast; PrimeIntellect writes count x memory)
--   none     GpuInfo has no memory (v6 RunPod and Paperspace); the accelerator table's is used
-- Providers are named after skypilot's, except DigitalOcean: "do" is a Lua keyword.
local V8, V6 = "late-2025", "unknown-v6"
local SOURCES = {
  { file = "aws_vms_gpu_subset.csv", provider = "aws", date = V8, mem = "mib" },
  { file = "cudo_vms.csv", provider = "cudo", date = V8, mem = "mib" },
  { file = "daytona_vms.csv", provider = "daytona", date = V8, mem = "mib" },
  { file = "do_v6_vms.csv", provider = "digitalocean", date = V6, mem = "mib" },
  { file = "fluidstack_v6_vms.csv", provider = "fluidstack", date = V6, mem = "mib" },
  { file = "fluidstack_v9_vms.csv", provider = "fluidstack", date = V8, mem = "mib" },
  { file = "hyperbolic_vms.csv", provider = "hyperbolic", date = V8, mem = "mib" },
  { file = "hyperstack_vms.csv", provider = "hyperstack", date = V8, mem = "mib" },
  { file = "jarvislabs_vms.csv", provider = "jarvislabs", date = V8, mem = "mib" },
  { file = "lambda_vms.csv", provider = "lambda", date = V8, mem = "mib" },
  { file = "lium_vms.csv", provider = "lium", date = V8, mem = "mib" },
  { file = "mithril_vms.csv", provider = "mithril", date = V8, mem = "mib" },
  { file = "nebius_vms.csv", provider = "nebius", date = V8, mem = "mib" },
  { file = "oci_gpu_rows_one_region.csv", provider = "oci", date = V8, mem = "mib" },
  { file = "paperspace_v6_vms.csv", provider = "paperspace", date = V6, mem = "none" },
  { file = "primeintellect_vms.csv", provider = "primeintellect", date = V8, mem = "mib_all" },
  { file = "runpod_v6_vms.csv", provider = "runpod", date = V6, mem = "none" },
  { file = "seeweb_vms.csv", provider = "seeweb", date = V8, mem = "mib" },
  { file = "shadeform_vms.csv", provider = "shadeform", date = V8, mem = "gib" },
  { file = "vast_vms.csv", provider = "vast", date = V8, mem = "mib_all" },
  { file = "verda_vms.csv", provider = "verda", date = V8, mem = "mib" },
  { file = "yotta_vms.csv", provider = "yotta", date = V8, mem = "mib" },
}

-- GCP attaches GPUs to host VMs: the VM rows carry no accelerator and price the VM part only; the
-- GPU part is a separate row per (accelerator, count, zone). These are the GPUs built into each
-- accelerator-optimised machine type (public GCP machine-type facts).
local GCP_VMS, GCP_GPUS, GCP_DATE = "gcp_vms_gpu_subset.csv", "gcp_accelerator_prices_subset.csv", V8
local function _gcp_gpus(instance_type)
  local fam, n = instance_type:match("^(a%d%-%a+)%-(%d+)g")
  n = tonumber(n)
  local by_family = {
    ["a2-highgpu"] = "A100", ["a2-megagpu"] = "A100", ["a2-ultragpu"] = "A100-80GB",
    ["a3-highgpu"] = "H100", ["a3-edgegpu"] = "H100", ["a3-megagpu"] = "H100-MEGA",
    ["a3-ultragpu"] = "H200", ["a4-highgpu"] = "B200",
  }
  if fam and by_family[fam] then return by_family[fam], n end
end

local COLUMNS = { "provider", "instance_type", "accelerator", "count", "gpu_memory_gib", "vcpus",
  "memory_gib", "region", "zone", "price", "spot_price", "source", "date" }

local _warnings = {}
local function _warn(fmt, ...) _warnings[#_warnings + 1] = fmt:format(...) end

local function _read(path)
  local f, err = io.open(path, "rb")
  if not f then error(err, 0) end
  local text = f:read("a")
  f:close()
  return text
end

-- Shortest decimal for a number, at most 6 places: prices and sums carry float noise
-- (0.36979999999999996, 2.36502 + 8.40152).
local function _num(x)
  if x == nil then return "" end
  if x == math.floor(x) and math.abs(x) < 1e15 then return ("%d"):format(x) end
  local s = ("%.6f"):format(x):gsub("0+$", ""):gsub("%.$", "")
  return s
end

-- A price field: empty, unparsable or <= 0 means "not offered" (Vast writes 0.00 for no spot).
local function _price(s)
  local p = tonumber(s)
  if p and p > 0 then return p end
end

local function _clean(s)
  return ((s or ""):gsub("[\t\r\n]", " "):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Per-GPU memory in GiB as the provider states it, or nil.
local function _reported_gib(gpu_info, rule, count)
  if rule == "none" or not gpu_info or gpu_info == "" then return nil end
  local v = tonumber(gpu_info:lower():match("sizeinmib[\"']?%s*:%s*[\"']?([%d.]+)"))
  if not v or v <= 0 then return nil end -- Seeweb's RTX PRO 6000 rows say 0
  if rule == "gib" then return v end
  if rule == "mib_all" then return v / 1024 / count end
  return v / 1024
end

local _unknown = {}

-- Builds one output row; returns nil (with a warning) for rows that cannot be an offer.
local function _offer(src, provider, instance_type, rec, price, spot, count, reported)
  local name = _clean(rec.AcceleratorName)
  local entry, mem = accelerators.classify(name, reported)
  if not entry then
    _unknown[name] = (_unknown[name] or 0) + 1
    return nil
  end
  if not price and not spot then
    _warn("%s: %s %s has no price, skipped", src.file, instance_type, _clean(rec.Region))
    return nil
  end
  return {
    provider, _clean(instance_type), entry.name, _num(count), _num(mem),
    _num(tonumber(rec.vCPUs)), _num(tonumber(rec.MemoryGiB)), _clean(rec.Region),
    _clean(rec.AvailabilityZone), _num(price), _num(spot), src.file or src, src.date or GCP_DATE,
  }
end

local function _records(dir, file)
  local recs, err = csv.records(_read(dir .. "/" .. file))
  if not recs then error(file .. ": " .. err, 0) end
  return recs
end

local function _plain_rows(dir, src, out)
  for _, rec in ipairs(_records(dir, src.file)) do
    if _clean(rec.AcceleratorName) ~= "" then
      local count = tonumber(rec.AcceleratorCount)
      if not count or count <= 0 then
        _warn("%s: %s has accelerator count %q, skipped", src.file, rec.InstanceType, rec.AcceleratorCount)
      elseif _clean(rec.InstanceType) == "" then
        _warn("%s: row without an instance type, skipped", src.file)
      else
        local reported = _reported_gib(rec.GpuInfo, src.mem, count)
        local row = _offer(src, src.provider, rec.InstanceType, rec, _price(rec.Price), _price(rec.SpotPrice),
          count, reported)
        if row then out[#out + 1] = row end
      end
    end
  end
end

-- Joins GCP host VMs with the GPU rows of the same zone; VMs whose GPU price is missing from the
-- subset are skipped (counted in the log), since a VM-only price would understate the cost.
local function _gcp_rows(dir, out)
  local gpus = {}
  for _, g in ipairs(_records(dir, GCP_GPUS)) do
    gpus[table.concat({ g.AcceleratorName, tonumber(g.AcceleratorCount), g.AvailabilityZone }, "|")] = g
  end
  local src = { file = GCP_VMS .. "+" .. GCP_GPUS, date = GCP_DATE }
  local unpriced = {}
  for _, vm in ipairs(_records(dir, GCP_VMS)) do
    local name, n = _gcp_gpus(vm.InstanceType)
    if not name then
      _warn("%s: unknown GPU machine type %s, skipped", GCP_VMS, vm.InstanceType)
    else
      local g = gpus[table.concat({ name, n, vm.AvailabilityZone }, "|")]
      if not g then
        unpriced[vm.InstanceType] = (unpriced[vm.InstanceType] or 0) + 1
      else
        -- The VM part may be 0.0 (a4-highgpu-8g): then the GPU row is the whole price.
        local vp, gp = tonumber(vm.Price), _price(g.Price)
        local vs, gs = tonumber(vm.SpotPrice), _price(g.SpotPrice)
        local price = (vp and gp) and vp + gp or nil
        local spot = (vs and gs) and vs + gs or nil
        local rec = { AcceleratorName = name, vCPUs = vm.vCPUs, MemoryGiB = vm.MemoryGiB, Region = vm.Region,
          AvailabilityZone = vm.AvailabilityZone }
        local row = _offer(src, "gcp", vm.InstanceType, rec, price, spot, n, _reported_gib(g.GpuInfo, "mib", n))
        if row then out[#out + 1] = row end
      end
    end
  end
  local types = {}
  for t in pairs(unpriced) do types[#types + 1] = t end
  table.sort(types)
  for _, t in ipairs(types) do
    _warn("gcp: %s: GPU price not in the subset, %d zone rows skipped", t, unpriced[t])
  end
end

-- Every name in skypilot's accelerators.csv must resolve, so names that appear in catalogs we
-- did not copy are known too.
local function _check_known_names(dir)
  for _, rec in ipairs(_records(dir, "accelerators.csv")) do
    if not accelerators.resolve(rec.AcceleratorName) then
      _unknown[rec.AcceleratorName] = (_unknown[rec.AcceleratorName] or 0) + 1
    end
  end
end

-- provider, accelerator, count, on-demand price, spot price (numbers; empty last), then the whole
-- line, so the order is total and the output reproducible.
local function _sort(rows)
  local function num(s) return s == "" and math.huge or tonumber(s) end
  for _, r in ipairs(rows) do r.line = table.concat(r, "\t") end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[3] ~= b[3] then return a[3] < b[3] end
    local ca, cb = tonumber(a[4]), tonumber(b[4])
    if ca ~= cb then return ca < cb end
    local pa, pb = num(a[10]), num(b[10])
    if pa ~= pb then return pa < pb end
    local sa, sb = num(a[11]), num(b[11])
    if sa ~= sb then return sa < sb end
    return a.line < b.line
  end)
end

local function main(dir, out_path)
  if not dir or not out_path then
    io.stderr:write("usage: lua5.4 providers/catalog/build.lua CATALOG_DATA_DIR OUT.tsv\n")
    os.exit(2)
  end
  local rows = {}
  for _, src in ipairs(SOURCES) do _plain_rows(dir, src, rows) end
  _gcp_rows(dir, rows)
  _check_known_names(dir)

  local names = {}
  for n in pairs(_unknown) do names[#names + 1] = n end
  if #names > 0 then
    table.sort(names)
    for _, n in ipairs(names) do
      local _, err = accelerators.resolve(n)
      io.stderr:write(("error: %s (%d rows); add it to stdlib/sky/broker/accelerators.lua\n"):format(err, _unknown[n]))
    end
    os.exit(1)
  end

  _sort(rows)
  local lines, seen, dups = { table.concat(COLUMNS, "\t") }, {}, 0
  local per_provider = {}
  for _, r in ipairs(rows) do
    if seen[r.line] then
      dups = dups + 1
    else
      seen[r.line] = true
      lines[#lines + 1] = r.line
      per_provider[r[1]] = (per_provider[r[1]] or 0) + 1
    end
  end
  local f = assert(io.open(out_path, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()

  for _, w in ipairs(_warnings) do io.stderr:write("warning: ", w, "\n") end
  local provs = {}
  for p, n in pairs(per_provider) do provs[#provs + 1] = ("%s=%d"):format(p, n) end
  table.sort(provs)
  print(("wrote %s: %d offers (%d duplicate rows dropped)"):format(out_path, #lines - 1, dups))
  print(table.concat(provs, " "))
end

-- Run as a script only: skyhost embeds providers/**.lua as modules, and requiring this one
-- must not start a build.
if (...) ~= "providers.catalog.build" then main(arg[1], arg[2]) end
