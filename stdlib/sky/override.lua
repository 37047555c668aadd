-- sky.override(path, function(base, ...) ... end): wraps one of skyhost's defaults from a script
-- (premake's `override`). `base` is what was there before, so a wrapper can call through:
--
--   sky.override("providers.local.provision", function(base, self, cluster, n, offer)
--     print("provisioning", n)
--     return base(self, cluster, n, offer)
--   end)
--   sky.override("selection.cheapest", function(base, offers, spec)
--     local keep = {}
--     for _, o in ipairs(offers) do if o.provider ~= "vast" then keep[#keep + 1] = o end end
--     return base(keep, spec)
--   end)
--
-- Paths:
--   providers.<name>.<method>   a built-in provider's or a sky.provider's method
--   selection.<name>            a named selection ("first", "cheapest", "available")
--   allocation.<name>           a named allocation ("spot-if-available", ...): fn(base, offer, spec)
--                               returns that offer's attempts, {spot =, price =} each
-- Returns a function that undoes the override (undo overrides in reverse order).
local errors = require "sky.errors"
local policy = require "sky.broker.policy"
local providers = require "providers"
local suggest = require "sky.internal.suggest"

local M = {}

local function _names(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function _wrap_table(t, kind, name, fn)
  local base = t[name]
  if base == nil then
    local cands = {}
    for _, k in ipairs(_names(t)) do cands[#cands + 1] = { key = k, name = k } end
    errors.raise("BadOption", ("sky.override: no %s named '%s'%s (%s: %s)"):format(kind, name,
      suggest.did_you_mean(suggest.suggest(name, cands)), kind, table.concat(_names(t), ", ")))
  end
  local wrapped = function(...) return fn(base, ...) end
  t[name] = wrapped
  return function()
    if t[name] == wrapped then t[name] = base end
  end
end

function M.override(path, fn)
  if type(path) ~= "string" then
    errors.raise("BadArgument", ("sky.override: expected a path such as \"providers.local.provision\", got %s"):format(type(path)))
  end
  if type(fn) ~= "function" then
    errors.raise("BadArgument", ("sky.override: expected function(base, ...) as the second argument, got %s"):format(type(fn)))
  end
  local root, rest = path:match("^([%w_]+)%.(.+)$")
  if root == "providers" then
    local name, method = rest:match("^(.+)%.([%w_]+)$")
    if not name then
      errors.raise("BadOption", ("sky.override: '%s' must be providers.<name>.<method>"):format(path))
    end
    return providers.override(name, method, fn)
  elseif root == "selection" then
    return _wrap_table(policy.selection, "selection", rest, fn)
  elseif root == "allocation" then
    return _wrap_table(policy.allocation, "allocation", rest, fn)
  end
  errors.raise("BadOption", ("sky.override: cannot override '%s' (paths: providers.<name>.<method>, selection.<name>, allocation.<name>)")
    :format(path))
end

return M
