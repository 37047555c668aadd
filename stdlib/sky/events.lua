-- Pool events: lifecycle (ClusterRequested … ClusterDestroyed), tasks (TaskStarted,
-- TaskCompleted), worker output (Log). Handlers run from the driver, never inside a libuv
-- callback; a failing handler is reported and the others still run.
local core = require "skyhost.core"
local errors = require "sky.errors"
local display = require "sky.pool.display"
local sched = require "sky.internal.sched"

local M = {}

local _pools = setmetatable({}, { __mode = "v" })  -- id -> pool

M.TYPES = {
  "ClusterRequested", "OffersSelected", "InstanceLaunched", "InstanceRunning", "BootstrapPhase",
  "BootstrapConsole", "InstanceReady", "ClusterReady", "TaskStarted", "TaskCompleted", "Log", "Metric", "InstanceLost", "InstancePreempted", "InstanceReplaced",
  "ReplaceFailed", "ClusterDraining",
  "ClusterDestroyed", "AttemptFailed", "CostSummary",
}
local _known = {}
for _, t in ipairs(M.TYPES) do _known[t] = true end

--- "task_completed" and "TaskCompleted" both name TaskCompleted.
function M.normalize(name)
  if name == "*" or _known[name] then return name end
  local camel = name:gsub("^%l", string.upper):gsub("_(%l)", string.upper)
  if _known[camel] then return camel end
  errors.raise("BadArgument",
    ("unknown event '%s' (events: %s)"):format(name, table.concat(M.TYPES, ", ")))
end

--- Events of `pool` are delivered from now on (to its handlers, and shown as pool.display says).
function M.attach(pool)
  _pools[pool.id] = pool
end

function M.detach(pool) _pools[pool.id] = nil end

function M.subscribe(pool, name, fn)
  local t = M.normalize(name)
  local list = pool.handlers[t] or {}
  list[#list + 1] = fn
  pool.handlers[t] = list
end

--- A running batch's progress, for the display: info = {what, total, started, poll} while it
--- runs (poll() → tasks, finished, failed), nil once it is over.
function M.progress(pool, batch, info)
  display.progress(pool, batch, info)
end

function M.wants_task_events(pool)
  local h = pool.handlers
  return (h["*"] or h.TaskStarted or h.TaskCompleted) ~= nil
end

local function _call(fn, ev)
  local ok, err = pcall(fn, ev)
  if not ok then
    io.stderr:write(("skyhost: event handler for %s failed: %s\n"):format(ev.type, tostring(err)))
  end
end

function M.deliver(pool, ev)
  ev.time = ev.time or core.now()
  display.show(pool, ev)
  local h = pool.handlers
  for _, fn in ipairs(h[ev.type] or {}) do _call(fn, ev) end
  for _, fn in ipairs(h["*"] or {}) do _call(fn, ev) end
end

sched.set_event_sink(function(list)
  for _, ev in ipairs(list) do
    local pool = _pools[ev.pool]
    -- a node's spot interruption notice is the pool's to act on: it says InstancePreempted
    if pool and ev.type == "SpotNotice" then
      pool:_spot_notice(ev)
    elseif pool then
      M.deliver(pool, ev)
    end
  end
  display.after_events()
end)

return M
