-- hello.lua — the smallest skyhost script: run with  skyhost scripts/hello.lua
-- Four worker processes on this machine (the local provider: no cloud account needed).
local sky = require "sky"

local hello = sky.fn(function(greeting)
  local info = sky.instance_info()
  print(("%s from node %d of %d"):format(greeting, info.node, info.total_nodes))
  return info.node, info.hostname
end)

do
  local pool <close> = sky.compute { provider = "local", nodes = 4 }

  -- One task, on whichever node is free: `>>` gives its first return value.
  local node = hello("hi") >> pool
  print("one task ran on node " .. node)

  -- The same task on every node, results in node order.
  local nodes = pool:broadcast(hello("hello"))
  print("broadcast answered by nodes " .. table.concat(nodes, ", "))
end -- the pool is torn down here: every worker process is gone
