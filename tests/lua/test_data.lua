-- Large strings as task arguments and results on a local node (issue 15): they move without
-- extra copies (the worker writes a large string with writev from the Lua string, the host keeps
-- the buffer a large frame was read into), and this checks that every byte still arrives in its
-- place, at the sizes around the threshold where strings stop being copied (64 KiB) and well
-- above it. Speed and memory are measured by bench/data.lua, not asserted here.
local t = require "testlib"
local sky = require "sky"

local KiB, MiB = 1024, 1024 * 1024

-- n bytes, every 4 KiB chunk numbered, all byte values present: a byte moved, lost or
-- duplicated anywhere makes the comparison fail.
local function pattern(n, seed)
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char((i * 7 + seed) % 256) end
  local filler = table.concat(bytes):rep(16):sub(1, 4096 - 12)
  local parts = {}
  for i = 0, n // 4096 do parts[#parts + 1] = ("%012d"):format(i) .. filler end
  return table.concat(parts):sub(1, n)
end

local pool <close> = sky.compute { nodes = 1, concurrency = 2, display = "quiet" }
local make = sky.fn(function(n, seed) return pattern(n, seed) end)
local echo = sky.fn(function(...) return ... end)
local check = sky.fn(function(s, seed) return s == pattern(#s, seed), #s end)

local sizes = { 0, 1, 64 * KiB - 1, 64 * KiB, MiB + 7, 64 * MiB + 3 }

t.test("results of 0 B to 64 MiB come back byte for byte", function()
  for i, n in ipairs(sizes) do
    local r = make(n, i) >> pool
    t.eq(#r, n)
    t.ok(r == pattern(n, i), "result of " .. n .. " bytes differs")
  end
end)

t.test("arguments of 0 B to 64 MiB arrive byte for byte, and go back", function()
  for i, n in ipairs(sizes) do
    local s = pattern(n, i)
    t.eq(table.pack(check(s, i) >> pool)[1], true, "argument of " .. n .. " bytes on the node")
    local r = echo(s) >> pool
    t.ok(r == s, "echo of " .. n .. " bytes differs")
  end
end)

t.test("large and small strings mixed in one result keep their order", function()
  local a, b, c = pattern(3 * MiB, 1), pattern(100, 2), pattern(70 * KiB, 3)
  local r = echo(table.pack(a, b, 42, c, { c, x = a, b }, a)) >> pool
  t.eq(r.n, 6)
  t.ok(r[1] == a and r[2] == b and r[3] == 42 and r[4] == c and r[6] == a, "values out of place")
  t.ok(r[5][1] == c and r[5][2] == b and r[5].x == a, "table fields out of place")
end)

t.test("large results between small ones in a map (frames behind a large one)", function()
  local items = {}
  for i = 1, 12 do items[i] = i % 3 == 0 and 5 * MiB + i or i end
  local out = pool:map(sky.fn(function(n) return pattern(n, n % 256) end), items)
  for i, n in ipairs(items) do
    t.ok(out[i] == pattern(n, n % 256), "map result " .. i .. " differs")
  end
end)

t.test("a failure with a large message comes back whole", function()
  local msg = ("0123456789"):rep(10 * KiB) .. "END"  -- text: a message stops at a NUL byte
  local fail = sky.fn(function(m) error(m, 0) end)
  local err = t.raises(function() return fail(msg) >> pool end)
  t.ok(err.message:sub(-#msg) == msg, "the message arrives whole")
  t.eq(echo("still here") >> pool, "still here")
end)

t.done()
