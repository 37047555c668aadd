-- The driver: runs the script and every coroutine it spawns on the one loop. Waiting code yields
-- (AWAIT, id); the driver polls the loop outside every libuv callback and resumes whoever's wait
-- completed. Code that cannot yield (the main thread, a C boundary) pumps the loop in place.
local core = require "skyhost.core"
local errors = require "sky.errors"

local M = {}

local AWAIT = setmetatable({}, { __name = "sky.await" })
local INTERRUPT = setmetatable({}, { __name = "sky.interrupt" })

local _waiting = {}  -- wait id -> coroutine
local _done = {}     -- completed wait ids nobody had awaited yet
local _ready = {}    -- { co, value } to resume
local _local_done = {}  -- ids completed from Lua (negative), delivered at the next step
local _last_local = 0
local _live = {}     -- managed coroutine -> its Task
local _interrupts_seen = 0
local _interrupt_epoch = 0  -- interrupts delivered so far (a pump raises only for newer ones)
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

local function _deliver(ids)
  for i = 1, #ids do
    local id = ids[i]
    local co = _waiting[id]
    if co then
      _waiting[id] = nil
      _ready[#_ready + 1] = { co }
    else
      _done[id] = true
    end
  end
end

local function _interrupted()
  local n = core.interrupts()
  if n > _interrupts_seen and not M.tearing_down then
    _interrupts_seen = n
    return true
  end
  return false
end

local function _finish(task, ok, ...)
  task.done = true
  _live[task.co] = nil
  if ok then
    task.results = table.pack(...)
  else
    task.err = (...)
    task.traceback = debug.traceback(task.co, errors.message(task.err))
    -- Lua leaves the <close> variables of a coroutine that died of an error pending until it
    -- is closed: close it now, so the script's own cleanups run while the error unwinds (an
    -- error raised by one of them replaces the original, as in plain Lua).
    local closed, err = coroutine.close(task.co)
    if not closed and not (errors.is(err, "Interrupted") and errors.is(task.err, "Interrupted")) then
      task.err = err
    end
  end
  M.complete(task.wait)
end

local function _resume(co, value)
  local task = _live[co]
  local r = table.pack(core.resume(co, value))
  if not r[1] then
    _finish(task, false, r[2])
  elseif coroutine.status(co) == "dead" then
    _finish(task, true, table.unpack(r, 2, r.n))
  elseif r[2] == AWAIT then
    local id = r[3]
    if _done[id] then
      _done[id] = nil
      _ready[#_ready + 1] = { co }
    else
      _waiting[id] = co
    end
  else
    _finish(task, false, errors.new("YieldOutsideCoroutine",
      "coroutine.yield reached the top of a sky task; yield inside a coroutine you resume"))
  end
end

--- One turn of the loop: poll (blocking if nothing is ready), deliver events, resume.
function M.step(block)
  local ids = core.poll(block and #_ready == 0 and #_local_done == 0)
  if #_local_done > 0 then
    local l = _local_done
    _local_done = {}
    _deliver(l)
  end
  _deliver(ids)
  if _interrupted() then
    -- Every waiting coroutine wakes up to an Interrupted error; <close> variables unwind.
    for id, co in pairs(_waiting) do
      _waiting[id] = nil
      _ready[#_ready + 1] = { co, INTERRUPT }
    end
    _interrupt_epoch = _interrupt_epoch + 1
  end
  local events = core.take_events()
  if #events > 0 then _event_sink(events) end
  local batch = _ready
  _ready = {}
  for i = 1, #batch do _resume(batch[i][1], batch[i][2]) end
end

--- Waits until wait `id` completes. Yields if it can, else pumps the loop here.
function M.await(id)
  if _done[id] then
    _done[id] = nil
    return
  end
  -- A managed coroutine yields to the driver; one the script resumes itself passes the wait
  -- up through its resumer (the coroutine.resume wrapper below).
  if coroutine.isyieldable() then
    if coroutine.yield(AWAIT, id) == INTERRUPT then error(errors.interrupted(), 0) end
    return
  end
  -- Only an interrupt that arrives while this pump waits stops it: a cleanup that waits while
  -- an earlier interrupt unwinds (a pool closed by a <close> variable) must run to its end.
  local epoch = _interrupt_epoch
  while not _done[id] do
    M.step(true)
    if _interrupt_epoch ~= epoch and not M.tearing_down then error(errors.interrupted(), 0) end
  end
  _done[id] = nil
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
  if task.err ~= nil then return false, task.err, task.traceback end
  return true, table.unpack(task.results, 1, task.results.n)
end

--- Runs the script's main function, then tears down whatever it left behind.
function M.main(fn, ...)
  local r = table.pack(M.run(fn, ...))
  M.teardown()
  return table.unpack(r, 1, r.n)
end

--- Closes every coroutine still suspended (running its <close> variables) and every open pool.
function M.teardown()
  M.tearing_down = true
  core.set_teardown(true)
  for co in pairs(_live) do
    _live[co] = nil
    if coroutine.status(co) == "suspended" then coroutine.close(co) end
  end
  _waiting = {}
  require("sky.pool").close_all()
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
      value = coroutine.yield(AWAIT, r[3])
    else
      M.await(r[3])
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
