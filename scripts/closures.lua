-- closures.lua — what travels with a remote function: its upvalues, by value.
--   skyhost scripts/closures.lua
local sky = require "sky"

local config = { scale = 10, tags = { "a", "b" } }
config.self = config                      -- cycles travel too
local function square(x) return x * x end -- functions used by the task travel with it
local fmt = string.format                 -- standard library values travel by name

local work = sky.fn(function(x)
  local info = sky.instance_info()
  return fmt("node %d: %d * %d = %d (tags %s, cycle kept: %s)", info.node, x, config.scale,
    square(x) * config.scale // x, table.concat(config.tags, "+"), tostring(config.self == config))
end)

do
  local pool <close> = sky.compute { nodes = 2 }

  print(work(3) >> pool)

  -- Two tasks in parallel; `>>` on a group gives a list of results.
  local both = (work(1) & work(2)) >> pool
  print(both[1]); print(both[2])

  -- pool:run returns every value; several return values are kept.
  local divmod = sky.fn(function(a, b) return a // b, a % b end)
  local q, r = pool:run(divmod(17, 5))
  print(("17 = 5 * %d + %d"):format(q, r))

  -- A remote error is raised here, at the line that waited for it.
  local ok, err = pcall(function()
    return sky.fn(function() error("boom") end)() >> pool
  end)
  print("caught: " .. tostring(err))
end
