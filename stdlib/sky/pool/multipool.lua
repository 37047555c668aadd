-- sky.multipool{spec1, spec2, ...}: several pools provisioned at once. Each spec is what
-- sky.compute takes; every pool is started in its own task, so the whole takes about as long as
-- the slowest one, not the sum. The pools come back in spec order, in a list that closes them
-- all (`local pools <close> = sky.multipool{...}`; pools[1], pools[2], or table.unpack(pools)).
-- If one cannot start, the others are torn down (after they finished starting, since a pool is
-- never abandoned half-made) and its error is raised.
local errors = require "sky.errors"
local pool = require "sky.pool"
local sched = require "sky.internal.sched"

local M = {}

local Group = { __name = "sky.pool.multipool" }
Group.__index = Group

--- Closes every pool of the group; raises the first error after trying all.
function Group:close()
  local cleanups = errors.cleanups()
  for i = #self, 1, -1 do cleanups:run(self[i].close, self[i]) end
  cleanups:raise()
end
Group.__close = Group.close

function Group.__tostring(g)
  local names = {}
  for i, p in ipairs(g) do names[i] = p.name end
  return ("sky.multipool(%s)"):format(table.concat(names, ", "))
end

function M.multipool(specs)
  if type(specs) ~= "table" or #specs == 0 then
    errors.raise("BadArgument", ("sky.multipool: expected a list of pool specs ({ {...}, {...} }), got %s")
      :format(type(specs) == "table" and "an empty table" or type(specs)))
  end
  for i, s in ipairs(specs) do
    if type(s) ~= "table" then
      errors.raise("BadArgument", ("sky.multipool: spec %d must be a table of sky.compute options, got %s"):format(i, type(s)))
    end
  end
  local where = errors.user_site(2)
  local tasks = {}
  for i, s in ipairs(specs) do tasks[i] = sched.spawn(pool.compute, s) end
  local pools, failed = {}, nil
  for i, t in ipairs(tasks) do
    local ok, p = pcall(sched.join, t)
    if ok then
      pools[#pools + 1] = p
    elseif not failed then
      failed = { index = i, err = p }
    end
  end
  if failed then
    for j = #pools, 1, -1 do pcall(pools[j].close, pools[j]) end
    local e = failed.err
    local text = ("sky.multipool: pool %d of %d failed, the others were torn down: %s")
      :format(failed.index, #specs, errors.message(errors.is(e) and e.message or e))
    errors.raise(errors.is(e) and e.code or "PoolFailed", text, {
      where = where, index = failed.index, cause = e, attempts = errors.is(e) and e.attempts or nil,
    })
  end
  return setmetatable(pools, Group)
end

return M
