-- From an instance to a worker on it: a local instance gets a worker process; others are
-- reached over SSH (bootstrap, then the worker on an exec channel).
local core = require "skyhost.core"
local errors = require "sky.errors"

local M = {}

--- Starts the worker for node `node` of `pool` on instance `inst` ({id, info}); readiness is
--- awaited by the pool.
function M.start(pool, node, inst)
  local info = inst.info
  local identity = {
    node = node,
    total_nodes = pool.nodes,
    is_head = node == 0,
    head_addr = "127.0.0.1",
    provider = pool.provider.name,
    pool = pool.name,
    instance = inst.id,
  }
  if info.transport == "local" then
    pool.core:add_local_node(core.worker_path(), identity, pool.opts.concurrency or 4)
    return
  end
  errors.raise("Unsupported", ("instance %s: transport '%s' is not supported yet")
    :format(inst.id, tostring(info.transport or "ssh")))
end

return M
