-- Replacing lost nodes (`replace = true`, docs/broker.md "Preemption"): a node whose provider
-- preempted it or whose link was lost gets a new instance of the same offer, from the same
-- provider, through the broker's attempt (journal, ledger); its worker joins the scheduler as a
-- new worker, and the lost node's tasks (retried by `retries`) run there too. At most `nodes`
-- replacements per pool; closing the pool ends them (the broker's release waits for one in
-- flight and terminates what it made).
--
-- Node indexes: the scheduler numbers its workers in the order they joined (a replacement gets
-- `nodes` and up), but what a script addresses — node i of broadcast, put, get, sh, {node = i},
-- nodes_info, sky.instance_info().node — is a place in the pool: the replacement takes its lost
-- node's index. pool.workers[i + 1] is the worker now at node i (absent: worker i), and
-- pool.node_of[w] the node worker w stands for (absent: w).
local core = require "skyhost.core"
local broker = require "sky.broker"
local connect = require "sky.pool.connect"
local errors = require "sky.errors"
local lifetime = require "sky.pool.lifetime"
local sched = require "sky.internal.sched"

local M = {}

local function _live(pool)
  return pool.state == "ready" or pool.state == "failed"
end

--- The scheduler's worker now at node `node` (0-based).
function M.worker(pool, node)
  return pool.workers and pool.workers[node + 1] or node
end

--- The node index worker `w` stands for (nil: a replacement's worker that never joined).
function M.node_of(pool, w)
  if w < pool.nodes then return w end  -- an original worker
  return pool.node_of and pool.node_of[w]
end

--- Worker `w` was lost and will be replaced (`replace = true`, the pool still live): marks its
--- node as being replaced at once, so that a broadcast started meanwhile waits for the
--- replacement (M.await) rather than pinning a task on the dead worker.
function M.lost(pool, w)
  local node = M.node_of(pool, w)
  if not pool.opts.replace or not _live(pool) or not node then return end
  pool.replacing = pool.replacing or {}
  pool.replacing[node] = true
end

--- Waits until no replacement is under way for any of `nodes` (node indexes): one under way
--- ends as InstanceReplaced (its node then addresses the new worker) or ReplaceFailed (its
--- node stays the lost worker, and what is pinned on it fails naming why it was lost).
function M.await(pool, nodes)
  local function busy()
    if not pool.replacing or not _live(pool) then return false end
    for _, n in ipairs(nodes) do
      if pool.replacing[n] then return true end
    end
    return false
  end
  while busy() do sched.await(core.sleep(0.02)) end
end

-- Starts the worker for `inst` as a new node of the pool's scheduler and waits until it is
-- ready; raises if it cannot start or the pool closes meanwhile.
local function _join(pool, inst, old, node, emit, cancelled)
  local function check()
    if not _live(pool) then errors.raise("PoolClosed", "the pool closed during the replacement") end
    if cancelled() then errors.raise("Timeout", "the replacement's attempt ran out of time") end
  end
  check()
  local c, info = pool.core, inst.info
  -- The worker answers to its node's index (sky.instance_info().node, torchrun's rank).
  local identity = { node = node, total_nodes = pool.nodes, is_head = node == 0,
    head_addr = pool.instances[1] and pool.instances[1].info.ip or "127.0.0.1",
    provider = pool.provider and pool.provider.name or "unknown", pool = pool.name,
    instance = inst.id, metrics_interval = pool.opts.metrics_interval or 5, replaces = old }
  local idx
  if info.transport == "local" then
    idx = c:add_local_node(core.worker_path(), identity, pool.opts.concurrency or 0, lifetime.worker_deadline(pool))
  elseif info.transport == "command" then
    connect.check_command(inst)
    idx = c:add_command_node(connect.command_argv(pool, info), identity)
  else
    local s, cmd = connect.bootstrap(pool, c:node_count(), inst, emit)
    local ok, err = pcall(check)
    if not ok then
      s:close()
      error(err, 0)
    end
    idx = c:add_ssh_node(s, cmd, identity)
  end
  while true do
    if not _live(pool) then errors.raise("PoolClosed", "the pool closed during the replacement") end
    local n = c:node(idx)
    if not n.alive then errors.raise("StartFailed", n.lost or "the worker exited") end
    if n.hostname then return idx end
    sched.await(core.sleep(0.02))
  end
end

-- Replaces worker `w`, which stood for node `node`.
local function _replace(pool, w, node, emit)
  if not pool.opts.replace or not _live(pool) then return end
  pool.replacements = pool.replacements or 0
  if pool.replacements >= pool.nodes then
    emit("ReplaceFailed", { node = node, reason = ("the pool has used all %d replacements"):format(pool.nodes) })
    return
  end
  pool.replacements = pool.replacements + 1
  local old = pool.instances[w + 1] and pool.instances[w + 1].id
  local new_idx, cancelled = nil, false
  -- The attempt numbers its one instance node 0: say which node it replaces instead.
  local function attempt_emit(type_, fields)
    if type_ == "InstanceRunning" then fields.node, fields.replaces = nil, node end
    emit(type_, fields)
  end
  local ok, placed, why = pcall(broker.replace, pool, attempt_emit, {
    start = function(placement)
      new_idx = _join(pool, placement.instances[1], old, node, emit, function() return cancelled end)
    end,
    -- The attempt failed or ran out of time: a bootstrap still under way adds no node; a worker
    -- already added has exited or ends with its instance (close kills any left).
    stop = function() cancelled = true end,
  })
  if ok and placed then
    local inst = why.instances[1]
    pool.instances[new_idx + 1] = inst  -- its own loss is checked as any node's
    broker.node_placed(pool, why.provider, inst.id, new_idx)
    pool.workers, pool.node_of = pool.workers or {}, pool.node_of or {}
    pool.workers[node + 1], pool.node_of[new_idx] = new_idx, node  -- node `node` is it now
    if pool.state == "failed" then pool:_set_state("ready") end  -- it has a live node again
    emit("InstanceReplaced", { node = node, new_node = new_idx, old_instance = old, new_instance = inst.id })
  elseif _live(pool) then
    emit("ReplaceFailed", { node = node, reason = ok and tostring(why) or errors.message(placed) })
  end
end

--- Worker `w` of `pool` was lost: replaces it if the pool asks for it and has replacements left.
--- emit(type, fields) reports InstanceReplaced or ReplaceFailed.
function M.node_lost(pool, w, emit)
  local node = M.node_of(pool, w)
  -- A replacement's worker lost before it joined: its own attempt reports ReplaceFailed.
  if not node then return end
  local ok, err = pcall(_replace, pool, w, node, emit)
  if pool.replacing then pool.replacing[node] = nil end  -- a waiting broadcast goes on
  if not ok then error(err, 0) end
end

return M
