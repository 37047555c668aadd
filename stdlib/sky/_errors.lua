-- Private helpers shared by the broker modules (accelerators, catalog, policy): structured errors
-- and "did you mean" suggestions. Not part of the public `sky` API.
local M = {}

local _error_mt = {
  __tostring = function(e)
    if e.source then return ("%s:%d: %s"):format(e.source, e.line or 0, e.message) end
    return e.message
  end,
}

--- Raises a structured error {code, message, source, line}. `level` counts like error()'s: 1 is
--- the function calling raise, 2 its caller (the usual choice: blame the user's line).
function M.raise(code, message, level)
  level = (level or 1) + 1
  local e = { code = code, message = message }
  -- The blamed frame may be C (pcall) or gone (a tail call); name the nearest Lua frame above.
  for l = level, level + 10 do
    local info = debug.getinfo(l, "Sl")
    if not info then break end
    if info.currentline and info.currentline > 0 then
      e.source, e.line = info.short_src, info.currentline
      break
    end
  end
  error(setmetatable(e, _error_mt), level)
end

--- Levenshtein distance between two strings (bytes). Two rows, so memory stays O(#b).
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cost = (ca == b:byte(j)) and 0 or 1
      local d = prev[j - 1] + cost
      local del, ins = prev[j] + 1, cur[j - 1] + 1
      if del < d then d = del end
      if ins < d then d = ins end
      cur[j] = d
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

local function _common_prefix(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    if a:byte(i) ~= b:byte(i) then return i - 1 end
  end
  return n
end

--- Closest candidates to `word`. `candidates` is a list of {key = <compared form>, name =
--- <shown form>}. Only the best score is returned (distance first, then the longer shared prefix),
--- so "H10" suggests H100, not A10 as well. Nothing is suggested beyond a third of the length.
function M.suggest(word, candidates, limit)
  local best, best_d, best_p, seen = {}, math.huge, -1, {}
  local max_d = math.max(2, #word // 3)
  for _, c in ipairs(candidates) do
    local d = M.distance(word, c.key)
    if d <= max_d then
      local p = _common_prefix(word, c.key)
      if d < best_d or (d == best_d and p > best_p) then
        best, best_d, best_p, seen = { c.name }, d, p, { [c.name] = true }
      elseif d == best_d and p == best_p and not seen[c.name] then
        best[#best + 1] = c.name
        seen[c.name] = true
      end
    end
  end
  table.sort(best)
  if limit and #best > limit then
    for i = #best, limit + 1, -1 do best[i] = nil end
  end
  return best
end

--- " did you mean X?" / " did you mean X or Y?" / "" — ready to append to a message.
function M.did_you_mean(names)
  if #names == 0 then return "" end
  if #names == 1 then return ": did you mean " .. names[1] .. "?" end
  return ": did you mean " .. table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names] .. "?"
end

return M
