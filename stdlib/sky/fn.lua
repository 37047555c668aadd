-- Remote-able functions and the tasks they make. Calling a sky.fn runs nothing: it captures the
-- function with its upvalues (by value, at call time) and the arguments into a Pending task,
-- which `>>` sends to a pool. `&` and sky.gather group tasks to run in parallel.
local core = require "skyhost.core"
local errors = require "sky.errors"
local options = require "sky.options"

local M = {}

local Fn, Pending, Group = {}, {}, {}
Fn.__name, Pending.__name, Group.__name = "sky.fn", "sky.pending", "sky.group"

local function _pool_check(pool, op)
  if type(pool) ~= "table" or type(pool.dispatch) ~= "function" then
    errors.raise("BadPool", ("right side of %s must be a pool (sky.compute{...}), got %s")
      :format(op, type(pool)))
  end
end

--- Wraps `f` so that calling it makes a Pending task. opts: {timeout = seconds a task of it
--- may run}.
function M.fn(f, opts)
  if type(f) ~= "function" then
    errors.raise("BadArgument", ("sky.fn: expected a function, got %s"):format(type(f)))
  end
  opts = options.check("sky.fn", opts, { timeout = "number" })
  options.seconds("sky.fn", "timeout", opts.timeout)
  local info = debug.getinfo(f, "S")
  local self = setmetatable({
    f = f,
    name = ("%s:%d"):format(info.short_src, info.linedefined),
    timeout = opts.timeout,
  }, Fn)
  --- Runs the function here, in this process, with the same arguments a task would get.
  self.local_call = function(...) return f(...) end
  return self
end

-- Metatables of other remote-able functions (sky.plugin): pool:map takes them as it takes a
-- sky.fn, and calling one makes a Pending through M.pending.
local _kinds = {}
function M.register_kind(mt) _kinds[mt] = true end

function M.is_fn(v)
  local mt = getmetatable(v)
  return mt == Fn or (mt ~= nil and _kinds[mt] == true)
end
function M.is_pending(v) return getmetatable(v) == Pending end
function M.is_group(v) return getmetatable(v) == Group end

function Fn.__call(self, ...)
  local ok, bytes = pcall(core.capture, self.f)
  if not ok then
    errors.raise("CannotSend", errors.message(bytes))
  end
  return setmetatable({ fn = self, closure = bytes, args = table.pack(...) }, Pending)
end

--- A pending task of a remote-able function: `closure` is what the worker runs (a Def body).
function M.pending(fn, closure, args)
  return setmetatable({ fn = fn, closure = closure, args = args }, Pending)
end

function Fn.__tostring(self) return "sky.fn(" .. self.name .. ")" end

--- The error for `x >> pool` when x is not a pending task: what to write instead.
function M.not_pending(x, op)
  if getmetatable(x) == Fn then
    errors.raise("BadArgument", ("left side of %s is a sky.fn that was not called: write "
      .. "f(args) %s pool (the call makes the task)"):format(op, op))
  end
  errors.raise("BadArgument", ("left side of %s must be a pending task, such as f(x) %s pool "
    .. "with f = sky.fn(function(x) ... end); got %s"):format(op, op, type(x)))
end

-- `f >> pool` with f not called.
function Fn.__shr(f, pool)
  if getmetatable(f) == Fn then M.not_pending(f, ">>") end
  errors.raise("BadPool", ("right side of >> must be a pool (sky.compute{...}), got %s"):format(type(pool)))
end

-- `pending >> pool`: the task's first return value (Lua keeps one value of an operator);
-- pool:run(pending) returns all of them.
function Pending.__shr(p, pool)
  _pool_check(pool, ">>")
  return (pool:dispatch({ p }, "first"))
end

function Pending.__band(a, b)
  local tasks = {}
  for _, x in ipairs({ a, b }) do
    if getmetatable(x) == Pending then
      tasks[#tasks + 1] = x
    elseif getmetatable(x) == Group then
      for _, t in ipairs(x.tasks) do tasks[#tasks + 1] = t end
    else
      errors.raise("BadArgument", ("'&' combines pending tasks, got %s"):format(type(x)))
    end
  end
  return setmetatable({ tasks = tasks }, Group)
end

function Pending.__tostring(p) return "sky.pending(" .. p.fn.name .. ")" end

Group.__band = Pending.__band

-- `group >> pool`: a list with each task's first return value, in order.
function Group.__shr(g, pool)
  _pool_check(pool, ">>")
  return pool:dispatch(g.tasks, "list")
end

function Group.__len(g) return #g.tasks end
function Group.__tostring(g) return ("sky.group(%d tasks)"):format(#g.tasks) end

--- sky.gather(p1, ..., pn) or sky.gather{p1, ..., pn}: a group of any size.
function M.gather(...)
  local list = table.pack(...)
  if list.n == 1 and type(list[1]) == "table" and getmetatable(list[1]) == nil then
    list = list[1]
    list.n = #list
  end
  local tasks = {}
  for i = 1, list.n do
    if getmetatable(list[i]) ~= Pending then
      errors.raise("BadArgument", ("sky.gather: argument %d is not a pending task (got %s)")
        :format(i, type(list[i])))
    end
    tasks[i] = list[i]
  end
  return setmetatable({ tasks = tasks }, Group)
end

return M
