-- sky.http against a real local server (tests/support/http_echo.py on 127.0.0.1, an ephemeral
-- port). Run by skyhost from the repository root.
local t = require "testlib"
local sky = require "sky"
local chttp = require "skyhost.http"
local core = require "skyhost.core"

local server = assert(io.popen("exec /usr/bin/python3 tests/support/http_echo.py --lifetime 90"))
local port, pid = server:read("l"):match("^(%d+) (%d+)$")
assert(port, "the echo server did not start")
local base = "http://127.0.0.1:" .. port

local function echo(resp)
  t.eq(resp.status, 200)
  return sky.json.decode(resp.body)
end

local function header(doc, name)
  for _, pair in ipairs(doc.headers) do
    if pair[1]:lower() == name:lower() then return pair[2] end
  end
end

t.test("GET sends headers given as a map and as a list", function()
  local r = sky.http.get(base .. "/echo?x=1", {
    headers = { ["X-One"] = "1", { "X-Two", "2" }, { name = "X-Three", value = 3 } } })
  t.eq(r.ok, true)
  local doc = echo(r)
  t.eq(doc.method, "GET")
  t.eq(doc.query, "x=1")
  t.eq(header(doc, "X-One"), "1")
  t.eq(header(doc, "X-Two"), "2")
  t.eq(header(doc, "X-Three"), "3")
end)

t.test("POST sends a string body as is, a table as JSON", function()
  local doc = echo(sky.http.post(base .. "/echo", "a\0b", { headers = { ["Content-Type"] = "x/y" } }))
  t.eq(doc.method, "POST")
  t.eq(doc.body_len, 3)
  t.eq(header(doc, "Content-Type"), "x/y")
  doc = echo(sky.http.post(base .. "/echo", { n = 1, list = sky.json.array() }))
  t.eq(header(doc, "Content-Type"), "application/json")
  t.eq(sky.json.decode(doc.body), { n = 1, list = {} })
  t.eq(header(doc, "Expect"), nil, "no 100-continue round trip")
end)

t.test("other methods", function()
  for _, m in ipairs({ "PUT", "PATCH", "DELETE", "OPTIONS" }) do
    local doc = echo(sky.http.request { method = m, url = base .. "/echo", body = m == "DELETE" and nil or "x" })
    t.eq(doc.method, m)
  end
  local r = sky.http.request { method = "HEAD", url = base .. "/echo" }
  t.eq(r.status, 200)
  t.eq(r.body, "")
end)

t.test("response headers: in order, by lowercased name, repeats joined", function()
  local r = sky.http.get(base .. "/headers")
  local names = {}
  for i, h in ipairs(r.headers) do names[i] = h.name end
  local list = table.concat(names, ",")
  t.ok(list:find("Set%-Cookie,X%-Multi,Set%-Cookie,X%-Multi,X%-Mixed%-Case"), list)
  t.eq(r.headers["x-mixed-case"], "Value")
  t.eq(r.headers["x-multi"], "one, two")
  t.eq(r.headers["set-cookie"], "a=1, b=2")
  t.eq(r.headers["content-type"], "application/json")
end)

t.test("a non-2xx status is a response, not an error", function()
  local r = sky.http.get(base .. "/status/404")
  t.eq(r.status, 404)
  t.eq(r.ok, false)
  t.eq(sky.json.decode(r.body), { status = 404 })
  t.eq(sky.http.post(base .. "/status/503", "").status, 503)
end)

t.test("redirects are followed unless follow = false", function()
  local r = sky.http.get(base .. "/redirect?to=/echo")
  t.eq(r.status, 200)
  t.ok(r.url:find("/echo$"), r.url)
  t.eq(sky.http.get(base .. "/redirect?to=/echo", { follow = false }).status, 302)
end)

t.test("a timeout raises HttpError naming the URL", function()
  local start = core.now()
  local url = base .. "/delay?ms=3000"
  local err = t.raises(function() sky.http.get(url, { timeout = 0.2 }) end, "timed out")
  t.ok(core.now() - start < 1.5, "took " .. (core.now() - start))
  t.eq(err.code, "HttpError")
  t.eq(err.kind, "timeout")
  t.eq(err.url, url)
  t.ok(err.message:find(url, 1, true), err.message)
  t.ok(tostring(err):find("test_http.lua:%d+:"), "blames the test's line: " .. tostring(err))
end)

t.test("connection refused raises HttpError", function()
  local err = t.raises(function() sky.http.get("http://127.0.0.1:1/x") end, "127.0.0.1:1/x")
  t.eq(err.code, "HttpError")
  t.eq(err.kind, "connect")
end)

t.test("a server closing without an answer raises HttpError", function()
  local err = t.raises(function() sky.http.get(base .. "/close") end, "/close")
  t.eq(err.kind, "receive")
end)

t.test("try returns nil, err instead of raising", function()
  local r, err = sky.http.try { url = "http://127.0.0.1:1/" }
  t.eq(r, nil)
  t.eq(err.code, "HttpError")
  r = sky.http.try { url = base .. "/status/418" }
  t.eq(r.status, 418)
end)

t.test("10 MiB down (length and chunked) and up", function()
  local n = 10 * 1024 * 1024
  local big = sky.http.get(base .. "/big?bytes=" .. n).body
  t.eq(#big, n)
  t.eq(big:byte(1), 0); t.eq(big:byte(252), 0); t.eq(big:byte(n), (n - 1) % 251)
  local chunked = sky.http.get(base .. "/big?chunked=1&bytes=" .. n).body
  t.ok(chunked == big, "chunked body differs")
  local back = sky.http.post(base .. "/raw", big).body
  t.eq(#back, n)
  t.ok(back == big, "echoed body differs")
end)

t.test("requests from spawned coroutines overlap", function()
  local start = core.now()
  local tasks = {}
  for i = 1, 4 do
    tasks[i] = sky.spawn(function()
      return echo(sky.http.get(base .. "/delay?ms=300&i=" .. i)).query
    end)
  end
  local queries = sky.wait_all(tasks)
  local took = core.now() - start
  t.ok(took < 0.9, ("4 x 300 ms took %.3f s"):format(took))
  for i = 1, 4 do t.eq(queries[i], "ms=300&i=" .. i) end
end)

t.test("the main coroutine waits while spawned requests run", function()
  local start = core.now()
  local other = sky.spawn(function() return sky.http.get(base .. "/delay?ms=300").status end)
  t.eq(sky.http.get(base .. "/delay?ms=300").status, 200)
  t.eq(other:wait(), 200)
  t.ok(core.now() - start < 0.55, ("took %.3f s"):format(core.now() - start))
end)

t.test("bad options raise BadOption", function()
  local function bad(req, pattern)
    local err = t.raises(function() sky.http.request(req) end, pattern)
    t.eq(err.code, "BadOption")
  end
  bad({ url = base, colour = "red" }, "unknown option 'colour'")
  bad({ url = base, timeout = "5" }, "option 'timeout' must be number")
  bad({ url = base, timeout = 0 }, "'timeout' must be > 0")
  bad({ url = "ftp://127.0.0.1/" }, "url must start with http:// or https://")
  bad({}, "option 'url' is required")
  bad({ url = base, method = "GE T" }, "bad method")
  bad({ url = base, headers = { ["Bad Name"] = "x" } }, "bad header name")
  bad({ url = base, headers = { ["X-A"] = "a\r\nX-B: b" } }, "line break")
  bad({ url = base, body = "x", json = {} }, "not both")
  bad("http://x", "expected a table")
  t.raises(function() sky.http.get(base, { method = "POST" }) end, "unknown option 'method'")
end)

t.test("a cancelled request leaves nothing behind", function()
  local id = chttp.start { url = base .. "/delay?ms=2000", timeout_ms = 5000 }
  t.eq(chttp.stats(), 1)
  t.eq(chttp.cancel(id), true)
  t.eq(chttp.cancel(id), false)
  local in_flight, unclaimed = chttp.stats()
  t.eq({ in_flight, unclaimed }, { 0, 0 })
end)

os.execute("kill " .. pid)
server:close()
t.done()
