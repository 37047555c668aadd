-- Private: lists whose elements are computed on first access.
--
-- The broker reads an ordered offer or attempt list from the front and usually stops at the
-- first entry that provisions; building all 10,000 entries up front would cost more than the
-- choice itself. A lazy list behaves like a plain table for Lua code: t[i], #t, ipairs, pairs,
-- table.insert / sort / concat / unpack all work, since Lua 5.4 honours __index, __len and
-- __pairs there. Anything that needs the whole list (pairs, #t when the length is not known
-- yet, assigning into it) computes the rest and turns it into a plain table (metatable removed).
-- C code must read it with lua_geti, not lua_rawgeti (or call M.materialize first).
local M = {}

--- A lazy list. `fill(t, i)` must rawset t[1..i] (fewer if the list ends sooner; math.huge means
--- everything) and return true once the list is complete. `n` is the final length if known.
function M.list(fill, n)
  local done = false
  local mt = {}
  local function finish(t)
    if not done then
      fill(t, math.huge)
      done = true
      setmetatable(t, nil)
    end
  end
  mt.__index = function(t, k)
    if done or math.type(k) ~= "integer" or k < 1 or (n and k > n) then return nil end
    if fill(t, k) then
      done = true
      setmetatable(t, nil)
    end
    return rawget(t, k)
  end
  mt.__len = function(t)
    if n then return n end
    finish(t)
    return rawlen(t)
  end
  mt.__pairs = function(t)
    finish(t)
    return next, t, nil
  end
  mt.__newindex = function(t, k, v)
    finish(t)
    rawset(t, k, v)
  end
  mt.__name = "sky.lazy_list"
  return setmetatable({}, mt)
end

--- Computes every element now; returns the list, a plain table from then on.
function M.materialize(t)
  local mt = getmetatable(t)
  if mt and mt.__name == "sky.lazy_list" then mt.__pairs(t) end
  return t
end

return M
