-- sky.slurm{...}: nodes of an existing Slurm cluster, from the machine where sbatch, srun and
-- squeue work (a login node). One allocation per pool: an sbatch'ed holding job, which queues
-- like any batch job (its pending reason is reported), survives the host's death only as long as
-- its workers do (see HOLD below), and has a time limit as the last resort. Each node's worker is
-- a job step, `srun --jobid=J -w NODE skyworker`, whose stdin/stdout is the link: no SSH and no
-- open port on compute nodes. docs/slurm.md has the whole story.
local core = require "skyhost.core"
local errors = require "sky.errors"
local options = require "sky.options"
local sched = require "sky.internal.sched"
local accelerators = require "sky.broker.accelerators"

local M = {}

local SCHEMA = {
  partition = "string", account = "string", qos = "string", time = "string|number",
  gpus_per_node = "integer", gres = "string", constraint = "string", reservation = "string",
  sbatch_args = "table", price_per_gpu_hour = "number", price_per_node_hour = "number",
  worker = "string", command_timeout = "number",
}

M.POLL = 2          -- seconds between the holding job's looks at its own steps
M.GONE_WAIT = 30    -- seconds terminate waits for a cancelled job to leave the queue
M.PENDING_WAIT = 2  -- seconds get_instance keeps looking at a pending job before it answers
local ACTIVE = { PENDING = true, RUNNING = true, CONFIGURING = true, COMPLETING = true,
  SUSPENDED = true, REQUEUED = true, RESIZING = true, SIGNALING = true, STAGE_OUT = true }

local function _q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a Slurm client command; returns ok, stdout, stderr. In a session of its own (setsid),
--- so a Ctrl-C meant for skyhost does not kill the scancel that cleans up after it, and bounded
--- by `timeout` (a controller that does not answer).
function M.run(argv, timeout)
  local err = os.tmpname()
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = _q(a) end
  local f = io.popen(("setsid -w timeout %d %s 2>%s </dev/null"):format(math.ceil(timeout or 30),
    table.concat(parts, " "), _q(err)))
  local out = f:read("a")
  local ok, _, code = f:close()
  local ef = io.open(err, "r")
  local stderr = ef and ef:read("a") or ""
  if ef then ef:close() end
  os.remove(err)
  if code == 124 then stderr = ("%s did not answer within %d s"):format(argv[1], math.ceil(timeout or 30)) end
  return ok == true, out, (stderr:gsub("%s+$", ""))
end

local Provider = {}
Provider.__index = Provider

function Provider:_run(argv)
  return M.run(argv, self.command_timeout)
end

local function _bad(msg) errors.raise("BadOption", "sky.slurm: " .. msg) end

--- sky.slurm{...} → a provider usable as sky.compute{provider = ...}.
function M.new(opts)
  opts = options.check("sky.slurm", opts or {}, SCHEMA)
  if opts.gpus_per_node and opts.gres then _bad("give 'gpus_per_node' or 'gres', not both") end
  if opts.gpus_per_node and opts.gpus_per_node < 0 then _bad("'gpus_per_node' must be 0 or more") end
  for i, a in ipairs(opts.sbatch_args or {}) do
    if type(a) ~= "string" then _bad(("sbatch_args[%d] must be a string such as \"--mem=4G\", got %s"):format(i, type(a))) end
  end
  -- ends_by_lease: a holding job ends itself once its workers are gone (stdlib/sky/pool/journal.lua)
  local self = setmetatable({ name = "slurm", opts = opts, command_timeout = opts.command_timeout or 30,
    _jobs = {}, ends_by_lease = true }, Provider)
  -- Own fields, not only the metatable's: the broker copies a provider table's fields.
  for k, v in pairs(Provider) do
    if type(v) == "function" then self[k] = v end
  end
  return self
end

-- GRES "gpu:a100:2(S:0-1),gpu:v100:1" → list of {type = "a100", count = 2}.
local function _gpus(gres)
  local out = {}
  for item in (gres or ""):gmatch("[^,]+") do
    local t, n = item:match("^gpu:([^:(]+):(%d+)")
    if not t then n = item:match("^gpu:(%d+)") end
    if n then out[#out + 1] = { type = t, count = tonumber(n) } end
  end
  return out
end

--- Offers: one per partition, and per GPU type and count its nodes have (a node with 2 A100
--- serves 1 or 2 per node). capacity = idle nodes; price from price_per_gpu_hour or _node_hour.
function Provider:offers(_spec)
  local argv = { "sinfo", "-h", "-o", "%P|%G|%D|%T|%a" }
  if self.opts.partition then argv[#argv + 1] = "-p"; argv[#argv + 1] = self.opts.partition end
  local ok, out, err = self:_run(argv)
  if not ok then errors.raise("SlurmError", "sky.slurm: sinfo failed: " .. err) end
  local parts, order = {}, {}
  for line in out:gmatch("[^\n]+") do
    local name, gres, count, state, avail = line:match("^([^|]*)|([^|]*)|(%d+)|([^|]*)|([^|]*)$")
    local default = name and name:sub(-1) == "*"
    if default then name = name:sub(1, -2) end
    if name then
      local p = parts[name]
      if not p then
        p = { name = name, nodes = 0, idle = 0, up = avail == "up", gpus = {}, gpu_nodes = {} }
        parts[name] = p
        -- the cluster's default partition first: "cheapest" keeps list order among equals
        if default then table.insert(order, 1, name) else order[#order + 1] = name end
      end
      p.nodes = p.nodes + tonumber(count)
      if state:match("^idle") then p.idle = p.idle + tonumber(count) end
      for _, g in ipairs(_gpus(gres)) do
        local key = g.type or "?"
        p.gpus[key] = math.max(p.gpus[key] or 0, g.count)
        p.gpu_nodes[key] = (p.gpu_nodes[key] or 0) + tonumber(count)
      end
    end
  end
  if self.opts.partition and not parts[self.opts.partition] then
    local _, all = self:_run({ "sinfo", "-h", "-o", "%R" })
    local names = {}
    for n in (all or ""):gmatch("[^\n]+") do names[#names + 1] = n end
    _bad(("partition '%s' does not exist on this cluster (partitions: %s); fix 'partition' or leave it out for the default")
      :format(self.opts.partition, #names > 0 and table.concat(names, ", ") or "none"))
  end
  local list = {}
  local per_node = self.opts.price_per_node_hour or 0
  for _, name in ipairs(order) do
    local p = parts[name]
    -- a partition that is down queues jobs that never start: offered only when named
    if not p.up and not self.opts.partition then goto continue end
    local base = { provider = "slurm", partition = name, capacity = p.idle, nodes_total = p.nodes,
      available = p.up and p.idle > 0, region = name }
    local function add(extra)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      list[#list + 1] = o
    end
    add({ instance_type = name, price = per_node })
    for gtype, n in pairs(p.gpus) do
      local entry = gtype ~= "?" and accelerators.classify(gtype)
      for k = 1, n do
        add({ instance_type = ("%s/gpu:%s:%d"):format(name, gtype, k), accelerator = entry and entry.name or gtype,
          count = k, nodes_total = p.gpu_nodes[gtype], gres = gtype ~= "?" and ("gpu:%s:%d"):format(gtype, k) or ("gpu:%d"):format(k),
          price = per_node + (self.opts.price_per_gpu_hour or 0) * k })
      end
    end
    ::continue::
  end
  return list
end

-- The holding job: it lives while the pool's workers (job steps) do. Before the first step it
-- waits at most ttl seconds (the host died before starting any); after, it ends once no worker
-- step has been seen for two looks. So a host killed with -9 leaves nothing after its workers'
-- lease (ttl) plus a few seconds, even if nobody ever runs scancel.
local HOLD = [[
ttl=%d; seen=0; quiet=0
while :; do
  n=$(squeue -h -s -j "$SLURM_JOB_ID" -o %%i 2>/dev/null | grep -c -v -e '\.batch$' -e '\.extern$')
  if [ "$n" -gt 0 ]; then seen=1; quiet=0; else quiet=$((quiet + %d)); fi
  if [ $seen = 1 ] && [ $quiet -ge %d ]; then exit 0; fi
  if [ $quiet -ge $ttl ]; then exit 0; fi
  sleep %d
done
]]

function Provider:provision(cluster, n, offer)
  local o = self.opts
  local ttl = math.ceil(cluster.ttl or 600)
  -- Slurm would queue it for good (the partition might grow): say so instead
  if offer.nodes_total and n > offer.nodes_total then
    errors.raise("SlurmError", ("sky.slurm: partition '%s' has %d node%s%s, the pool asks for %d; ask for fewer nodes or another partition (nothing was queued)")
      :format(offer.partition, offer.nodes_total, offer.nodes_total == 1 and "" or "s",
        offer.gres and (" with " .. offer.gres) or "", n))
  end
  local argv = { "sbatch", "--parsable", "--no-requeue", "--output=/dev/null",
    "--job-name=skyhost-" .. tostring(cluster.name), "--nodes=" .. n, "--ntasks-per-node=1",
    "--partition=" .. (offer.partition or o.partition) }
  local function opt(flag, v) if v ~= nil then argv[#argv + 1] = flag .. "=" .. tostring(v) end end
  opt("--account", o.account); opt("--qos", o.qos); opt("--constraint", o.constraint)
  opt("--reservation", o.reservation); opt("--time", o.time)
  if o.gpus_per_node then opt("--gpus-per-node", o.gpus_per_node)
  else opt("--gres", o.gres or offer.gres) end
  for _, a in ipairs(o.sbatch_args or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "--wrap=" .. HOLD:format(ttl, M.POLL, 2 * M.POLL, M.POLL)
  local ok, out, err = self:_run(argv)
  local job = ok and out:match("^(%d+)")
  if not job then
    errors.raise("SlurmError", ("sky.slurm: sbatch refused the allocation (nothing was queued): %s"):format(
      err ~= "" and err or out))
  end
  self._jobs[job] = { emit = cluster.emit }
  local ids = {}
  for i = 1, n do ids[i] = ("%s.%d"):format(job, i - 1) end
  return ids
end

-- The job's state, reason and node names; one squeue per job per poll round.
function Provider:_job(job)
  local j = self._jobs[job] or {}
  self._jobs[job] = j
  if j.at and core.now() - j.at < 0.2 then return j end
  local ok, out, err = self:_run({ "squeue", "-h", "-t", "all", "-j", job, "-o", "%T|%r|%N" })
  if not ok and not err:find("Invalid job id") then errors.raise("SlurmError", "sky.slurm: squeue failed: " .. err) end
  local state, reason, nodes = (out or ""):match("^([^|]*)|([^|]*)|([^\n]*)")
  j.state, j.reason, j.at = state or "GONE", reason, core.now()
  if j.state == "RUNNING" and not j.hosts then
    local okh, hosts = self:_run({ "scontrol", "show", "hostnames", nodes })
    j.hosts = {}
    for h in (okh and hosts or ""):gmatch("%S+") do j.hosts[#j.hosts + 1] = h end
    j.addr = {}
    for _, h in ipairs(j.hosts) do
      local _, info = self:_run({ "scontrol", "show", "node", h })
      j.addr[h] = (info or ""):match("NodeAddr=(%S+)")
    end
  end
  return j
end

function Provider:get_instance(_cluster, id)
  local job, k = tostring(id):match("^(%d+)%.(%d+)$")
  if not job then errors.raise("BadInstance", ("sky.slurm: instance id %s is not JOB.INDEX"):format(tostring(id))) end
  local j = self:_job(job)
  -- The broker polls with growing gaps (up to seconds); a job usually starts within a
  -- scheduling pass, so look again often for a short while before answering "pending".
  local until_ = core.now() + M.PENDING_WAIT
  while (j.state == "PENDING" or j.state == "CONFIGURING") and core.now() < until_ do
    if j.emit and j.reason ~= j.told then break end  -- report a new reason at once
    sched.await(core.sleep(0.1))
    j = self:_job(job)
  end
  if j.state == "PENDING" or j.state == "CONFIGURING" then
    if j.emit and j.reason ~= j.told then
      j.told = j.reason
      j.emit("JobPending", { job = job, reason = j.reason })
    end
    return { id = id, state = "pending", reason = j.reason }
  end
  if j.state ~= "RUNNING" then return { id = id, state = "terminated", reason = j.state } end
  local host = j.hosts[tonumber(k) + 1]
  if not host then errors.raise("SlurmError", ("sky.slurm: job %s runs on %d nodes, not %d"):format(job, #j.hosts, k + 1)) end
  return {
    id = id, state = "running", transport = "command", hostname = host, ip = j.addr[host],
    worker = self.opts.worker, master_port = 29500 + tonumber(job) % 1000,
    -- -u: frames pass at once (srun forwards stdout line by line otherwise); --overlap: steps
    -- share the allocation with the holding script; the worker must not follow the host's
    -- PID as a local one does, so SKYWORKER_PARENT stays behind. The shell leads the task's
    -- process group, so the worker, which ends its group with SIGKILL when it leads one, exits
    -- cleanly instead of srun reporting "task 0: Killed" (Slurm kills the step's processes).
    command = { "env", "-u", "SKYWORKER_PARENT", "srun", "--jobid=" .. job, "--nodes=1", "--ntasks=1",
      "-w", host, "--overlap", "-u", "--quiet", "--kill-on-bad-exit=1",
      "/bin/sh", "-c", '"$0" "$@"; s=$?; exit $s' },
  }
end

--- scancel, then wait until the job has left the queue (raises if it does not, so the broker
--- retries and, failing that, says so).
function Provider:terminate(_cluster, ids)
  local jobs, seen = {}, {}
  for _, id in ipairs(ids) do
    local job = tostring(id):match("^(%d+)")
    if job and not seen[job] then seen[job] = true; jobs[#jobs + 1] = job end
  end
  for _, job in ipairs(jobs) do
    local ok, _, err = self:_run({ "scancel", job })
    if not ok and not err:find("Invalid job id") and not err:find("already completing or completed") then
      errors.raise("SlurmError", ("sky.slurm: scancel %s failed: %s"):format(job, err))
    end
  end
  local deadline = core.now() + M.GONE_WAIT
  for _, job in ipairs(jobs) do
    while true do
      self._jobs[job] = self._jobs[job] or {}
      self._jobs[job].at = nil
      local j = self:_job(job)
      if not ACTIVE[j.state] then break end
      if core.now() > deadline then
        errors.raise("SlurmError", ("sky.slurm: job %s is still %s %d s after scancel"):format(job, j.state, M.GONE_WAIT))
      end
      sched.await_always(core.sleep(0.2))
    end
    self._jobs[job] = nil
  end
end

-- `provider = "slurm"`: the module itself is a provider, sky.slurm{} with no options, made on
-- first use (so sky.override("providers.slurm.<method>", ...) wraps it too).
M.name = "slurm"
M.ends_by_lease = true
local _default
for _, m in ipairs({ "offers", "provision", "get_instance", "terminate" }) do
  M[m] = function(_, ...)
    _default = _default or M.new({})
    return _default[m](_default, ...)
  end
end

return M
