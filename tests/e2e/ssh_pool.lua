-- Driven by test_ssh.py: a pool on the test hosts, doing what arg[1] says.
-- Environment: SKYT_STATE (test hosts' client files), HOSTS (space-separated), KNOWN_HOSTS,
-- HOST_KEYS, TTL.
local st = os.getenv("SKYT_STATE")
local hosts = {}
for h in os.getenv("HOSTS"):gmatch("%S+") do hosts[#hosts + 1] = h end
local mode = arg[1]

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
elseif mode == "transfer" then
  local src = os.getenv("SRC")
  pool:put(src, "data/in.bin")
  local paths = pool:get("data/in.bin", os.getenv("DEST"))
  print("GOT " .. table.concat(paths, " "))
end
