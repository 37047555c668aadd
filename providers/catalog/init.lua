-- Offers: loading the shipped snapshot (providers/catalog/offers.tsv, built by
-- providers/catalog/build.lua) and filtering offers by what a pool asks for.
--
-- An offer is a plain table:
--   { provider, instance_type, accelerator, count, gpu_memory (GiB per GPU), vcpus,
--     memory (host RAM GiB), region, zone (nil if none), price (on-demand USD/h, nil if not sold
--     on demand), spot_price (nil if no spot), source, date }
-- Prices are per instance per hour, for all its GPUs together.
local accelerators = require "sky.broker.accelerators"
local errors = require "sky.errors"

local M = {}

--- Where the snapshot lives, relative to the repository root (the current directory in tests).
M.snapshot_path = "providers/catalog/offers.tsv"

-- TSV column -> offer field, and whether it is a number.
local _columns = {
  provider = { "provider" }, instance_type = { "instance_type" }, accelerator = { "accelerator" },
  count = { "count", true }, gpu_memory_gib = { "gpu_memory", true }, vcpus = { "vcpus", true },
  memory_gib = { "memory", true }, region = { "region" }, zone = { "zone" },
  price = { "price", true }, spot_price = { "spot_price", true }, source = { "source" }, date = { "date" },
}

local function _read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

--- Parses a snapshot. `source` is TSV text (anything containing a line break) or a file path.
--- Empty fields become nil; numeric columns become numbers. Lines starting with # are comments.
---@return table[]|nil offers, string|nil err
function M.load(source)
  if type(source) ~= "string" then return nil, "catalog.load: expected a path or TSV text, got " .. type(source) end
  local text = source
  if not source:find("\n", 1, true) then
    local err
    text, err = _read_file(source)
    if not text then return nil, "catalog.load: " .. err end
  end
  local fields, offers, lineno = nil, {}, 0
  for line in text:gmatch("[^\r\n]+") do
    lineno = lineno + 1
    if line:byte(1) ~= 35 then -- '#'
      local cells, n = {}, 0
      for cell in (line .. "\t"):gmatch("([^\t]*)\t") do
        n = n + 1
        cells[n] = cell
      end
      if not fields then
        fields = {}
        local has_provider = false
        for i, name in ipairs(cells) do
          fields[i] = _columns[name] or false -- unknown columns are skipped, for newer snapshots
          has_provider = has_provider or name == "provider"
        end
        if not has_provider then
          return nil, "catalog.load: line 1 is not a header with a provider column"
        end
      else
        if n ~= #fields then
          return nil, ("catalog.load: line %d has %d fields, header has %d"):format(lineno, n, #fields)
        end
        local o = {}
        for i = 1, n do
          local col, cell = fields[i], cells[i]
          if col and cell ~= "" then
            if col[2] then
              local v = tonumber(cell)
              if not v then
                return nil, ("catalog.load: line %d: %s is not a number: %q"):format(lineno, col[1], cell)
              end
              o[col[1]] = v
            else
              o[col[1]] = cell
            end
          end
        end
        offers[#offers + 1] = o
      end
    end
  end
  if not fields then return nil, "catalog.load: empty input" end
  return offers
end

--- Where the shipped snapshot is read from, and its text: $SKYHOST_CATALOG (a TSV file) if set;
--- the repository named by $SKYHOST_STDLIB (development); the copy compiled into skyhost
--- (stdlib/CMakeLists.txt embeds providers/catalog/offers.tsv); else M.snapshot_path.
function M.snapshot_source()
  local env = os.getenv("SKYHOST_CATALOG")
  if env and env ~= "" then return env, _read_file(env) end
  local root = os.getenv("SKYHOST_STDLIB")
  if root and root ~= "" then
    local path = root .. "/" .. M.snapshot_path
    local text = _read_file(path)
    if text then return path, text end
  end
  local ok, text = pcall(require, "providers.catalog.offers_tsv")
  if ok and type(text) == "string" then return "(built in) " .. M.snapshot_path, text end
  return M.snapshot_path, _read_file(M.snapshot_path)
end

local _snapshot
--- The shipped snapshot, loaded once (or the TSV at `path`). Raises if it cannot be read.
function M.snapshot(path)
  if path then
    local offers, err = M.load(path)
    if not offers then errors.raise("CatalogUnreadable", err) end
    return offers
  end
  if not _snapshot then
    local where, text = M.snapshot_source()
    if not text then
      errors.raise("CatalogUnreadable", ("catalog.snapshot: cannot read %s"):format(where))
    end
    local offers, err = M.load(text)
    if not offers then errors.raise("CatalogUnreadable", ("%s (%s)"):format(err, where)) end
    _snapshot = offers
  end
  return _snapshot
end

-- A provider may be named by a string or given as a provider object with a .name.
local function _provider_name(p)
  if type(p) == "table" then return p.name end
  return p
end

--- Provider names a spec allows, in the order given, or nil for "any". Reads spec.providers or
--- spec.provider (a name, a provider object, or a list of either).
function M.provider_list(spec)
  local p = spec.providers or spec.provider
  if p == nil then return nil end
  if type(p) == "string" or (type(p) == "table" and p.name) then return { _provider_name(p) } end
  local out = {}
  for i, v in ipairs(p) do out[i] = _provider_name(v) end
  return out
end

local function _set(v)
  if v == nil then return nil end
  if type(v) ~= "table" then v = { v } end
  local s = {}
  for _, x in ipairs(v) do s[x] = true end
  return s
end

local function _check(spec, key, want)
  local v = spec[key]
  if v ~= nil and type(v) ~= want and not (want == "string" and type(v) == "table") then
    errors.raise("BadSpec", ("offer query: '%s' must be a %s, got %s"):format(key, want, type(v)))
  end
end

--- Resolves spec.accelerator (a name or an accelerators.X{...} spec) with spec.count and
--- spec.memory on top. Returns name, count, min memory (each may be nil).
function M.accelerator_request(spec)
  local a = spec.accelerator
  if a == nil then return nil, spec.count, spec.memory end
  local name, count, memory = a, spec.count, spec.memory
  if type(a) == "table" then
    name, count, memory = a.name, spec.count or a.count, spec.memory or a.memory
  elseif type(a) ~= "string" then
    errors.raise("BadSpec", ("offer query: 'accelerator' must be a name or an accelerator spec, got %s"):format(type(a)))
  end
  local s = accelerators.spec(name, { memory = memory })
  return s.name, count, memory and s.memory
end

--- Offers matching a spec, in catalog order. Spec keys (all optional; others are ignored, since
--- the spec is usually a whole pool spec):
---   accelerator  name or accelerators.X{...}; unknown names raise with a suggestion
---   count        exact number of accelerators per instance
---   memory       minimum GPU memory per accelerator, GiB (also picks A100 vs A100-80GB)
---   provider(s)  name, provider object or list of them
---   region, zone name or list of names, exact
---   spot         true: only offers with a spot price; false: only offers sold on demand
---   vcpus, ram   minimum vCPUs / host RAM (GiB) per instance
function M.query(offers, spec)
  spec = spec or {}
  for key, want in pairs({ count = "number", memory = "number", region = "string", zone = "string",
    vcpus = "number", ram = "number", spot = "boolean" }) do
    _check(spec, key, want)
  end
  local name, count, memory = M.accelerator_request(spec)
  local providers = _set(M.provider_list(spec))
  local regions, zones = _set(spec.region), _set(spec.zone)
  local spot, vcpus, ram = spec.spot, spec.vcpus, spec.ram
  local out, n = {}, 0
  for i = 1, #offers do
    local o = offers[i]
    if (not name or o.accelerator == name)
      and (not count or o.count == count)
      and (not memory or (o.gpu_memory or 0) >= memory)
      and (not providers or providers[o.provider])
      and (not regions or regions[o.region])
      and (not zones or zones[o.zone])
      and (spot == nil or (spot and o.spot_price ~= nil) or (spot == false and o.price ~= nil))
      and (not vcpus or (o.vcpus or 0) >= vcpus)
      and (not ram or (o.memory or 0) >= ram) then
      n = n + 1
      out[n] = o
    end
  end
  return out
end

return M
