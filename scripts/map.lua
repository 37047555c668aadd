-- map.lua — spread many small tasks over the nodes; results come back in input order.
--   skyhost scripts/map.lua [N]
local sky = require "sky"

local n = tonumber(arg[1]) or 1000
local items = {}
for i = 1, n do items[i] = i end

local collatz = sky.fn(function(x)
  local steps = 0
  while x ~= 1 do
    x = (x % 2 == 0) and x // 2 or 3 * x + 1
    steps = steps + 1
  end
  return steps
end)

do
  local pool <close> = sky.compute { nodes = 4 }
  local steps = pool:map(collatz, items, { concurrency = 16 })
  local best, at = 0, 0
  for i, s in ipairs(steps) do
    if s > best then best, at = s, i end
  end
  print(("%d numbers: longest Collatz chain starts at %d (%d steps)"):format(n, at, best))

  -- sky.shard: each node takes its share of a list.
  local part = sky.fn(function(list)
    local mine = sky.shard(list)
    return #mine
  end)
  local counts = pool:broadcast(part(items))
  print("shard sizes per node: " .. table.concat(counts, ", "))
end
