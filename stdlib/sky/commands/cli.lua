-- What the skyhost program does with a script or a REPL line, on the Lua side: run it on the
-- driver, report errors as file:line: message (with tracebacks under --verbose), print values.
local core = require "skyhost.core"
local errors = require "sky.errors"
local sched = require "sky.internal.sched"

local M = { verbose = false }

local function _exit_code(err)
  if errors.is(err, "Interrupted") then
    local _, sig = core.interrupts()
    return 128 + (sig ~= 0 and sig or 2)
  end
  return 1
end

--- Runs a loaded chunk as the script. Returns the process exit code.
function M.run_script(chunk, ...)
  local r = table.pack(sched.main(chunk, ...))
  local sig = sched.interrupt_signal()
  if sig then
    -- Interrupted, even if the script caught the error and ended normally: 128 + signal, as a
    -- shell expects of a program its signal stopped.
    if not r[1] then io.stderr:write(errors.format(r[2], r[3], M.verbose), "\n") end
    return 128 + sig
  end
  if r[1] then
    local code = r[2]
    if math.type(code) == "integer" then return code end  -- `return 3` sets the exit status
    return 0
  end
  io.stderr:write(errors.format(r[2], r[3], M.verbose), "\n")
  return _exit_code(r[2])
end

local function _repr(v, depth, seen)
  if type(v) == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if type(v) ~= "table" or getmetatable(v) and getmetatable(v).__tostring then
    return tostring(v)
  end
  if seen[v] or depth > 3 then return tostring(v) end
  seen[v] = true
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = _repr(v[i], depth + 1, seen) end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. _repr(k, 9, seen) .. "]"
    parts[#parts + 1] = key .. " = " .. _repr(v[k], depth + 1, seen)
    if #parts > 50 then parts[#parts + 1] = "..."; break end
  end
  seen[v] = nil
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- One REPL entry. Returns "ok", text | "incomplete" | "error", text.
function M.eval(code)
  local f, err_expr = load("return " .. code, "=stdin", "t")
  local err
  if not f then f, err = load(code, "=stdin", "t") end
  if not f then
    if err:find("<eof>$") or err_expr:find("<eof>$") then return "incomplete" end
    return "error", err
  end
  sched.reset_interrupts()  -- a Ctrl-C at the prompt does not interrupt the next entry
  local r = table.pack(sched.run(f))
  if not r[1] then return "error", errors.format(r[2], r[3], M.verbose) end
  local out = {}
  for i = 2, r.n do out[#out + 1] = _repr(r[i], 1, {}) end
  return "ok", table.concat(out, "\t")
end

return M
