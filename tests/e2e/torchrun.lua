-- A real torch.distributed run (Debian's python3-torch, gloo on CPUs) started by pool:torchrun
-- on 2 local nodes: scripts/torch_ddp.py checks an all-reduce and a DDP training step. Run by
-- skyhost from the repository root (tests/CMakeLists.txt); torch takes seconds to import.
local t = require "testlib"
local sky = require "sky"
local core = require "skyhost.core"

local script = "scripts/torch_ddp.py"
-- Debian's torchrun fails under Python 3.11 before it starts anything; the shim fixes that.
local launcher = "/usr/bin/python3 tests/support/torchrun.py"
local probe = io.popen("/usr/bin/python3 -c 'import torch' 2>&1; echo rc=$?")
local said = probe:read("a")
probe:close()
if not said:find("rc=0", 1, true) then
  io.stderr:write("torchrun test needs Debian's python3-torch (.ci/packages.txt): " .. said)
  os.exit(1)
end

local pool <close> = sky.compute { nodes = 2, display = "quiet", metrics_interval = 0 }
local logs = {}
pool:on("log", function(ev) logs[#logs + 1] = ev end)

local function matching(pattern)
  local out = {}
  for _, ev in ipairs(logs) do
    local caps = { ev.text:match(pattern) }
    if #caps > 0 then out[#out + 1] = { ev = ev, caps = caps } end
  end
  return out
end

t.test("all-reduce and a DDP step over 2 nodes", function()
  local rs = pool:torchrun(script, { args = { "--steps", 15 }, timeout = 300, launcher = launcher })
  t.eq(#rs, 2)
  for i, r in ipairs(rs) do
    t.eq(r.node, i - 1)
    t.eq(r.code, 0)
    t.eq(r.nproc_per_node, 1, "no GPU: one process per node")
  end
  -- Every rank's output streamed back as Log events tagged with the node that ran it.
  local ar = matching("^allreduce rank (%d) node (%d): (%d+) %(expected (%d+)%)$")
  t.eq(#ar, 2)
  for _, m in ipairs(ar) do
    t.eq(tonumber(m.caps[2]), m.ev.node)
    t.eq(m.caps[3], "3")  -- n(n+1)/2 for n = 2
  end
  local ddp = matching("^ddp rank (%d) node (%d): loss ([%d.]+) %-> ([%d.]+), weights identical: (%a+), w=(%S+) b=(%S+)$")
  t.eq(#ddp, 2)
  for _, m in ipairs(ddp) do
    t.eq(tonumber(m.caps[2]), m.ev.node)
    t.ok(tonumber(m.caps[4]) < tonumber(m.caps[3]), "the loss fell: " .. m.ev.text)
    t.eq(m.caps[5], "True")
  end
  t.eq({ ddp[1].caps[6], ddp[1].caps[7] }, { ddp[2].caps[6], ddp[2].caps[7] }, "same weights on both ranks")
end)

local function torch_procs()
  local n = 0
  local ls = io.popen("ls /proc")
  local pids = ls:read("a")
  ls:close()
  for pid in pids:gmatch("%d+") do
    local f = io.open("/proc/" .. pid .. "/cmdline")
    if f then
      local cmd = f:read("a") or ""
      f:close()
      if cmd:find("torch_ddp.py", 1, true) and cmd:find("--fail-rank", 1, true) then n = n + 1 end
    end
  end
  return n
end

t.test("a failing rank fails the call with its node and output; the other node stops", function()
  logs = {}
  local err = t.raises(function()
    local _ = pool:torchrun(script, { args = { "--fail-rank", 1 }, timeout = 300, launcher = launcher })
  end, "task failed on node %d: .*sky.sh: command failed on node %d")
  t.eq(err.code, "TaskFailed")
  t.eq(#matching("^rank 1 failing on purpose$"), 1)
  local deadline = core.now() + 60
  while torch_procs() > 0 do
    if core.now() > deadline then error("torchrun processes still running a minute after the failure") end
    sky.sleep(0.1)
  end
  -- The pool is still usable.
  t.eq(#pool:sh("true"), 2)
end)

t.test("options are checked", function()
  t.raises(function() pool:torchrun(script, { nprocs = 2 }) end, "pool:torchrun: unknown option 'nprocs'")
  t.raises(function() pool:torchrun(script, { nproc_per_node = 0 }) end, "at least 1")
  t.raises(function() pool:torchrun(42) end, "expected a script path")
end)

t.done()
