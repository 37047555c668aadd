-- The `sky` module as a task sees it on a worker. Values named here travel by name: a function
-- that captured the host's sky.shard gets this one.
local shard = require "sky.common.shard"

local M = {}
local _info = debug.getregistry()["skyworker.info"]

--- This node: node (0-based), total_nodes, is_head, head_addr, hostname, pid, provider, pool.
function M.instance_info()
  local copy = {}
  for k, v in pairs(_info) do copy[k] = v end
  return copy
end

function M.shard(...)
  return shard.shard(_info, ...)
end

return M
