-- Commands on nodes (sky.sh, pool:sh), what tasks and their children print, node facts and
-- metrics: end to end on the local provider. Waits are bounded and never assert on durations.
local t = require "testlib"
local sky = require "sky"
local core = require "skyhost.core"

local pool <close> = sky.compute { nodes = 2, display = "quiet", metrics_interval = 0.2 }
local logs = {}
pool:on("log", function(ev) logs[#logs + 1] = ev end)

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

--- Waits (letting the loop run) until cond() is true; fails after `limit` seconds.
local function wait_for(what, cond, limit)
  local deadline = core.now() + (limit or 30)
  while not cond() do
    if core.now() > deadline then error("timed out waiting for " .. what, 2) end
    sky.sleep(0.02)
  end
end

local alive = t.alive

local function read_pids(path)
  local f = io.open(path)
  if not f then return nil end
  local pids = {}
  for p in f:read("a"):gmatch("%d+") do pids[#pids + 1] = tonumber(p) end
  f:close()
  return pids
end

local function gone_soon(pids)
  wait_for("processes " .. table.concat(pids, " ") .. " to end", function()
    for _, p in ipairs(pids) do
      if alive(p) then return false end
    end
    return true
  end, 10)
end

local function lines_of(task, stream)
  local out = {}
  for _, ev in ipairs(logs) do
    if (task == nil or ev.task == task) and (stream == nil or ev.stream == stream) then
      out[#out + 1] = ev.text
    end
  end
  return out
end

local sh = sky.fn(function(cmd, opts)
  local r = sky.sh(cmd, opts)
  r.task_node = sky.instance_info().node
  return r
end)

t.test("sky.sh returns code, stdout and stderr; each line is a Log event", function()
  logs = {}
  local r = sh("echo one; echo two; echo oops >&2") >> pool
  t.eq(r.code, 0)
  t.eq(r.signal, nil)
  t.eq(r.stdout, "one\ntwo\n")
  t.eq(r.stderr, "oops\n")
  local out, err = {}, {}
  for _, ev in ipairs(logs) do
    t.eq(ev.node, r.task_node)
    t.ok(math.type(ev.task) == "integer", "a command's lines carry their task")
    local list = ev.stream == "stdout" and out or err
    list[#list + 1] = ev.text
  end
  t.eq(out, { "one", "two" })
  t.eq(err, { "oops" })
end)

t.test("output streams while the command runs", function()
  logs = {}
  local gate = tmp .. "/gate"
  local h = sky.spawn(function()
    return sh(("echo first; while [ ! -e %s ]; do sleep 0.02; done; echo second"):format(gate)) >> pool
  end)
  -- The command cannot end before the gate exists, and the gate opens only after "first" came.
  wait_for("the first line", function() return #logs >= 1 end)
  t.eq(logs[1].text, "first")
  t.eq(h:done(), false)
  io.open(gate, "w"):close()
  t.eq(h:wait().stdout, "first\nsecond\n")
end)

t.test("exit codes, signals and check", function()
  local r = sh("echo partial; echo bad >&2; exit 3", { check = false }) >> pool
  t.eq(r.code, 3)
  t.eq(r.stdout, "partial\n")
  local err = t.raises(function() return sh("echo why >&2; exit 3") >> pool end,
    "sky.sh: command failed on node %d %(exit status 3%): echo why >&2; exit 3\nwhy")
  t.eq(err.code, "TaskFailed")
  r = sh("kill -TERM $$", { check = false }) >> pool
  t.eq(r.signal, "SIGTERM")
  t.eq(r.code, 128 + 15)
  t.raises(function() return sh("kill -KILL $$") >> pool end, "killed by SIGKILL")
  t.raises(function() return sh("true", { colour = 1 }) >> pool end, "unknown option 'colour'")
  t.raises(function() return sh("true", { timeout = "1" }) >> pool end, "'timeout' must be number")
  t.raises(function() return sh(42) >> pool end, "expected a command string")
  t.raises(function() sky.sh("true") end, "runs inside a task on a node")
end)

t.test("env, cwd and stdin", function()
  local r = sh('printf "%s|%s" "$GREETING" "$N"', { env = { GREETING = "hello there", N = 7 } }) >> pool
  t.eq(r.stdout, "hello there|7")
  t.eq((sh("pwd", { cwd = tmp }) >> pool).stdout, tmp .. "\n")
  t.raises(function() return sh("pwd", { cwd = tmp .. "/nowhere" }) >> pool end, "cannot change to directory")
  t.eq((sh("tr a-z A-Z", { stdin = "abc\ndef\n" }) >> pool).stdout, "ABC\nDEF\n")
  local big = ("0123456789"):rep(200000)  -- 2 MB through a pipe of 64 KiB
  t.eq((sh("wc -c", { stdin = big }) >> pool).stdout:match("%d+"), "2000000")
  t.eq((sh("cat") >> pool).stdout, "", "no stdin: /dev/null")
end)

t.test("every command sees the pool's identity and torch's variables", function()
  local rs = pool:sh('echo "$SKYHOST_NODE $SKYHOST_NODES $NODE_RANK $NNODES $MASTER_ADDR $SKYHOST_POOL $MASTER_PORT"')
  for i, r in ipairs(rs) do
    local node, nodes, rank, nnodes, addr, name, port = r.stdout:match("^(%d+) (%d+) (%d+) (%d+) (%S+) (%S+) (%d+)\n$")
    t.eq({ node, nodes, rank, nnodes, addr, name }, { tostring(i - 1), "2", tostring(i - 1), "2", "127.0.0.1", pool.name })
    t.ok(tonumber(port) > 0, r.stdout)
  end
  t.eq(rs[1].stdout:match("%d+\n$"), rs[2].stdout:match("%d+\n$"), "one MASTER_PORT for all")
end)

t.test("a timeout kills the command's whole process tree", function()
  local pids = tmp .. "/tree"
  local r = sh(("sleep 1000 & echo $! > %s; sh -c 'sleep 1000 & echo $! >> %s; wait' & wait"):format(pids, pids),
    { timeout = 0.5, check = false }) >> pool
  t.eq(r.timed_out, true)
  t.eq(r.signal, "SIGKILL")
  local list = read_pids(pids)
  t.eq(#list, 2)
  gone_soon(list)
  t.raises(function() return sh("sleep 1000", { timeout = 0.2 }) >> pool end, "%(timed out%): sleep 1000")
end)

t.test("what a command leaves running in its group ends with it", function()
  local r = sh("sleep 1000 >/dev/null 2>&1 & echo $!") >> pool
  gone_soon({ tonumber(r.stdout:match("%d+")) })
end)

t.test("10 MB of output: every line as an event, the tail in the result", function()
  logs = {}
  local r = sh("head -c 10000000 /dev/zero | tr '\\0' x | fold -w 99") >> pool
  t.eq(#r.stdout, 1024 * 1024, "captured text keeps the last MiB")
  t.eq(r.stdout:sub(-110), ("x"):rep(99) .. "\n" .. ("x"):rep(10))
  local n, bytes = 0, 0
  for _, ev in ipairs(logs) do
    if ev.stream == "stdout" then n, bytes = n + 1, bytes + #ev.text end
  end
  t.eq(n, 101011)  -- 10^7 / 99, rounded up: the last line has no newline
  t.eq(bytes, 10000000)
end)

t.test("a long line goes in 16 KiB pieces; output without a newline is not lost", function()
  logs = {}
  local r = sh("head -c 40000 /dev/zero | tr '\\0' y; printf 'no newline'") >> pool
  local got = lines_of(nil, "stdout")
  t.eq(#got, 3)
  t.eq({ #got[1], #got[2] }, { 16384, 16384 })
  t.eq(got[3], ("y"):rep(40000 - 32768) .. "no newline")
  t.eq(r.stdout, ("y"):rep(40000) .. "no newline")
  logs = {}
  local _ = sh("printf 'a\\r\\nb\\rprogress 1\\rprogress 2\\n'") >> pool
  t.eq(lines_of(nil, "stdout"), { "a", "b", "progress 1", "progress 2" })
end)

t.test("pool:sh runs on every node; failures are named once all finished", function()
  local rs = pool:sh("echo node $SKYHOST_NODE")
  t.eq({ rs[1].stdout, rs[2].stdout }, { "node 0\n", "node 1\n" })
  local done = tmp .. "/done0"
  local err = t.raises(function()
    local _ = pool:sh(('if [ "$SKYHOST_NODE" = 1 ]; then echo disk full >&2; exit 4; fi; sleep 0.3; touch %s'):format(done))
  end, "test_sh.lua:%d+: pool:sh: '.*' failed on 1 of 2 nodes\nnode 1: exit status 4:\n  disk full")
  t.eq(err.code, "CommandFailed")
  t.eq(err.nodes, { 1 })
  t.eq(err.results[1].code, 0)
  t.ok(io.open(done), "node 0 finished before the error")
  t.eq(#pool:sh("exit 9", { check = false }), 2)
  t.raises(function() pool:sh("true", { nodes = 1 }) end, "pool:sh: unknown option 'nodes'")
end)

t.test("a failing task stops the commands of the others in its group", function()
  local pidfile = tmp .. "/sibling"
  local slow = sh(("echo $$ > %s; exec sleep 1000"):format(pidfile))
  local fail = sky.fn(function(path)
    while not io.open(path) do os.execute("sleep 0.02") end
    error("rank failed")
  end)
  t.raises(function() return (slow & fail(pidfile)) >> pool end, "rank failed")
  local pids
  wait_for("the pid file", function() pids = read_pids(pidfile) return pids and #pids == 1 end)
  gone_soon(pids)
end)

t.test("a command still running when its pool closes is gone with it", function()
  local p = sky.compute { nodes = 1, display = "quiet" }
  local pidfile = tmp .. "/atclose"
  local h = sky.spawn(function()
    return pcall(function() return sh(("sleep 1000 & echo $! > %s; wait"):format(pidfile)) >> p end)
  end)
  local pids
  wait_for("the pid file", function() pids = read_pids(pidfile) return pids and #pids == 1 end)
  t.ok(alive(pids[1]))
  p:close()
  gone_soon(pids)
  t.eq(h:wait(), false)
end)

t.test("what tasks and their children write reaches the host line by line", function()
  logs = {}
  local _ = sky.fn(function()
    print("two\nlines")
    io.stderr:write("to stderr\n")
    os.execute("echo from a child; echo child error >&2")
    io.write("no newline, unflushed")
  end)() >> pool
  wait_for("the unflushed write", function()
    for _, ev in ipairs(logs) do
      if ev.text == "no newline, unflushed" then return true end
    end
    return false
  end)
  local seen = {}
  for _, ev in ipairs(logs) do
    t.ok(math.type(ev.node) == "integer", "tagged with its node")
    seen[#seen + 1] = ev.stream .. ":" .. ev.text
  end
  table.sort(seen)
  t.eq(seen, { "stderr:child error", "stderr:to stderr", "stdout:from a child", "stdout:lines",
    "stdout:no newline, unflushed", "stdout:two" })
end)

t.test("unflushed output of a task is not lost at teardown", function()
  local got = {}
  do
    local p <close> = sky.compute { nodes = 1, display = "quiet" }
    p:on("log", function(ev) got[#got + 1] = ev.text end)
    local _ = sky.fn(function() io.write("last words") end)() >> p
  end
  t.eq(got, { "last words" })
end)

t.test("node facts: CPUs and memory; no GPU here says 0", function()
  local info = sky.fn(function() return sky.instance_info() end)() >> pool
  t.ok(math.type(info.cpu_count) == "integer" and info.cpu_count >= 1, tostring(info.cpu_count))
  t.ok(info.memory_gb > 0, tostring(info.memory_gb))
  t.eq(info.gpu_count, 0)
  t.eq(info.gpu_memory_gb, 0)
  t.eq(info.gpu_model, nil)
end)

t.test("metrics arrive as Metric events from every node", function()
  local seen = {}
  pool:on("metric", function(ev) seen[ev.node .. " " .. ev.name] = ev end)
  wait_for("cpu, memory and load of both nodes", function()
    for n = 0, 1 do
      for _, name in ipairs({ "cpu", "memory", "load" }) do
        if not seen[n .. " " .. name] then return false end
      end
    end
    return true
  end)
  local cpu = seen["0 cpu"]
  t.eq(cpu.type, "Metric")
  t.eq(cpu.unit, "%")
  t.ok(cpu.value >= 0 and cpu.value <= 100, tostring(cpu.value))
  t.eq(seen["1 memory"].unit, "GB")
  t.ok(seen["1 memory"].value > 0)
  t.raises(function() sky.compute { metrics_interval = -1 } end, "'metrics_interval' must be 0 or more")
end)

os.execute("rm -rf " .. tmp)
t.done()
