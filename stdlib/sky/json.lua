-- sky.json: Lua values ⇄ JSON text (bindings/json.cpp does the work).
--
-- Mapping (docs/http-json-state.md has the long version):
--   object ⇄ table with string keys        array ⇄ sequence 1..n (decoded arrays are marked)
--   null   ⇄ sky.json.null                  {}    → {} unless marked with sky.json.array
--   integer ⇄ integer (float past 2^63)     float ⇄ float (1.0 stays "1.0")
--   string ⇄ string (UTF-8 only; \u0000 and any escape decode to the bytes)
-- Object keys are written sorted, so the same table always gives the same text.
local cjson = require "skyhost.json"
local errors = require "sky.errors"
local options = require "sky.options"

local M = {}

--- Stands for JSON null: decoding gives it where null appears, encoding writes null for it.
M.null = cjson.null

--- Marks `t` (a new table if nil) to encode as a JSON array, even when empty. Returns it.
---@param t table|nil
---@return table
function M.array(t)
  if t ~= nil and type(t) ~= "table" then
    errors.raise("BadArgument", ("sky.json.array: expected a table, got %s"):format(type(t)))
  end
  return cjson.array(t)
end

--- Whether `t` carries the array mark (decoded arrays do).
function M.is_array(t) return cjson.is_array(t) end

local ENCODE_OPTS = { pretty = "boolean", max_depth = "integer" }
local DECODE_OPTS = { max_depth = "integer" }

--- JSON text for `value`; or nil, err where the value has no JSON form.
---@param value any
---@param opts? {pretty?: boolean, max_depth?: integer}
---@return string|nil text, string|nil err
function M.try_encode(value, opts)
  return cjson.encode(value, options.check("sky.json.encode", opts, ENCODE_OPTS))
end

--- JSON text for `value`. Raises JsonError (the message says what and where, as a path like
--- $.nodes[2].name) for a cycle, a non-string key, a hole in an array, invalid UTF-8, NaN or
--- infinity, a function or userdata, or nesting deeper than max_depth (default 500).
---@param value any
---@param opts? {pretty?: boolean, max_depth?: integer}
---@return string
function M.encode(value, opts)
  local text, err = M.try_encode(value, opts)
  if not text then errors.raise("JsonError", "sky.json.encode: " .. err) end
  return text
end

--- The value in JSON `text`; or nil, err, byte position, reason.
---@param text string
---@param opts? {max_depth?: integer}
function M.try_decode(text, opts)
  if type(text) ~= "string" then
    return nil, ("expected a string, got %s"):format(type(text)), 0, "not a string"
  end
  return cjson.decode(text, options.check("sky.json.decode", opts, DECODE_OPTS))
end

--- The value in JSON `text`. Raises JsonError with `position` (byte offset, 1-based) and
--- `reason` fields; the message also gives the line and column.
---@param text string
---@param opts? {max_depth?: integer}
function M.decode(text, opts)
  if type(text) ~= "string" then
    errors.raise("BadArgument", ("sky.json.decode: expected a string, got %s"):format(type(text)))
  end
  local v, err, pos, reason = M.try_decode(text, opts)
  if err then
    errors.raise("JsonError", "sky.json.decode: " .. err, { position = pos, reason = reason })
  end
  return v
end

return M
