-- Large strings as task arguments and results on a local node (issue 15): they move without
-- extra copies (the worker writes a large string with writev from the Lua string; a result's
-- string of 1 MiB or more comes apart and is read straight into the host's Lua string), and
-- this checks that every byte still arrives in its place, at the sizes around the thresholds
-- (64 KiB: written from where it is; 1 MiB: sent apart) and well above them. Speed and memory
-- are measured by bench/data.lua, not asserted here.
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

local sizes = { 0, 1, 64 * KiB - 1, 64 * KiB, MiB - 1, MiB, MiB + 1, MiB + 7, 64 * MiB + 3 }

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

t.test("several large strings in one result table, and one used as a key", function()
  local many = sky.fn(function(n)
    local r = { keys = {} }
    for i = 1, 5 do r[i] = pattern(n + i, i) end
    r.keys[pattern(n, 9)] = "found"
    r.last = pattern(2 * n, 7)
    return r
  end)
  local r = many(MiB) >> pool
  local last = r.last
  for i = 1, 5 do t.ok(r[i] == pattern(MiB + i, i), "string " .. i .. " of the table differs") end
  t.ok(last == pattern(2 * MiB, 7), "the second result differs")
  -- Strings received apart are hashed when first used as a key, after they were filled: the
  -- key that came back and one made here find the same slot, both ways.
  local key = pattern(MiB, 9)
  t.eq(r.keys[key], "found")
  local t2 = {}
  t2[r[3]] = "third"
  t.eq(t2[pattern(MiB + 3, 3)], "third")
  local k = next(r.keys)
  t.ok(k == key and #k == MiB, "the key arrived whole")
end)

t.test("large results taken one after another are collected without asking", function()
  -- Their strings are made by the host's store, with the collector stopped while it runs
  -- (bindings/blob_store.cpp), and anchored until handed over: once dropped, they are garbage
  -- like any other string.
  collectgarbage()
  local base = collectgarbage("count")
  local big = sky.fn(function(n) return ("x"):rep(n) end)
  for _ = 1, 16 do
    local r = big(8 * MiB) >> pool
    t.eq(#r, 8 * MiB)
  end
  local grown = (collectgarbage("count") - base) / 1024
  t.ok(grown < 72, ("%.0f MiB of 128 MiB received still held"):format(grown))
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
