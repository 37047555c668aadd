-- How a pool shows its progress. "spinner": one live line per pool on a terminal (nodes
-- connecting / bootstrapping / ready, elapsed). "log": timestamped lifecycle events on stderr.
-- "quiet": nothing. "auto" (the default): the spinner on a terminal, else only what workers print.
-- Worker output ([node N] text) is shown in every mode but quiet: stdout lines on stdout, stderr
-- lines on stderr. Node metrics: a line per node in "log" mode when they change; in the spinner.
local core = require "skyhost.core"
local sched = require "sky.internal.sched"

local M = {}

local FRAMES = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }
local _spinning = {}  -- pools with a live line, in order
local _ticking = false

local function _stamp()
  local t = core.time()
  return os.date("%H:%M:%S", math.floor(t)) .. (".%03d"):format(math.floor((t % 1) * 1000))
end

-- What the display keeps per pool (not in the pool, which only pool.lua writes): the latest
-- metrics per node, the metrics lines shown, the spinner's node phases and frame.
local _of_pool = setmetatable({}, { __mode = "k" })
local function _state(pool)
  local st = _of_pool[pool]
  if not st then
    st = { metrics = nil, shown = {}, progress = nil }
    _of_pool[pool] = st
  end
  return st
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
  ClusterDraining = true, ClusterDestroyed = true, CostSummary = true, JobPending = true,
  InstanceReplaced = true, ReplaceFailed = true,
}

-- A line about a lost node's replacement (replace = true), or nil.
local function _replacement(pool, ev)
  if ev.type == "InstanceReplaced" then
    return ("%s replaced node %d (%s) by node %d (%s)"):format(pool.name, ev.node,
      tostring(ev.old_instance), ev.new_node, tostring(ev.new_instance))
  elseif ev.type == "ReplaceFailed" then
    return ("%s could not replace node %d: %s"):format(pool.name, ev.node, ev.reason)
  end
end

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
  local st = _state(pool).progress
  local counts = { connecting = 0, bootstrapping = 0, ready = 0 }
  for _, phase in pairs(st.nodes) do
    if phase == "ready" then counts.ready = counts.ready + 1
    elseif phase == "connecting" then counts.connecting = counts.connecting + 1
    else counts.bootstrapping = counts.bootstrapping + 1 end
  end
  st.frame = st.frame % #FRAMES + 1
  local line = ("%s %s: %s — %d connecting, %d bootstrapping, %d ready — %.1fs")
    :format(FRAMES[st.frame], pool.name, M.plural(pool.nodes, "node"), counts.connecting,
      counts.bootstrapping, counts.ready, core.now() - pool.started)
  if st.pending and counts.ready == 0 and next(st.nodes) == nil then line = line .. " — " .. st.pending end
  local m = M.metrics_summary(pool)
  return m and (line .. " — " .. m) or line
end

--- One node's latest metrics, compactly: "cpu 12% mem 3.1 GB load 0.52 gpu0 80% 30.1 GB".
function M.node_metrics(values)
  local parts = {}
  if values.cpu then parts[#parts + 1] = ("cpu %.0f%%"):format(values.cpu) end
  if values.memory then parts[#parts + 1] = ("mem %.1f GB"):format(values.memory) end
  if values.load then parts[#parts + 1] = ("load %.2f"):format(values.load) end
  for i = 0, 63 do
    local u = values[("gpu%d.util"):format(i)]
    if u == nil then break end
    parts[#parts + 1] = ("gpu%d %.0f%% %.1f GB"):format(i, u, values[("gpu%d.memory"):format(i)] or 0)
  end
  return table.concat(parts, " ")
end

--- The pool's nodes together (mean cpu, total memory), or nil before any metric came.
function M.metrics_summary(pool)
  local per = _state(pool).metrics
  if not per then return nil end
  local n, cpu, mem = 0, 0, 0
  for _, v in pairs(per) do
    n, cpu, mem = n + 1, cpu + (v.cpu or 0), mem + (v.memory or 0)
  end
  if n == 0 then return nil end
  return ("cpu %.0f%% mem %.1f GB"):format(cpu / n, mem)
end

local _metrics_changed = {}  -- pool -> {node = true}

--- After each batch of events: in "log" mode, a line per node whose metrics changed (all of a
--- sample arrive in one batch).
function M.after_events()
  for pool, nodes in pairs(_metrics_changed) do
    local sorted = {}
    for n in pairs(nodes) do sorted[#sorted + 1] = n end
    table.sort(sorted)
    local shown = _state(pool).shown
    for _, n in ipairs(sorted) do
      local text = M.node_metrics(_state(pool).metrics[n])
      if text ~= shown[n] then
        shown[n] = text
        io.stderr:write(("%s %s node %d %s\n"):format(_stamp(), pool.name, n, text))
      end
    end
  end
  _metrics_changed = {}
end

--- "1 node", "3 nodes".
function M.plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

local function _duration(s)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, math.floor(s % 60)) end
  return ("%.1fs"):format(s)
end

--- A running batch's progress as text: "map 523/2000 done, 1 failed, 850/s, ETA 1.8s", or with
--- `final`, "map 2000/2000 done, 0 failed in 2.4s (851/s)".
function M.progress_text(what, total, finished, failed, elapsed, final)
  local rate = elapsed > 0 and finished / elapsed or 0
  local head = ("%s %d/%d done, %d failed"):format(what, finished, total, failed)
  if final then return ("%s in %s (%.0f/s)"):format(head, _duration(elapsed), rate) end
  local eta = rate > 0 and (", ETA " .. _duration((total - finished) / rate)) or ""
  return ("%s, %.0f/s%s"):format(head, rate, eta)
end

local _bars = {}  -- running batches shown with their progress: { pool, info, logged, frame }

local function _bar_text(bar, final)
  local ok, total, finished, failed = pcall(bar.info.poll)
  if not ok then return bar.info.what end  -- its pool is gone
  return M.progress_text(bar.info.what, total, finished, failed, core.now() - bar.info.started, final)
end

local _live = false  -- a live line is on the terminal, to clear before printing anything else

local function _clear()
  if _live then io.stderr:write("\r\27[K") end
  _live = false
end

local function _redraw()
  for _, pool in ipairs(_spinning) do
    io.stderr:write("\r\27[K", _line(pool))
    _live = true
  end
  if #_spinning == 0 then
    for _, bar in pairs(_bars) do
      if bar.pool.display == "spinner" then
        bar.frame = bar.frame % #FRAMES + 1
        local m = M.metrics_summary(bar.pool)  -- the nodes' load beside the batch's progress
        io.stderr:write("\r\27[K", ("%s %s: %s%s"):format(FRAMES[bar.frame], bar.pool.name,
          _bar_text(bar), m and (" — " .. m) or ""))
        _live = true
      end
    end
  end
  io.stderr:flush()
end

local LOG_EVERY = 2  -- seconds between progress lines in "log" mode

local function _tick()
  _redraw()
  local now = core.now()
  for _, bar in pairs(_bars) do
    if bar.pool.display == "log" and now - bar.logged >= LOG_EVERY then
      bar.logged = now
      io.stderr:write(("%s %s %s\n"):format(_stamp(), bar.pool.name, _bar_text(bar)))
    end
  end
end

-- Keeps the elapsed time and progress moving between events, while some line is live.
local function _ensure_ticking()
  if _ticking then return end
  _ticking = true
  sched.spawn(function()
    while #_spinning > 0 or next(_bars) do
      sched.await_always(core.sleep(0.1))
      _tick()
    end
    _ticking = false
  end)
end

local function _stop(pool)
  for i, p in ipairs(_spinning) do
    if p == pool then table.remove(_spinning, i) break end
  end
end

--- A batch of `pool` started (info = {what, total, started, poll}) or ended (info = nil).
function M.progress(pool, batch, info)
  local mode = pool.display
  if mode ~= "spinner" and mode ~= "log" then return end
  local key = pool.id .. ":" .. batch
  if info then
    _bars[key] = { pool = pool, info = info, logged = core.now(), frame = 0 }
    _ensure_ticking()
    return
  end
  local bar = _bars[key]
  if not bar then return end
  _clear()
  _bars[key] = nil
  if mode == "log" then
    io.stderr:write(("%s %s %s\n"):format(_stamp(), pool.name, _bar_text(bar, true)))
  end
  _redraw()
end

function M.show(pool, ev)
  local mode = pool.display
  if ev.type == "Metric" then
    local ds = _state(pool)
    ds.metrics = ds.metrics or {}
    local per = ds.metrics[ev.node] or {}
    ds.metrics[ev.node] = per
    per[ev.name] = ev.value
    if mode == "log" then
      _metrics_changed[pool] = _metrics_changed[pool] or {}
      _metrics_changed[pool][ev.node] = true
    end
    return
  end
  if mode == "quiet" then return end
  if ev.type == "Log" then
    _clear()
    local out = ev.stream == "stderr" and io.stderr or io.stdout
    out:write(("[node %d] %s\n"):format(ev.node, ev.text))
    out:flush()
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
    local ds = _state(pool)
    local st = ds.progress or { nodes = {}, frame = 0 }
    ds.progress = st
    if ev.type == "ClusterRequested" then
      _spinning[#_spinning + 1] = pool
      _ensure_ticking()
    elseif ev.type == "BootstrapPhase" then
      st.nodes[ev.node] = ev.phase
    elseif ev.type == "JobPending" then
      st.pending = ("job %s pending: %s"):format(ev.job, ev.reason)
    elseif ev.type == "InstanceReady" then
      st.nodes[ev.node] = "ready"
    elseif ev.type == "ClusterReady" or ev.type == "ClusterDestroyed" then
      _clear()
      _stop(pool)
      if ev.type == "ClusterReady" then
        io.stderr:write(("%s ready: %s in %.1fs\n"):format(pool.name, M.plural(pool.nodes, "node"), ev.seconds))
      end
      _redraw()
      return
    end
    local line = _replacement(pool, ev)
    if ev.type == "InstanceLost" then line = ("%s lost node %d: %s"):format(pool.name, ev.node, ev.reason) end
    if line then
      _clear()
      io.stderr:write(line, "\n")
    end
    _redraw()
  elseif ev.type == "InstanceLost" then
    io.stderr:write(("skyhost: pool %s lost node %d: %s\n"):format(pool.name, ev.node, ev.reason))
  elseif _replacement(pool, ev) then
    io.stderr:write("skyhost: pool ", _replacement(pool, ev), "\n")
  end
end

return M
