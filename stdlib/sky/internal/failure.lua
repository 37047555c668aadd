-- A failed task as the script sees it: a structured error built from what the scheduler
-- reports ({message, traceback, node, task, index, kind, value}). It says which task or item
-- failed and where, keeps a table the task raised as `value`, and hints at the usual mistake
-- behind "attempt to call a nil value (global 'f')": a global of the script, which the worker
-- does not have.
local errors = require "sky.errors"

local M = {}

local function _repr(v, depth)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 2 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do
    if i > 8 then parts[#parts + 1] = "..." break end
    local key = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. _repr(k, 3) .. "]")
    parts[#parts + 1] = key .. " = " .. _repr(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- "attempt to call a nil value (global 'helper')" where the script has a global `helper`.
local function _global_hint(message)
  local name = message:match("%(global '([%a_][%w_]*)'%)")
  if name and rawget(_G, name) ~= nil then
    return ("\n  hint: '%s' is a global of this script; a worker has only the standard "
      .. "libraries and sky. Make it an upvalue (`local %s = %s` before the function) or pass "
      .. "it as an argument"):format(name, name, name)
  end
  return ""
end

--- The error for failure `f`. `what` names the call ("pool:map"), `label` the task's function
--- (file:line); `item` is true when f.index is a map item's index.
function M.error(pool, f, what, label, item)
  local subject = item and ("%s: item %d"):format(what, f.index) or ("task %d"):format(f.task)
  local on = (f.node and f.node >= 0) and (" on node %d"):format(f.node) or ""
  local fields = {
    node = f.node, task = f.task, index = f.index, pool = pool.name,
    remote_message = f.message, remote_traceback = f.traceback,
  }
  if f.kind == "timeout" then
    local msg = ("%s (%s) %s%s"):format(subject, label, f.message:gsub("^task ", ""), on)
    return errors.new("TaskTimeout", msg, fields)
  elseif f.kind == "cancelled" then
    return errors.new("TaskCancelled", ("%s (%s) was cancelled%s"):format(subject, label, on), fields)
  end
  local message = f.message
  if type(f.value) == "table" then
    fields.value = f.value
    if message:find("^%(error object is a table value%)") then message = _repr(f.value, 1) end
  end
  fields.remote_message = message
  local head = item and (subject .. " failed" .. on) or ("task failed" .. on)
  return errors.new("TaskFailed", head .. ": " .. message .. _global_hint(message), fields)
end

return M
