-- What travels with a sky.fn: upvalues by value, through the real worker.
local t = require "testlib"
local sky = require "sky"

local pool <close> = sky.compute { nodes = 1, display = "quiet" }

local function remote(f, ...) return pool:run(sky.fn(f)(...)) end

t.test("scalars and binary strings", function()
  local n, yes, no, i, f = nil, true, false, math.mininteger, 0.1
  local s = "a\0b\255" .. string.rep("z", 100000)
  local r = table.pack(remote(function() return n, yes, no, i, f, s end))
  t.eq(r.n, 6)
  t.eq(r[1], nil); t.eq(r[2], true); t.eq(r[3], false)
  t.eq(math.type(r[4]), "integer"); t.eq(r[4], math.mininteger)
  t.eq(math.type(r[5]), "float"); t.eq(r[5], 0.1)
  t.eq(r[6], s)
end)

t.test("tables: nested, shared references, cycles", function()
  local shared = { x = 1 }
  local cfg = { a = shared, b = shared, list = { 1, 2, { 3 } } }
  cfg.me = cfg
  local same, cyc, deep = remote(function()
    return cfg.a == cfg.b, cfg.me == cfg, cfg.list[3][1]
  end)
  t.eq({ same, cyc, deep }, { true, true, 3 })
  -- and back: a cyclic result keeps its shape
  local back = remote(function() local r = { k = "v" }; r.self = r; return r end)
  t.eq(back.self, back)
end)

t.test("captured by value at call time", function()
  local counter = 1
  local p = sky.fn(function() return counter end)()
  counter = 2
  t.eq(p >> pool, 1)
end)

t.test("functions as upvalues, recursion, upvalues of upvalues", function()
  local function fact(n) return n <= 1 and 1 or n * fact(n - 1) end
  local base = 100
  local function add_base(x) return x + base end
  t.eq(remote(function(n) return add_base(fact(n)) end, 5), 220)
end)

t.test("globals resolve on the worker", function()
  t.eq(remote(function() return string.rep("ab", 2), math.floor(2.5), type(sky.shard) end),
    "abab")
  local fmt, concat = string.format, table.concat
  t.eq(remote(function() return fmt("%d-%s", 7, concat({ "a", "b" })) end), "7-ab")
end)

t.test("a value that cannot travel names the upvalue", function()
  local out = io.stdout
  t.raises(function() return sky.fn(function() return out end)() end, "upvalue 'out'")
  local co = coroutine.create(print)
  t.raises(function() return sky.fn(function() return co end)() end, "thread")
  local cfg = { handle = io.stderr }
  t.raises(function() return sky.fn(function() return cfg end)() end, "userdata")
  local cfn = require("skyhost.core").now
  t.raises(function() return sky.fn(function() return cfn() end)() end, "C function")
end)

t.test("arguments that cannot travel are an error too", function()
  local f = sky.fn(function(x) return x end)
  t.raises(function() return f(io.stdout) >> pool end, "userdata")
end)

t.done()
