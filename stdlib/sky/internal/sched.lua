-- The driver: runs the script and every coroutine it spawns on the one loop. Waiting code yields
-- (AWAIT, id); the driver polls the loop outside every libuv callback and resumes whoever's wait
-- completed. Code that cannot yield (the main thread, a C boundary) pumps the loop in place.
local core = require "skyhost.core"
local errors = require "sky.errors"

local M = {}

local AWAIT = setmetatable({}, { __name = "sky.await" })
local INTERRUPT = setmetatable({}, { __name = "sky.interrupt" })
local STALLED = setmetatable({}, { __name = "sky.stalled" })
local PARK = setmetatable({}, { __name = "sky.park" })

local _waiting = {}  -- wait id -> coroutine
local _waits_of = {} -- coroutine -> { id, timer }: what it waits for
local _done = {}     -- completed wait ids nobody had awaited yet
local _dropped = {}  -- wait ids nobody awaits any more (the loser of a timeout race)
local _ready = {}    -- { co, value } to resume
local _local_done = {}  -- ids completed from Lua (negative), delivered at the next step
local _last_local = 0
local _live = {}     -- managed coroutine -> its Task
local _parked = {}   -- coroutines stopped at a wait after an interrupt; closed after the run
local _interrupts_seen = 0
local _stopping = false  -- an interrupt was delivered: a later wait stops its coroutine
local _signal = 0        -- the signal behind it (SIGINT 2, SIGTERM 15)
local _event_sink = function() end

M.tearing_down = false

--- A wait id completed from Lua rather than by the loop.
function M.new_wait()
  _last_local = _last_local - 1
  return _last_local
end

function M.complete(id)
  _local_done[#_local_done + 1] = id
end

--- Called with the list of events after each poll (set by sky.events).
function M.set_event_sink(fn) _event_sink = fn end

-- `id` will not be awaited any more: drop its completion, and stop it if it is a timer.
local function _abandon(id)
  if id == nil then return end
  if _done[id] then
    _done[id] = nil
  elseif not core.cancel(id) then
    _dropped[id] = true
  end
end

-- Takes `co` off every wait it had; `won` is the one that completed (not abandoned).
local function _unwait(co, won)
  local w = _waits_of[co]
  if not w then return end
  _waits_of[co] = nil
  for i = 1, 2 do
    local id = w[i]
    if id ~= nil then
      _waiting[id] = nil
      if id ~= won then _abandon(id) end
    end
  end
end

local function _deliver(ids)
  for i = 1, #ids do
    local id = ids[i]
    local co = _waiting[id]
    if co then
      _unwait(co, id)
      _ready[#_ready + 1] = { co, id }
    elseif _dropped[id] then
      _dropped[id] = nil
    else
      _done[id] = true
    end
  end
end

-- Wakes every waiting coroutine with `value` (INTERRUPT or STALLED).
local function _wake_all(value)
  local cos = {}
  for _, co in pairs(_waiting) do cos[co] = true end
  for co in pairs(cos) do
    _unwait(co)
    _ready[#_ready + 1] = { co, value }
  end
end

local function _interrupted()
  local n, sig = core.interrupts()
  if n > _interrupts_seen and not M.tearing_down then
    _interrupts_seen = n
    _stopping = true
    _signal = sig ~= 0 and sig or 2
    return true
  end
  return false
end

local function _finish(task, ok, ...)
  if not task then return end  -- teardown let go of it (the coroutine that is tearing down)
  task.done = true
  _live[task.co] = nil
  if ok then
    task.results = table.pack(...)
  else
    task.err = (...)
    task.traceback = select(2, ...) or debug.traceback(task.co, errors.message(task.err))
  end
  M.complete(task.wait)
end

-- A coroutine died of an error. An error does not unwind a coroutine: close it now, before its
-- task is told, so that its <close> variables run while the error unwinds (a pool it opened
-- closes, the tasks it waited for are cancelled). An error raised by one of them replaces the
-- original, as in plain Lua, unless both are the same interrupt.
local function _fail(task, co, err)
  local trace = debug.traceback(co, errors.message(err))
  -- close returns the coroutine's own error again unless a <close> handler raised another
  local closed, close_err = coroutine.close(co)
  if not closed and not rawequal(close_err, err)
    and not (errors.is(close_err, "Interrupted") and errors.is(err, "Interrupted")) then
    err, trace = close_err, errors.message(close_err)
  end
  _finish(task, false, err, trace)
end

local function _resume(co, value)
  local task = _live[co]
  local r = table.pack(core.resume(co, value))
  if not r[1] then
    _fail(task, co, r[2])
  elseif coroutine.status(co) == "dead" then
    _finish(task, true, table.unpack(r, 2, r.n))
  elseif r[2] == AWAIT and r[3] == PARK then
    -- Waiting again after an interrupt (its first Interrupted error was caught): the coroutine
    -- ends here, whatever its pcalls would do. Its <close> variables run when it is closed.
    _parked[co] = true
    _finish(task, false, errors.interrupted())
  elseif r[2] == AWAIT then
    local id, timer = r[3], r[4]
    if _done[id] then
      _done[id] = nil
      _abandon(timer)
      _ready[#_ready + 1] = { co, id }
    else
      _waiting[id] = co
      if timer then _waiting[timer] = co end
      _waits_of[co] = { id, timer }
    end
  else
    _finish(task, false, errors.new("YieldOutsideCoroutine",
      "coroutine.yield reached the top of a sky task; yield inside a coroutine you resume"))
  end
end

local function _stalled_error()
  return errors.new("Stalled", "waiting for something that can no longer happen "
    .. "(nothing is running that could complete it)")
end

--- One turn of the loop: poll (blocking if nothing is ready), deliver events, resume.
function M.step(block)
  local blocking = block and #_ready == 0 and #_local_done == 0
  local ids, stalled = core.poll(blocking)
  if #_local_done > 0 then
    local l = _local_done
    _local_done = {}
    _deliver(l)
  end
  _deliver(ids)
  if _interrupted() then
    -- Every waiting coroutine wakes up to an Interrupted error; <close> variables unwind.
    _wake_all(INTERRUPT)
  elseif stalled and #ids == 0 and #_ready == 0 and #_local_done == 0 then
    -- Nothing in the loop can complete a wait any more (every worker is gone, say): fail the
    -- waits rather than spin.
    M.stalled = true
    _wake_all(STALLED)
  end
  local events = core.take_events()
  if #events > 0 then _event_sink(events) end
  local batch = _ready
  _ready = {}
  for i = 1, #batch do _resume(batch[i][1], batch[i][2]) end
end

-- Pumps the loop here until `id` or `timer` completes; returns the one that did.
local function _pump(id, timer, always)
  while true do
    if _done[id] then
      _done[id] = nil
      _abandon(timer)
      return id
    end
    if timer and _done[timer] then
      _done[timer] = nil
      _abandon(id)
      return timer
    end
    local seen = _interrupts_seen
    M.stalled = false
    M.step(true)
    if (_interrupts_seen ~= seen and not always and not M.tearing_down) or M.stalled then
      _abandon(id)
      _abandon(timer)
      error(M.stalled and _stalled_error() or errors.interrupted(), 0)
    end
  end
end

local function _await(id, timeout, always)
  if _done[id] then
    _done[id] = nil
    return true
  end
  if _stopping and not always and not M.tearing_down then
    -- A managed coroutine stops here for good; code that cannot yield gets the error.
    if coroutine.isyieldable() then coroutine.yield(AWAIT, PARK) end
    error(errors.interrupted(), 0)
  end
  local timer
  if timeout ~= nil then
    if timeout <= 0 then return false end
    timer = core.sleep(timeout)
  end
  local got
  -- A managed coroutine yields to the driver; one the script resumes itself passes the wait
  -- up through its resumer (the coroutine.resume wrapper below).
  if coroutine.isyieldable() then
    got = coroutine.yield(AWAIT, id, timer)
    if got == INTERRUPT then error(errors.interrupted(), 0) end
    if got == STALLED then error(_stalled_error(), 0) end
  else
    got = _pump(id, timer, always)
  end
  return got == id
end

--- Waits until wait `id` completes or `timeout` seconds pass (nil: no limit). Returns true if
--- it completed, false on timeout. Yields if it can, else pumps the loop here. After an
--- interrupt, a coroutine that waits again is stopped at that wait (see _resume).
function M.await(id, timeout) return _await(id, timeout, false) end

--- The same for cleanup that must run even after an interrupt (closing a pool, redrawing a
--- progress line). Only for waits that end by themselves or have a timeout.
function M.await_always(id, timeout) return _await(id, timeout, true) end

--- Runs fn(...) with every wait in it as await_always, and returns what it returns: cleanup
--- that must finish after an interrupt, such as closing a pool (its machines terminated and
--- confirmed) from a <close> variable while the interrupt unwinds the script.
function M.shielded(fn, ...)
  local was = M.tearing_down
  M.tearing_down = true
  local r = table.pack(pcall(fn, ...))
  M.tearing_down = was
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

--- The signal that interrupted the script (2 or 15), or nil.
function M.interrupt_signal() return _stopping and _signal or nil end

--- Forgets interrupts so far (the REPL, before each entry).
function M.reset_interrupts()
  _interrupts_seen = core.interrupts()
  _stopping = false
  _signal = 0
end

-- Closes coroutines parked after an interrupt: their <close> variables run now.
local function _close_parked()
  local cos = _parked
  _parked = {}
  for co in pairs(cos) do
    if coroutine.status(co) == "suspended" then coroutine.close(co) end
  end
end

--- Runs `fn(...)` as a new coroutine on the loop; returns its Task.
function M.spawn(fn, ...)
  local args = table.pack(...)
  local co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  local task = { co = co, wait = M.new_wait(), done = false }
  _live[co] = task
  _ready[#_ready + 1] = { co }
  return task
end

--- Waits for a Task and returns its results, or raises its error.
function M.join(task)
  if not task.done then M.await(task.wait) end
  if task.err ~= nil then error(task.err, 0) end
  return table.unpack(task.results, 1, task.results.n)
end

--- Runs fn(...) on the driver until it finishes. Returns true, results... or false, error,
--- traceback. Pools it opened stay open (the REPL keeps them across lines).
function M.run(fn, ...)
  local task = M.spawn(fn, ...)
  while not task.done do M.step(true) end
  -- A signal only the hook saw (script code that never waited caught its error) still counts.
  _interrupted()
  _close_parked()
  if task.err ~= nil then return false, task.err, task.traceback end
  return true, table.unpack(task.results, 1, task.results.n)
end

--- Runs the script's main function, then tears down whatever it left behind.
function M.main(fn, ...)
  local r = table.pack(M.run(fn, ...))
  M.teardown()
  return table.unpack(r, 1, r.n)
end

local _at_teardown = {}  -- what else teardown ends, in registration order (pools: sky.pool)

--- Has teardown call fn() after closing the coroutines (sky.pool closes the pools left open).
function M.at_teardown(fn) _at_teardown[#_at_teardown + 1] = fn end

--- Closes every coroutine still suspended (running its <close> variables), then runs what was
--- registered with at_teardown (every open pool is closed).
function M.teardown()
  M.tearing_down = true
  core.set_teardown(true)
  for co in pairs(_live) do
    _live[co] = nil
    if coroutine.status(co) == "suspended" then coroutine.close(co) end
  end
  _close_parked()
  _waiting, _waits_of = {}, {}
  for _, fn in ipairs(_at_teardown) do pcall(fn) end
  M.tearing_down = false
  core.set_teardown(false)
end

-- Script-made coroutines: a wait inside one is passed up to whoever resumes it, so `>>` works
-- in any coroutine; the coroutine simply stays blocked until the result arrives.
local raw_resume = coroutine.resume

local function _resume_through(co, ...)
  local r = table.pack(raw_resume(co, ...))
  while r[1] and r[2] == AWAIT and coroutine.status(co) == "suspended" do
    local value
    if coroutine.isyieldable() then
      value = coroutine.yield(AWAIT, r[3], r[4])
    elseif r[3] == PARK then
      value = INTERRUPT
    else
      local ok, got = pcall(_pump, r[3], r[4], false)
      value = ok and got or (errors.is(got, "Stalled") and STALLED or INTERRUPT)
    end
    r = table.pack(raw_resume(co, value))
  end
  return table.unpack(r, 1, r.n)
end

--- Globals the script sees differently under skyhost: coroutine.resume/wrap pass waits up, and
--- os.exit tears the pools down before the process ends.
function M.install_globals(env)
  local raw_exit = env.os.exit
  env.os.exit = function(...)
    M.teardown()
    return raw_exit(...)
  end
  env.coroutine.resume = _resume_through
  env.coroutine.wrap = function(fn)
    local co = coroutine.create(fn)
    return function(...)
      local r = table.pack(_resume_through(co, ...))
      if not r[1] then error(r[2], 0) end
      return table.unpack(r, 2, r.n)
    end
  end
end

return M
