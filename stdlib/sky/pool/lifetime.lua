-- A pool's maximum lifetime, its `timeout` option, counted from sky.compute. When it passes,
-- a watcher drains the pool and tears it down: tasks still waiting fail with PoolTimeout, the
-- events and the cost summary give the reason. The workers know the deadline as well (a
-- `--deadline` beside the lease's `--ttl`): a node ends itself once the timeout and a grace
-- period have passed, even while its host is alive but stuck and still holds the connection.
local core = require "skyhost.core"
local sched = require "sky.internal.sched"

local M = {}

M.STOP_GRACE = 2  -- seconds the workers get to stop when the timeout passes

--- How long after the timeout a node waits for its host before ending itself: long enough for
--- the host's own teardown to come first, short next to the timeout.
function M.grace(timeout)
  return math.min(60, math.max(5, timeout / 10))
end

--- Seconds a worker started now may live (nil without a timeout): what is left of the pool's
--- lifetime, plus the grace.
function M.worker_deadline(pool)
  if not pool.deadline then return nil end
  return math.max(0, pool.deadline - core.now()) + M.grace(pool.opts.timeout)
end

--- "90 s", "1.5 s": a limit as a user wrote it.
local function _seconds(v)
  return (math.type(v) == "integer" or v == math.floor(v)) and ("%d s"):format(v) or ("%g s"):format(v)
end

--- Drains and tears the pool down now, because its timeout passed.
function M.expire(pool)
  local why = ("its timeout of %s passed"):format(_seconds(pool.opts.timeout))
  pool:end_early { code = "PoolTimeout", reason = why, grace = M.STOP_GRACE,
    fields = { timeout = pool.opts.timeout } }
end

--- Starts the watcher of a ready pool that has a timeout. It ends with the pool.
function M.watch(pool)
  if not pool.deadline then return end
  sched.spawn(function()
    while pool.state == "ready" do
      local left = pool.deadline - core.now()
      if left <= 0 then return M.expire(pool) end
      -- Short naps: the watcher (and its timer) goes soon after the pool closes for another reason.
      sched.await(core.sleep(math.min(left, 1)))
    end
  end)
end

return M
