-- From a pool's options to what the broker searches: the provider specs in the order the script
-- gave them, each with the hardware it asks for, and the pool-wide choices (selection,
-- allocation, budget). Everything is checked here, before anything is created, so a mistake in
-- the script is an error on its line rather than a failed provisioning attempt.
--
--   provider = "local" | sky.provider{...} | sky.aws{...}                 one provider
--   provider = { p1, p2, "local" }                                         several, in order
--   provider = { {provider = p1, accelerator = "H100"}, {provider = p2} }  several specs
-- Pool-level accelerator, region, zone and max_price apply to every spec that does not set its
-- own.
local catalog = require "providers.catalog"
local errors = require "sky.errors"
local options = require "sky.options"
local policy = require "sky.broker.policy"
local providers = require "providers"

local M = {}

M.SPEC_SCHEMA = {
  provider = "string|table", accelerator = "string|table", region = "string|table",
  zone = "string|table", max_price = "number",
}
local _INHERITED = { "accelerator", "region", "zone", "max_price" }

M.DEFAULT_TIMEOUT = 600 -- seconds an attempt may take, from provision to workers ready

-- A provider spec table ({provider = ..., accelerator = ...}), as opposed to a provider.
local function _is_spec(v)
  return type(v) == "table" and v.provider ~= nil and not providers.is_provider(v)
    and not providers.is_ref(v) and type(v.offers) ~= "function"
end

local function _is_single(v)
  return type(v) == "string" or providers.is_provider(v) or providers.is_ref(v) or _is_spec(v)
    or (type(v) == "table" and type(v.name) == "string")
end

local function _positive(key, v)
  if v ~= nil and not (v > 0) then
    errors.raise("BadOption", ("sky.compute: option '%s' must be more than 0, got %s"):format(key, tostring(v)))
  end
end

-- One spec: the provider object and the offer filters it asks for.
local function _spec(entry, opts, index)
  local raw = _is_spec(entry) and options.check("sky.compute provider spec", entry, M.SPEC_SCHEMA)
    or { provider = entry }
  local s = { index = index }
  for _, k in ipairs(_INHERITED) do
    if raw[k] ~= nil then s[k] = raw[k] else s[k] = opts[k] end
  end
  s.provider = providers.resolve(raw.provider, "sky.compute")
  s.name = s.provider.name
  if s.accelerator ~= nil then
    local name, count, memory = catalog.accelerator_request({ accelerator = s.accelerator })
    -- "H100" asks for one per node, as sky.accelerators.H100 does.
    s.accelerator, s.count, s.memory = name, count or 1, memory
  end
  _positive("max_price", s.max_price)
  return s
end

--- The request for a pool of `nodes` nodes with options `opts` (already checked against the
--- pool's schema). Raises BadOption / UnknownAccelerator / BadSelection / BadAllocation.
function M.normalize(opts, nodes)
  local req = {
    nodes = nodes,
    selection = opts.selection or policy.default_selection,
    budget = opts.budget,
    max_price = opts.max_price,
    timeout = opts.provision_timeout or M.DEFAULT_TIMEOUT,
    specs = {},
  }
  _positive("budget", opts.budget)
  _positive("provision_timeout", opts.provision_timeout)
  local alloc = opts.allocation
  if opts.spot ~= nil then
    local implied = opts.spot and "always-spot" or "on-demand"
    if alloc ~= nil and alloc ~= implied then
      errors.raise("BadOption", ("sky.compute: spot = %s contradicts allocation = '%s'; give one of them")
        :format(tostring(opts.spot), tostring(alloc)))
    end
    alloc = implied
  end
  req.allocation = policy.check_allocation(alloc or policy.default_allocation)
  policy.check_selection(req.selection)

  local p = opts.provider or "local"
  local list = _is_single(p) and { p } or p
  if #list == 0 then
    errors.raise("BadOption", "sky.compute: option 'provider' is an empty list; name at least one provider")
  end
  for i, entry in ipairs(list) do req.specs[i] = _spec(entry, opts, i) end
  return req
end

--- What a selection function sees as `spec`: the pool's request, without a provider list (the
--- offers arrive already in the order the script listed the providers), and `specs`.
function M.selection_spec(req, opts)
  local first = req.specs[1]
  return {
    nodes = req.nodes, selection = req.selection, allocation = req.allocation,
    budget = req.budget, max_price = req.max_price,
    accelerator = first.accelerator, count = first.count, memory = first.memory,
    region = opts.region, zone = opts.zone, specs = req.specs,
  }
end

--- One line naming what a spec asks for: "H100 x8 on aws (us-east-1)".
function M.describe(s)
  local what = s.accelerator and ("%s x%s"):format(s.accelerator, s.count) or "any machine"
  local where = s.region and (" (" .. (type(s.region) == "table" and table.concat(s.region, ", ") or s.region) .. ")") or ""
  return ("%s on %s%s"):format(what, s.name, where)
end

return M
