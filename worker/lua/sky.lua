-- The `sky` module as a task sees it on a worker. Values named here travel by name: a function
-- that captured the host's sky.shard gets this one.
local shard = require "sky.common.shard"

local plugin = require "skyworker.plugin"

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

--- The metatable of plugin handles (sky.plugin on the host): a handle that travelled as an
--- upvalue or argument calls its plugin here, in this executor's plugin host.
M._plugin_mt = {
  __name = "sky.plugin",
  __call = plugin.call,
  __tostring = function(self) return ("sky.plugin(%s)"):format(self.name) end,
}

return M
