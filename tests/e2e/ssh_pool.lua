-- Driven by test_ssh.py: a pool on the test hosts, doing what arg[1] says.
-- Environment: SKYT_STATE (test hosts' client files), HOSTS (space-separated), KNOWN_HOSTS,
-- HOST_KEYS, TTL, TIMEOUT.
local st = os.getenv("SKYT_STATE")
local hosts = {}
for h in os.getenv("HOSTS"):gmatch("%S+") do hosts[#hosts + 1] = h end
local mode = arg[1]
local lanes = tonumber(os.getenv("LANES"))  -- pool:get/put's lanes option, when set

local image
if mode == "image" then
  image = { env = { GREETING = "hello there" }, workdir = "job",
    setup = "echo preparing $(hostname); echo \"$GREETING\" > setup-was-here" }
elseif mode == "failing-setup" then
  image = { setup = "echo step one; echo about to fail >&2; exit 7" }
end

local events = {}
local pool <close> = sky.compute {
  provider = sky.ssh { hosts = hosts, identity = st .. "/id_ed25519",
    known_hosts = os.getenv("KNOWN_HOSTS") or (st .. "/known_hosts"),
    host_keys = os.getenv("HOST_KEYS"), connect_timeout = 3 },
  image = image,
  ttl = tonumber(os.getenv("TTL")),
  timeout = tonumber(os.getenv("TIMEOUT")),
  retries = 1,
  display = "quiet",
  on_event = function(ev) events[#events + 1] = ev end,
}

local function report_pids()
  local pids = pool:broadcast(sky.fn(function() return sky.instance_info().pid end)())
  print("WORKERS " .. table.concat(pids, " "))
  io.stdout:flush()
end

if mode == "hostnames" then
  print(table.concat(pool:broadcast(sky.fn(function() return sky.instance_info().hostname end)()), " "))
  print(table.concat(pool:map(function(x) return x * x end, { 1, 2, 3, 4, 5, 6, 7, 8, 9 }), " "))
elseif mode == "image" then
  local r = pool:broadcast(sky.fn(function()
    local f = io.open("setup-was-here")
    local setup = f and f:read("l")
    return os.getenv("GREETING") .. "|" .. tostring(setup)
  end)())
  print(table.concat(r, " "))
  local console = 0
  for _, ev in ipairs(events) do
    if ev.type == "BootstrapConsole" and ev.text:match("^preparing h%d+$") then console = console + 1 end
  end
  print("console lines " .. console)
elseif mode == "lose-node" then
  -- Tasks run long enough for the test to kill the node under them.
  report_pids()
  local slow = sky.fn(function(i) os.execute("sleep 2") return i end)
  local out = pool:map(slow, { 1, 2, 3, 4 }, { concurrency = 4 })
  local lost = {}
  for _, ev in ipairs(events) do
    if ev.type == "InstanceLost" then lost[#lost + 1] = ("node %d: %s"):format(ev.node, ev.reason) end
  end
  print("RESULTS " .. table.concat(out, " "))
  print("LOST " .. table.concat(lost, "; "))
elseif mode == "scratch" then
  -- The pool's scratch directory on its node; with HOLD, kept busy until a line on stdin.
  local dir = sky.fn(function()
    local d = os.getenv("SKYHOST_POOL_DIR")
    local f = assert(io.open(d .. "/mine", "w"))
    f:write("x")
    f:close()
    return d
  end)() >> pool
  print("DIR " .. dir)
  io.stdout:flush()
  if os.getenv("HOLD") then io.read("l") end
  local still = sky.fn(function()
    local f = io.open(os.getenv("SKYHOST_POOL_DIR") .. "/mine")
    if f then f:close() end
    return f ~= nil
  end)() >> pool
  print("STILL " .. tostring(still))
elseif mode == "hang" then
  report_pids()
  local _ = sky.fn(function() os.execute("sleep 600") end)() >> pool
elseif mode == "stuck" then
  -- The host blocks here (and the test stops it): only the workers' own deadline can end them.
  report_pids()
  io.read("l")
elseif mode == "sh" then
  -- Commands on SSH nodes: identity in the environment, streamed lines, a timeout's tree kill.
  local logs = {}
  pool:on("log", function(ev) logs[#logs + 1] = ev end)
  for _, r in ipairs(pool:sh('echo "$SKYHOST_NODE $NNODES $NODE_RANK $MASTER_ADDR $MASTER_PORT"')) do
    io.write("ENV ", r.stdout)
  end
  local tree = sky.fn(function()
    local r = sky.sh("sleep 1000 & echo $! > /tmp/sky-tree; wait", { timeout = 0.5, check = false })
    local f = io.open("/tmp/sky-tree")
    local pid = f and f:read("n")
    if f then f:close() end
    for _ = 1, 200 do  -- up to 10 s for the kill to land
      local stat = pid and io.open("/proc/" .. pid .. "/stat")
      -- A process reaped between open and read reads as nothing: gone too.
      local text = stat and stat:read("a")
      local state = text and text:match("%) (%a)")
      if stat then stat:close() end
      if not state or state == "Z" then return ("%s %s gone"):format(tostring(r.timed_out), r.signal) end
      os.execute("sleep 0.05")
    end
    return "still running"
  end)
  print("TREE " .. table.concat(pool:broadcast(tree()), " | "))
  local _ = sky.fn(function()
    os.execute("echo child out; echo child err >&2")
    print("two\nlines")
  end)() >> pool
  -- What a child process writes comes as the worker reads it, not ordered with the result.
  local seen
  for _ = 1, 500 do
    seen = {}
    for _, ev in ipairs(logs) do
      if not ev.text:match("^%d") then seen[#seen + 1] = ev.stream .. ":" .. ev.text end
    end
    if #seen >= 4 then break end
    sky.sleep(0.02)
  end
  table.sort(seen)
  print("LOGS " .. table.concat(seen, ","))
elseif mode == "torchrun" then
  -- A real multi-node torch.distributed run (gloo) over the test hosts' network.
  local root = os.getenv("ROOT")
  local logs = {}
  pool:on("log", function(ev) logs[#logs + 1] = ev end)
  -- The hosts see their own /tmp and /root, not this checkout (CI clones it anywhere): the
  -- script and the launcher travel with pool:put, to paths relative to the remote home, which
  -- is where the worker (and so the command) runs.
  pool:put(root .. "/scripts/torch_ddp.py", "skyt-torch/torch_ddp.py")
  pool:put(root .. "/tests/support/torchrun.py", "skyt-torch/torchrun.py")
  local rs = pool:torchrun("skyt-torch/torch_ddp.py", {
    args = { "--steps", 10 }, env = { GLOO_SOCKET_IFNAME = "eth0" }, timeout = 400,
    launcher = "/usr/bin/python3 skyt-torch/torchrun.py",
  })
  for _, r in ipairs(rs) do print(("EXIT node %d %d"):format(r.node, r.code)) end
  for _, ev in ipairs(logs) do
    if ev.text:match("^allreduce") or ev.text:match("^ddp") then
      print(("LINE %d %s"):format(ev.node, ev.text))
    end
  end
elseif mode == "plugin" then
  -- Plugins on SSH nodes (the library is uploaded to each by content hash): every operator, a
  -- Lua function calling one, binary data, a crash the node survives, a load failure.
  local lib = os.getenv("PLUGINS") .. "/libsky_test_plugins.so"
  local inc, add, crash = sky.plugin(lib, "inc"), sky.plugin(lib, "add"), sky.plugin(lib, "crash")
  local bytes_back, host_pid = sky.plugin(lib, "bytes_back"), sky.plugin(lib, "host_pid")
  print(("OPS %d %d %s %s %s"):format(inc(1) >> pool, pool:run(add(2, 3)),
    table.concat((inc(1) & inc(2)) >> pool, ","), table.concat(sky.gather(inc(5), inc(6)) >> pool, ","),
    table.concat(pool:map(inc, { 1, 2, 3, 4, 5, 6 }), ",")))
  print("HOSTS " .. #pool:broadcast(host_pid()))
  local mixed = pool:broadcast(sky.fn(function(x) return sky.instance_info().hostname .. "=" .. inc(x) end)(41))
  print("MIXED " .. table.concat(mixed, " "))
  local big = string.rep("\0\1\2\3", 4 << 20)  -- 16 MiB
  print("BIG " .. tostring((bytes_back(big) >> pool) == big))
  local _, err = pcall(function() return crash() >> pool end)
  print("CRASH " .. err.remote_message)
  print("AFTER " .. table.concat(pool:broadcast(inc(1)), ","))
  local _, err2 = pcall(function() return sky.plugin(lib, "no_such")() >> pool end)
  print("LOAD " .. err2.remote_message)
elseif mode == "data" then
  -- Large strings both ways over SSH (issue 15), every byte checked: 4 KiB chunks numbered,
  -- all byte values present.
  local function pattern(n, seed)
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char((i * 7 + seed) % 256) end
    local filler = table.concat(bytes):rep(16):sub(1, 4096 - 12)
    local parts = {}
    for i = 0, n // 4096 do parts[#parts + 1] = ("%012d"):format(i) .. filler end
    return table.concat(parts):sub(1, n)
  end
  local make = sky.fn(function(n, seed) return pattern(n, seed) end)
  local echo = sky.fn(function(x) return x end)
  local check = sky.fn(function(s, seed) return s == pattern(#s, seed) end)
  local out = {}
  for i, n in ipairs({ 0, 1, 64 * 1024, 64 * 1024 * 1024 + 3 }) do
    local want = pattern(n, i)
    local ok = (make(n, i) >> pool) == want and (check(want, i) >> pool) and (echo(want) >> pool) == want
    out[#out + 1] = n .. "=" .. tostring(ok)
  end
  local mixed = echo({ pattern(3 << 20, 1), "small", 7, { pattern(100 << 10, 2) } }) >> pool
  out[#out + 1] = "mixed=" .. tostring(mixed[1] == pattern(3 << 20, 1) and mixed[2] == "small"
    and mixed[3] == 7 and mixed[4][1] == pattern(100 << 10, 2))
  print("DATA " .. table.concat(out, " "))
elseif mode == "lanes" then
  -- A transfer over several sessions (LANES, DIR get or put), then the node's sshd processes
  -- before and after it: the extra sessions are closed once the transfer returns.
  -- An sshd ends a moment after its client has gone (an earlier run's, a test's ssh): "before"
  -- is a count that held for 0.5 s, "after" waits up to 10 s for `want`.
  local sshd = sky.fn(function(want)
    local n, same = nil, 0
    for _ = 1, 100 do
      local p = io.popen("pgrep -c -x sshd")
      local now = tonumber(p:read("a"))
      p:close()
      same = now == n and same + 1 or 0
      n = now
      if (want == nil and same >= 5) or (want ~= nil and n == want) then break end
      os.execute("sleep 0.1")
    end
    return n
  end)
  local before = sshd() >> pool
  local ok, err = pcall(function()
    if os.getenv("DIR") == "put" then
      return pool:put(os.getenv("SRC"), os.getenv("REMOTE"), { node = 0, lanes = lanes })
    end
    return pool:get(os.getenv("REMOTE"), os.getenv("DEST"), { node = 0, lanes = lanes })
  end)
  print(ok and "LANES ok" or ("ERROR " .. tostring(err)))
  print(("SSHD %d %d"):format(before, sshd(before) >> pool))
elseif mode == "put" then
  local ok, err = pcall(function()
    return pool:put(os.getenv("SRC"), os.getenv("REMOTE"), { node = 0, lanes = lanes })
  end)
  print(ok and "PUT ok" or ("ERROR " .. tostring(err)))
elseif mode == "get" then
  local ok, err = pcall(function()
    return pool:get(os.getenv("REMOTE"), os.getenv("DEST"), { node = 0, lanes = lanes })
  end)
  print(ok and ("GOT " .. err[1]) or ("ERROR " .. tostring(err)))
elseif mode == "transfer" then
  local src = os.getenv("SRC")
  pool:put(src, "data/in.bin")
  local paths = pool:get("data/in.bin", os.getenv("DEST"))
  print("GOT " .. table.concat(paths, " "))
end
