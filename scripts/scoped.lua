-- scoped.lua — the scoped form of a pool: sky.pool{...}(main) provisions the pool, runs main
-- with it as the current pool (`task >> sky`), and tears it down when main returns or raises.
-- `timeout` bounds the pool's whole life.
--   skyhost scripts/scoped.lua [NODES]
local sky = require "sky"

local square = sky.fn(function(x) return x * x end)
local where = sky.fn(function() return sky.instance_info().node end)

local main = sky.pool { nodes = tonumber(arg[1]) or 3, timeout = 600 }(function(n)
  print("one task: " .. (square(n) >> sky))
  print("in parallel: " .. table.concat((square(2) & square(3) & square(4)) >> sky, " "))
  print("on every node: " .. table.concat(sky.broadcast(where()), " "))
  local squares = sky.map(square, { 1, 2, 3, 4, 5 })
  return squares[#squares], #squares
end)

local last, count = main(7)
print(("main returned %d and %d; its pool is gone"):format(last, count))

-- A pool that outlives its timeout drains; what still waits on it fails with PoolTimeout.
local ok, err = pcall(sky.pool { timeout = 1, display = "quiet" }(function()
  return sky.fn(function() os.execute("sleep 30") end)() >> sky
end))
print(("timed out: %s (%s)"):format(not ok, err.code))
