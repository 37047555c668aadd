-- The local provider: nodes are worker processes on this machine. It implements the same
-- protocol as every provider; its instances say transport = "local", so the pool starts a
-- worker process for each instead of reaching a machine over SSH.
-- Its workers follow their host's death (PR_SET_PDEATHSIG): a pool of a skyhost that is gone
-- has nothing left to end (stdlib/sky/pool/journal.lua).
local M = { name = "local", ends_with_host = true }

function M:offers(_spec)
  return { { provider = "local", instance_type = "process", count = 0, price = 0 } }
end

function M:prepare(_cluster) end

function M:provision(cluster, n, _offer)
  local ids = {}
  for i = 1, n do ids[i] = ("%s-%d"):format(cluster.id, i - 1) end
  return ids
end

function M:get_instance(_cluster, id)
  return { id = id, state = "running", transport = "local" }
end

-- The pool has already stopped the worker processes; nothing else exists to remove.
function M:terminate(_cluster, _ids) end

function M:teardown(_cluster) end

return M
