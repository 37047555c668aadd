-- The scoped form of a pool: sky.pool{...}(main) returns a function that provisions the pool,
-- runs main(...) with it as the *current pool*, and tears it down when main returns or raises.
-- `task >> sky`, sky.run, sky.broadcast and sky.map use the current pool. The current pool
-- belongs to a coroutine: the one running main, and those it starts with sky.spawn (they get
-- the pool current when they were spawned), so scoped pools in two coroutines never mix.
local errors = require "sky.errors"
local pool = require "sky.pool"

local M = {}

local _stacks = setmetatable({}, { __mode = "k" })  -- coroutine -> list of its pools, innermost last

--- The current pool of the running coroutine, or nil.
function M.current()
  local stack = _stacks[coroutine.running()]
  return stack and stack[#stack] or nil
end

--- The current pool; raises NoPool, saying how to get one, if there is none.
function M.current_or_raise(what, pool_form)
  local p = M.current()
  if p then return p end
  errors.raise("NoPool", ("%s: no current pool. Run this inside a scoped pool, "
    .. "sky.pool{...}(function() ... end)(), or open one and name it: "
    .. "local pool <close> = sky.compute{...}; %s"):format(what, pool_form))
end

--- Gives coroutine `co` (just made by sky.spawn) the caller's current pool.
function M.inherit(co)
  local p = M.current()
  if p then _stacks[co] = { p } end
end

local function _push(co, p)
  local stack = _stacks[co]
  if not stack then
    stack = {}
    _stacks[co] = stack
  end
  stack[#stack + 1] = p
  return setmetatable({}, {
    __close = function()
      for i = #stack, 1, -1 do
        if stack[i] == p then
          table.remove(stack, i)
          break
        end
      end
      if #stack == 0 and _stacks[co] == stack then _stacks[co] = nil end
    end,
  })
end

--- sky.pool{...}: a function of one argument, main, returning the scoped form of main.
function M.pool(opts)
  if opts ~= nil and type(opts) ~= "table" then
    errors.raise("BadOption", ("sky.pool: expected a table of options, got %s"):format(type(opts)))
  end
  local spec = {}
  for k, v in pairs(opts or {}) do spec[k] = v end
  pool.check_options(spec)  -- a wrong option fails here, not at the first call
  return function(main)
    local mt = getmetatable(main)
    if type(main) ~= "function" and not (mt and mt.__call) then
      errors.raise("BadArgument", ("sky.pool{...}(main): expected a function, got %s"):format(type(main)))
    end
    return function(...)
      local p <close> = pool.compute(spec)
      local _ <close> = _push(coroutine.running(), p)
      return main(...)
    end
  end
end

-- The module functions that use the current pool, exactly as the pool's own methods.

function M.run(task)
  return M.current_or_raise("sky.run", "pool:run(task)"):run(task)
end

function M.broadcast(task)
  return M.current_or_raise("sky.broadcast", "pool:broadcast(task)"):broadcast(task)
end

function M.map(fn, items, opts)
  return M.current_or_raise("sky.map", "pool:map(fn, items)"):map(fn, items, opts)
end

--- `task >> sky`: sky stands in for the current pool (sky.fn's `>>` calls this).
function M.dispatch(_, tasks, mode, pins)
  return M.current_or_raise("task >> sky", "task >> pool"):dispatch(tasks, mode, pins)
end

return M
