-- Option tables checked against a schema: an unknown key names itself and lists the valid
-- ones; a wrong type names the key, the expected and the given type.
local errors = require "sky.errors"

local M = {}

local function _type_of(v)
  local t = type(v)
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  return t
end

local function _accepts(expected, v)
  local t = _type_of(v)
  for want in expected:gmatch("[^|]+") do
    if want == t or (want == "number" and t == "integer") then return true end
    if want == "callable" and (t == "function" or (getmetatable(v) or {}).__call) then
      return true
    end
  end
  return false
end

--- Checks `opts` against `schema` ({key = "type|type"}); `what` names the call in messages.
--- Returns opts (or {} for nil); raises a structured BadOption error blamed on the caller.
function M.check(what, opts, schema)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("BadOption", ("%s: expected a table of options, got %s"):format(what, type(opts)))
  end
  for k, v in pairs(opts) do
    local expected = schema[k]
    if expected == nil then
      local valid = {}
      for name in pairs(schema) do valid[#valid + 1] = name end
      table.sort(valid)
      errors.raise("BadOption", ("%s: unknown option '%s' (valid options: %s)")
        :format(what, tostring(k), table.concat(valid, ", ")))
    end
    if not _accepts(expected, v) then
      errors.raise("BadOption", ("%s: option '%s' must be %s, got %s")
        :format(what, k, expected:gsub("|", " or "), _type_of(v)))
    end
  end
  return opts
end

--- Raises unless `v` (option `key` of `what`) is nil or a positive number of seconds.
function M.seconds(what, key, v)
  if v ~= nil and not (v > 0 and v < 4e6) then
    errors.raise("BadOption", ("%s: option '%s' must be a positive number of seconds, got %s")
      :format(what, key, tostring(v)))
  end
end

--- Raises unless `v` is one of `choices` (a list).
function M.one_of(what, key, v, choices)
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  errors.raise("BadOption", ("%s: option '%s' must be one of %s, got '%s'")
    :format(what, key, table.concat(choices, ", "), tostring(v)))
end

return M
