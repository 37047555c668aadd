-- The script test_hostile.py runs against a stand-in hostile worker (hostile_worker.cpp): it
-- takes whatever comes back and does what a script might with it — index it, print it, call
-- it, let it be collected — so that anything the node smuggled in would get its chance to run.
local mode = arg[1]
local ok, pool = pcall(sky.compute, {
  nodes = 1, display = "quiet", retries = 0,
  max_frame = mode == "over-limit" and (1 << 20) or nil,
})
if not ok then
  print("START " .. tostring(pool))
  return
end

local task = sky.fn(function() return 1 end)
local r = table.pack(pcall(function() return pool:run(task()) end))
if r[1] then
  local first = type(r[2]) == "table" and ("a table of length " .. rawlen(r[2])) or type(r[2])
  print("RESULT " .. (r.n - 1) .. " values, the first is " .. first)
  for i = 2, r.n do
    local v = r[i]
    pcall(function()
      if type(v) == "function" then v() end
      if type(v) == "table" then
        local _ = v.x, #v, tostring(v), v == {}, v .. "", v < v
        v.y = 1
        for _ in pairs(v) do end
        if type(v.f) == "function" then v.f() end
        v()
      end
    end)
  end
else
  print("ERROR " .. tostring(r[2]))
end
r = nil
collectgarbage()
collectgarbage()
print("DONE")
