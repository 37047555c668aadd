-- Structured errors: tables with code, message, and where in the user's script it happened.
-- tostring() gives "file:line: message", which is what the CLI prints.
local M = {}

local Error = {}
Error.__index = Error
Error.__name = "sky.error"
function Error.__tostring(e)
  local s = e.message
  if e.where then s = e.where .. ": " .. s end
  return s
end

--- The first stack frame outside skyhost's own Lua: the line of the user's script to blame.
function M.user_site(level)
  level = (level or 1) + 1
  while true do
    local info = debug.getinfo(level, "Slu")
    if not info then return nil end
    local src = info.source
    if info.currentline and info.currentline > 0 and info.what ~= "C"
        and not src:find("^@stdlib/") and not src:find("^@providers/") then
      return src:sub(2) .. ":" .. info.currentline
    end
    level = level + 1
  end
end

function M.new(code, message, fields)
  local e = setmetatable(fields or {}, Error)
  e.code = code
  e.message = message
  if e.where == nil then e.where = M.user_site(2) end
  return e
end

function M.is(e, code)
  return getmetatable(e) == Error and (code == nil or e.code == code)
end

--- Raises a structured error blamed on the user's line.
function M.raise(code, message, fields)
  error(M.new(code, message, fields), 0)
end

function M.interrupted()
  return M.new("Interrupted", "interrupted")
end

--- Cleanups that must all run, whatever the others do: `cleanups:run(fn, ...)` calls fn in
--- protected mode and keeps the first error (`cleanups.first`), `cleanups:note(err)` keeps err if
--- it is the first, `cleanups:raise()` raises the first error, if any, once every cleanup ran.
local Cleanups = {}
Cleanups.__index = Cleanups

function Cleanups:run(fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then self:note(err) end
end

function Cleanups:note(err)
  if err ~= nil and self.first == nil then self.first = err end
end

function Cleanups:raise()
  if self.first ~= nil then error(self.first, 0) end
end

function M.cleanups() return setmetatable({}, Cleanups) end

--- Text of any error value.
function M.message(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  return ("(error object is a %s value)"):format(type(e))
end

--- What the CLI prints: the message, and with `verbose` the traceback and remote traceback.
function M.format(e, traceback, verbose)
  local s = M.message(e)
  if verbose then
    if type(e) == "table" and e.remote_traceback and e.remote_traceback ~= "" then
      s = s .. ("\nremote traceback (node %s):\n%s"):format(e.node, e.remote_traceback)
    end
    if traceback then
      local tb = traceback:match("\nstack traceback:.*$")
      if tb then s = s .. tb end
    end
  end
  return s
end

return M
