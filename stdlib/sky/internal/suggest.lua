-- Private: "did you mean" suggestions for the broker modules (accelerators, catalog, policy).
-- Not part of the public `sky` API; errors themselves are raised through sky.errors.
local M = {}

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
