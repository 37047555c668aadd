-- How a pool shows its progress. "spinner": one live line per pool on a terminal (nodes
-- connecting / bootstrapping / ready, elapsed). "log": timestamped lifecycle events on stderr.
-- "quiet": nothing. "auto" (the default): the spinner on a terminal, else only what workers print.
-- Worker output ([node N] text) is shown in every mode but quiet.
local core = require "skyhost.core"

local M = {}

local FRAMES = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }
local _spinning = {}  -- pools with a live line, in order
local _ticking = false

local function _stamp()
  local t = core.now()
  return os.date("%H:%M:%S") .. (".%03d"):format(math.floor((t % 1) * 1000))
end

--- The mode a pool will really use.
function M.resolve(mode)
  mode = mode or "auto"
  local tty = core.isatty(2)
  if mode == "auto" then return tty and "spinner" or "plain" end
  if mode == "spinner" and not tty then return "log" end
  return mode
end

local LIFECYCLE = {
  ClusterRequested = true, OffersSelected = true, InstanceLaunched = true, InstanceRunning = true,
  BootstrapPhase = true, InstanceReady = true, ClusterReady = true, InstanceLost = true,
  ClusterDraining = true, ClusterDestroyed = true, CostSummary = true,
}

local function _fields(ev)
  local keys = {}
  for k, v in pairs(ev) do
    if k ~= "type" and k ~= "pool" and k ~= "time" and type(v) ~= "table" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = ev[k]
    if math.type(v) == "float" then v = ("%.2f"):format(v) end
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  return table.concat(out, " ")
end

local function _line(pool)
  local st = pool._progress
  local counts = { connecting = 0, bootstrapping = 0, ready = 0 }
  for _, phase in pairs(st.nodes) do
    if phase == "ready" then counts.ready = counts.ready + 1
    elseif phase == "connecting" then counts.connecting = counts.connecting + 1
    else counts.bootstrapping = counts.bootstrapping + 1 end
  end
  st.frame = st.frame % #FRAMES + 1
  return ("%s %s: %d nodes — %d connecting, %d bootstrapping, %d ready — %.1fs")
    :format(FRAMES[st.frame], pool.name, pool.nodes, counts.connecting, counts.bootstrapping,
      counts.ready, core.now() - pool.started)
end

local function _clear()
  if #_spinning > 0 then io.stderr:write("\r\27[K") end
end

local function _redraw()
  for _, pool in ipairs(_spinning) do io.stderr:write("\r\27[K", _line(pool)) end
  io.stderr:flush()
end

local function _stop(pool)
  for i, p in ipairs(_spinning) do
    if p == pool then table.remove(_spinning, i) break end
  end
end

function M.show(pool, ev)
  local mode = pool.display
  if mode == "quiet" then return end
  if ev.type == "Log" then
    _clear()
    io.stdout:write(("[node %d] %s\n"):format(ev.node, ev.text))
    io.stdout:flush()
    _redraw()
    return
  end
  if mode == "log" and (LIFECYCLE[ev.type] or ev.type == "BootstrapConsole") then
    if ev.type == "BootstrapConsole" then
      io.stderr:write(("%s %s node %d %s| %s\n"):format(_stamp(), pool.name, ev.node, ev.phase, ev.text))
    else
      io.stderr:write(("%s %s %s %s\n"):format(_stamp(), pool.name, ev.type, _fields(ev)))
    end
  elseif mode == "spinner" then
    local st = pool._progress or { nodes = {}, frame = 0 }
    pool._progress = st
    if ev.type == "ClusterRequested" then
      _spinning[#_spinning + 1] = pool
      if not _ticking then
        -- Keep the elapsed time moving between events, for as long as some line is live.
        _ticking = true
        local sched = require "sky.sched"
        sched.spawn(function()
          while #_spinning > 0 do
            sched.await_always(core.sleep(0.1))
            _redraw()
          end
          _ticking = false
        end)
      end
    elseif ev.type == "BootstrapPhase" then
      st.nodes[ev.node] = ev.phase
    elseif ev.type == "InstanceReady" then
      st.nodes[ev.node] = "ready"
    elseif ev.type == "ClusterReady" or ev.type == "ClusterDestroyed" then
      _clear()
      _stop(pool)
      if ev.type == "ClusterReady" then
        io.stderr:write(("%s ready: %d nodes in %.1fs\n"):format(pool.name, pool.nodes, ev.seconds))
      end
      _redraw()
      return
    end
    if ev.type == "InstanceLost" then
      _clear()
      io.stderr:write(("%s lost node %d: %s\n"):format(pool.name, ev.node, ev.reason))
    end
    _redraw()
  elseif ev.type == "InstanceLost" then
    io.stderr:write(("skyhost: pool %s lost node %d: %s\n"):format(pool.name, ev.node, ev.reason))
  end
end

return M
