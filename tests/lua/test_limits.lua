-- Values over the frame limit (max_frame): an argument too large is an error the script can
-- catch, a result too large fails its task, and either way the pool and its node stay usable.
-- A small limit stands in for the default 1 GiB, with the same code paths.
local t = require "testlib"
local sky = require "sky"

local LIMIT = 64 * 1024
local lost = {}
local pool <close> = sky.compute {
  nodes = 1, display = "quiet", retries = 1, max_frame = LIMIT,
  on_event = function(ev) if ev.type == "InstanceLost" then lost[#lost + 1] = ev end end,
}
local len = sky.fn(function(s) return #s end)
local make = sky.fn(function(n) return string.rep("r", n) end)
local pid = sky.fn(function() return sky.instance_info().pid end)
local first_pid = pid() >> pool

local function usable()
  t.eq(len("still fine") >> pool, 10)
  t.eq(pid() >> pool, first_pid, "the same worker")
  t.eq(#lost, 0, "no node lost")
end

t.test("an argument over the limit is a catchable error naming both sizes", function()
  local ok, err = pcall(function() return len(string.rep("a", 70000)) >> pool end)
  t.ok(not ok)
  t.eq(err.code, "CannotSend")
  t.ok(tostring(err):find("the task's arguments take 68.4 KiB %(%d+ bytes%), more than the " ..
    "frame limit of 64 KiB %(max_frame%)"), tostring(err))
  t.ok(tostring(err):find("test_limits.lua:%d+:"), "blames the script's line: " .. tostring(err))
  usable()
end)

t.test("a group with one task too large runs none of them", function()
  local ran = sky.fn(function(x) print("ran " .. #x) return true end)
  local logs = {}
  pool:on("log", function(ev) logs[#logs + 1] = ev.text end)
  t.raises(function() return (ran("small") & ran(string.rep("b", 70000))) >> pool end,
    "more than the frame limit")
  t.raises(function() return pool:map(ran, { "x", string.rep("c", 70000) }) end,
    "more than the frame limit")
  usable()
  t.eq(logs, {})
end)

t.test("a function too large to send is refused the same way", function()
  local big = string.rep("u", 70000)
  t.raises(function() return sky.fn(function() return #big end)() >> pool end,
    "the function and its upvalues take")
  usable()
end)

t.test("a result over the limit fails its task, not the node", function()
  local err = t.raises(function() return make(70000) >> pool end,
    "task failed on node 0: the result takes 68.4 KiB")
  t.ok(tostring(err):find("more than the frame limit of 64 KiB (max_frame)", 1, true), tostring(err))
  t.eq(err.code, "TaskFailed")
  usable()
  -- just under the limit still comes back whole
  t.eq(#(make(LIMIT - 64) >> pool), LIMIT - 64)
end)

t.test("output longer than a frame is cut, not fatal", function()
  local logs = {}
  pool:on("log", function(ev) logs[#logs + 1] = ev.text end)
  local _ = sky.fn(function() print(string.rep("p", 100000)) return 1 end)() >> pool
  t.eq(#logs, 1)
  t.ok(#logs[1] < LIMIT and #logs[1] > LIMIT - 100, #logs[1])
  usable()
end)

t.test("max_frame is checked", function()
  t.raises(function() sky.compute { max_frame = 100 } end, "'max_frame' must be 1024 to 1073741824")
  t.raises(function() sky.compute { max_frame = (1 << 30) + 1 } end, "must be 1024 to")
end)

t.done()
