-- sky.json: the Lua ⇄ JSON mapping documented in docs/http-json-state.md.
local t = require "testlib"
local sky = require "sky"
local json = sky.json

t.test("scalars", function()
  t.eq(json.encode(nil), "null")
  t.eq(json.encode(true), "true")
  t.eq(json.encode("hi"), '"hi"')
  t.eq(json.encode(42), "42")
  t.eq(json.encode(-7), "-7")
  t.eq(json.encode(1.5), "1.5")
  t.eq(json.decode("true"), true)
  t.eq(json.decode("false"), false)
  t.eq(json.decode('"x"'), "x")
  t.eq(json.decode(" 12 "), 12)
  t.eq(json.decode("null"), json.null)
end)

t.test("integers and floats stay apart", function()
  t.eq(json.encode(1.0), "1.0")
  t.eq(math.type(json.decode("1")), "integer")
  t.eq(math.type(json.decode("1.0")), "float")
  t.eq(math.type(json.decode("1e2")), "float")
  t.eq(json.decode(json.encode(math.maxinteger)), math.maxinteger)
  t.eq(json.decode(json.encode(math.mininteger)), math.mininteger)
  local big = json.decode("18446744073709551615") -- 2^64 - 1 does not fit: nearest float
  t.eq(math.type(big), "float")
  t.eq(big, 2.0 ^ 64)
  t.eq(json.decode(json.encode(0.1)), 0.1)
  t.eq(json.decode(json.encode(1e300)), 1e300)
end)

t.test("strings: escapes, unicode, NUL bytes", function()
  local s = 'quote " backslash \\ tab \t nl \n nul \0 bell \7 é 😀'
  t.eq(json.decode(json.encode(s)), s)
  t.eq(json.encode("\0"), '"\\u0000"')
  t.eq(json.decode('"\\u00e9\\ud83d\\ude00\\u0000"'), "é😀\0")
  t.eq(json.decode('"a\\/b"'), "a/b")
end)

t.test("invalid UTF-8 cannot be encoded", function()
  local err = t.raises(function() json.encode({ name = "ok\xffno" }) end, "invalid UTF-8")
  t.eq(err.code, "JsonError")
  t.ok(tostring(err):find("$.name", 1, true), tostring(err))
  t.raises(function() json.encode("\xc0\x80") end, "invalid UTF-8") -- overlong NUL
  t.raises(function() json.encode("\xed\xa0\x80") end, "invalid UTF-8") -- a surrogate
  t.raises(function() json.encode({ ["k\xff"] = 1 }) end, "invalid UTF-8 in a key")
  t.raises(function() json.decode('"\xff"') end, "UTF-8")
end)

t.test("objects and arrays", function()
  t.eq(json.encode({ b = 1, a = { 1, 2, 3 }, c = "x" }), '{"a":[1,2,3],"b":1,"c":"x"}')
  local v = json.decode('{"a":[1,{"b":[]}],"c":{}}')
  t.eq(v.a[1], 1)
  t.eq(#v.a[2].b, 0)
  t.eq(json.is_array(v.a), true)
  t.eq(json.is_array(v.c), false)
  t.eq(json.encode(v), '{"a":[1,{"b":[]}],"c":{}}')
  t.eq(json.decode('{"1":"one"}')["1"], "one")
end)

t.test("empty tables: {} by default, [] when marked", function()
  t.eq(json.encode({}), "{}")
  t.eq(json.encode(json.array()), "[]")
  t.eq(json.encode(json.array({})), "[]")
  t.eq(json.encode({ list = json.array({ 1, 2 }) }), '{"list":[1,2]}')
  t.eq(json.encode(json.decode("[]")), "[]")
  t.eq(json.encode(json.decode("{}")), "{}")
end)

t.test("null keeps arrays and objects in shape", function()
  local v = json.decode('[1,null,3]')
  t.eq(#v, 3)
  t.eq(v[2], json.null)
  t.eq(json.encode(v), "[1,null,3]")
  local o = json.decode('{"a":null}')
  t.eq(o.a, json.null)
  t.eq(json.encode(o), '{"a":null}')
  t.eq(tostring(json.null), "sky.json.null")
end)

t.test("keys that are not strings are errors naming the key", function()
  t.raises(function() json.encode({ [true] = 1 }) end, "non-string key true")
  t.raises(function() json.encode({ [1.5] = 1 }) end, "non-string key 1.5")
  t.raises(function() json.encode({ x = { [-1] = 1 } }) end, "non-string key -1 at $.x")
  t.raises(function() json.encode({ 1, 2, x = 3 }) end, "mixes string keys with the integer key 2")
  t.raises(function() json.encode({ [1] = 1, [3] = 3 }) end, "hole: key 3 but 2 elements")
  t.raises(function() json.encode(json.array({ x = 1 })) end, "non-index key 'x'")
end)

t.test("values without a JSON form", function()
  t.raises(function() json.encode({ a = { b = print } }) end, "cannot encode a function value at $.a.b")
  t.raises(function() json.encode({ 1, 0 / 0 }) end, "at $[2]")
  t.raises(function() json.encode(math.huge) end, "cannot encode inf")
  t.raises(function() json.encode(coroutine.create(print)) end, "thread")
end)

t.test("cycles are errors, shared tables are not", function()
  local a = {}
  a.self = a
  t.raises(function() json.encode(a) end, "cycle")
  local l = json.array()
  l[1] = { l }
  t.raises(function() json.encode(l) end, "contains itself at $[1][1]")
  local shared = { 1 }
  t.eq(json.encode({ x = shared, y = shared }), '{"x":[1],"y":[1]}')
end)

t.test("depth limit both ways", function()
  local deep = {}
  local cur = deep
  for _ = 1, 600 do cur[1] = {}; cur = cur[1] end
  t.raises(function() json.encode(deep) end, "nesting deeper than 500")
  t.eq(#json.encode(deep, { max_depth = 1000 }), 1202)
  local text = ("["):rep(600) .. ("]"):rep(600)
  local err = t.raises(function() json.decode(text) end, "nesting deeper than 500")
  t.eq(err.position, 501)
  t.eq(#json.encode(json.decode(text, { max_depth = 600 }), { max_depth = 600 }), 1200)
  t.raises(function() json.decode("[[1]]", { max_depth = 1 }) end, "deeper than 1")
end)

t.test("decode errors give the position and the reason", function()
  local err = t.raises(function() json.decode("[1,x]") end, "line 1, column 4")
  t.eq(err.code, "JsonError")
  t.eq(err.position, 4)
  t.ok(err.reason:find("invalid literal"), err.reason)
  err = t.raises(function() json.decode('{"a":1}\n  oops') end, "line 2")
  t.ok(err.reason:find("end of input"), err.reason)
  t.raises(function() json.decode("") end, "unexpected end of input")
  t.raises(function() json.decode("[1,]") end, "syntax error")
  t.raises(function() json.decode('"\\ud800"') end, "surrogate")
  local v, msg, pos = json.try_decode("{")
  t.eq(v, nil)
  t.ok(msg:find("line 1"), msg)
  t.eq(pos, 2) -- one past the end: the input ended early
end)

t.test("pretty output", function()
  t.eq(json.encode({ a = { 1 } }, { pretty = true }), '{\n  "a": [\n    1\n  ]\n}')
end)

t.test("bad options and arguments", function()
  t.eq(t.raises(function() json.encode({}, { pretty = "yes" }) end, "'pretty' must be boolean").code, "BadOption")
  t.raises(function() json.encode({}, { indent = 2 }) end, "unknown option 'indent'")
  t.raises(function() json.decode(12) end, "expected a string")
  t.raises(function() json.array(5) end, "expected a table")
  t.raises(function() json.decode("1", { max_depth = 0 }) end, "max_depth must be positive")
end)

t.test("HTTP-shaped documents round trip", function()
  local doc = {
    id = "i-0abc", count = 3, price = 2.25, tags = json.array(), spot = false,
    nodes = { { ip = "10.0.0.1", gpus = { "H100", "H100" } }, { ip = "10.0.0.2", gpus = json.array() } },
    note = json.null,
  }
  t.eq(json.encode(json.decode(json.encode(doc))), json.encode(doc))
end)

t.done()
