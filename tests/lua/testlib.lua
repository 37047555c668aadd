-- Minimal test helper for the Lua tests skyhost runs (tests/lua/test_*.lua). Plain Lua 5.4, so
-- the same files run under Debian's lua5.4 and under skyhost itself.
--
--   local t = require "testlib"
--   t.test("adds", function() t.eq(1 + 1, 2) end)
--   t.skip("why")  -- inside a test: ends it, counted and listed as skipped (never as passed)
--   t.done()   -- prints "N passed, M failed, K skipped", exits non-zero on failure
local M = {}

local _passed, _failed, _skipped = 0, 0, 0
local SKIP = setmetatable({}, { __name = "testlib.skip" })

local function _show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" or depth > 2 then return tostring(v) end
  local parts, n = {}, 0
  for k, x in pairs(v) do
    n = n + 1
    if n > 12 then parts[#parts + 1] = "..."; break end
    parts[#parts + 1] = ("[%s]=%s"):format(_show(k, depth + 1), _show(x, depth + 1))
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- Deep equality; returns true, or false and the path where a and b first differ.
local function _deep_eq(a, b, path, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false, path
  end
  seen = seen or {}
  if seen[a] == b then return true end -- cycles
  seen[a] = b
  for k, v in pairs(a) do
    local ok, where = _deep_eq(v, b[k], path .. "." .. tostring(k), seen)
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) end
  end
  return true
end

--- Fails unless a and b are equal (tables compared deeply).
function M.eq(a, b, msg)
  local ok, where = _deep_eq(a, b, "")
  if not ok then
    error(("%sexpected %s, got %s%s"):format(msg and (msg .. ": ") or "", _show(b), _show(a),
      where ~= "" and (" (differs at " .. where .. ")") or ""), 2)
  end
end

--- Fails unless v is truthy.
function M.ok(v, msg)
  if not v then error(msg or "expected a true value", 2) end
  return v
end

--- Fails unless fn raises an error whose text (tostring, so structured errors work) matches the
--- Lua pattern; a pattern that does not match is also tried as plain text. Returns the error.
function M.raises(fn, pattern, msg)
  local ok, err = pcall(fn)
  if ok then error((msg and msg .. ": " or "") .. "expected an error, none raised", 2) end
  local text = tostring(err)
  if pattern and not (text:find(pattern) or text:find(pattern, 1, true)) then
    error(("%serror %q does not match %q"):format(msg and msg .. ": " or "", text, pattern), 2)
  end
  return err
end

--- Runs one test; a failure is reported and counted, and the remaining tests still run.
function M.test(name, fn)
  local ok, err = xpcall(fn, function(e) return rawequal(e, SKIP) and e or debug.traceback(e) end)
  if ok then
    _passed = _passed + 1
  elseif rawequal(err, SKIP) then
    _skipped = _skipped + 1
  else
    _failed = _failed + 1
    io.stderr:write(("FAIL %s\n  %s\n"):format(name, tostring(err):gsub("\n", "\n  ")))
  end
end

--- Ends the running test as skipped, saying why: it counts as neither passed nor failed.
function M.skip(why)
  io.stderr:write(("SKIP %s\n"):format(why))
  error(SKIP, 0)
end

--- Whether process `pid` runs: a zombie counts as gone, and so does one reaped between opening
--- its /proc entry and reading it (the read then gives nothing).
function M.alive(pid)
  local f = io.open(("/proc/%d/stat"):format(pid), "r")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  local state = stat and stat:match("%)%s+(%S)")
  return state ~= nil and state ~= "Z"
end

--- Prints the tally and exits: status 0 only if nothing failed.
function M.done()
  print(("%d passed, %d failed, %d skipped"):format(_passed, _failed, _skipped))
  os.exit(_failed == 0)
end

return M
