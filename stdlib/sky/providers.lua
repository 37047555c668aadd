-- Provider lookup. A provider is a table with offers, prepare, provision, get_instance,
-- terminate and teardown (see providers/local.lua); built-in ones are found by name.
local errors = require "sky.errors"

local M = {}

M.BUILTIN = { ["local"] = "providers.local" }

local METHODS = { "offers", "prepare", "provision", "get_instance", "terminate", "teardown" }

function M.resolve(p)
  if type(p) == "string" then
    local mod = M.BUILTIN[p]
    if not mod then
      local names = {}
      for name in pairs(M.BUILTIN) do names[#names + 1] = name end
      table.sort(names)
      errors.raise("BadOption", ("sky.compute: unknown provider '%s' (available: %s)")
        :format(p, table.concat(names, ", ")))
    end
    return require(mod)
  end
  for _, m in ipairs(METHODS) do
    if type(p[m]) ~= "function" then
      errors.raise("BadOption", ("sky.compute: provider %s has no method '%s'")
        :format(tostring(p.name or p), m))
    end
  end
  return p
end

return M
