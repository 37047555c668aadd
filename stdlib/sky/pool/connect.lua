-- From instances to workers. A local instance gets a worker process; a "command" one a worker
-- behind a command's pipes (a Slurm job step); any other is reached over SSH and bootstrapped: upload the worker (skipped when that exact binary is there), run the
-- image's steps with their output streamed as events, start the worker on an exec channel.
-- All nodes bootstrap at once; a failing node fails the pool, which tears everything down.
local core = require "skyhost.core"
local ssh = require "skyhost.ssh"
local errors = require "sky.errors"
local options = require "sky.options"
local sched = require "sky.internal.sched"
local lifetime = require "sky.pool.lifetime"

local M = {}

-- pool -> the SSH sessions its bootstrap opened, closed if its workers never start (close_sessions)
local _sessions = setmetatable({}, { __mode = "k" })

M.IMAGE_SCHEMA = { apt = "table", pip = "table", env = "table", setup = "string", workdir = "string",
  sync = "string" }

local function _q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.check_image(image)
  image = options.check("sky.compute: image", image, M.IMAGE_SCHEMA)
  -- image.sync replaces the workdir's contents: without a workdir it would empty the home.
  if image.sync and not image.workdir then
    errors.raise("BadOption", "sky.compute: image.sync needs image.workdir, the directory it fills")
  end
  for k, v in pairs(image.env or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      errors.raise("BadOption", ("sky.compute: image.env key %q is not a valid variable name"):format(tostring(k)))
    end
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      errors.raise("BadOption", ("sky.compute: image.env.%s must be a string, got %s"):format(k, type(v)))
    end
  end
  for _, key in ipairs({ "apt", "pip" }) do
    for i, pkg in ipairs(image[key] or {}) do
      if type(pkg) ~= "string" or not pkg:match("^[%w][%w%.%-%+_:=<>~!,%[%]]*$") then
        errors.raise("BadOption", ("sky.compute: image.%s[%d] = %s is not a package name")
          :format(key, i, tostring(pkg)))
      end
    end
  end
  return image
end

local _worker_hash
local function _worker_remote()
  if not _worker_hash then
    local h, err = ssh.file_sha256(core.worker_path())
    if not h then errors.raise("WorkerMissing", err .. " (set SKYHOST_WORKER to the skyworker binary)") end
    _worker_hash = h:sub(1, 20)
  end
  return ".skyhost/bin/skyworker-" .. _worker_hash
end

local function _env_prefix(env)
  local keys = {}
  for k in pairs(env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. _q(env[k]) end
  return #parts > 0 and ("export " .. table.concat(parts, " ") .. "; ") or ""
end

--- The image's steps as {phase, shell command}, in order.
function M.image_steps(image, pool_dir)
  local env = _env_prefix(image.env)
  local cd = image.workdir and ("mkdir -p " .. _q(image.workdir) .. " && cd " .. _q(image.workdir) .. " && ") or ""
  local sudo = 'S=; [ "$(id -u)" = 0 ] || S="sudo -n"; '
  local steps = {}
  if image.apt and #image.apt > 0 then
    steps[#steps + 1] = { "apt", sudo .. "export DEBIAN_FRONTEND=noninteractive; "
      .. "$S apt-get install -y --no-install-recommends " .. table.concat(image.apt, " ") }
  end
  if image.pip and #image.pip > 0 then
    local pkgs = {}
    for i, p in ipairs(image.pip) do pkgs[i] = _q(p) end
    steps[#steps + 1] = { "pip", env .. "python3 -m pip install " .. table.concat(pkgs, " ") }
  end
  if image.setup then
    steps[#steps + 1] = { "setup", env .. "mkdir -p " .. _q(pool_dir) .. " && " .. cd .. "sh -ec " .. _q(image.setup) }
  end
  return steps
end

local function _await(s, id)
  sched.await(id)
  return s:result(id)
end

local function _tail(text, lines)
  local all = {}
  for l in (text or ""):gmatch("[^\n]+") do all[#all + 1] = l end
  return table.concat(all, "\n", math.max(1, #all - lines + 1))
end

local function _bootstrap(pool, node, inst, emit)
  local info = inst.info
  local opts = info.ssh or {}
  local key = pool.ssh_key
  local s = ssh.session {
    host = info.ip, port = info.port or 22, user = info.user or "root", label = inst.id,
    identity_file = opts.identity_file,
    private_key = (not opts.identity_file and key) and key.private or nil,
    known_hosts = opts.known_hosts, host_keys = opts.host_keys,
    pinned = info.host_keys, connect_timeout = opts.connect_timeout or pool.opts.connect_timeout,
    keepalive_interval = pool.opts.keepalive_interval, keepalive_count = pool.opts.keepalive_count,
    pool = pool.id, node = node,
  }
  _sessions[pool] = _sessions[pool] or {}
  table.insert(_sessions[pool], s)
  local function phase(name) emit("BootstrapPhase", { node = node, instance = inst.id, phase = name }) end
  local function fail(step, r)
    local why = r.error or (r.signal and ("killed by signal " .. r.signal)) or ("exit status " .. r.code)
    errors.raise("BootstrapFailed", ("node %d (%s): %s failed (%s)%s"):format(node, inst.id, step, why,
      (r.tail and r.tail ~= "") and (":\n" .. _tail(r.tail, 12)) or ""), { node = node, step = step })
  end
  phase("connecting")
  local r = _await(s, s:connect())
  if not r.ok then errors.raise("ConnectFailed", ("node %d: %s"):format(node, r.error), { node = node }) end
  phase("uploading")
  local remote = _worker_remote()
  r = _await(s, s:step("mkdir -p .skyhost/bin && test -x " .. remote, "uploading", 60))
  if r.error then fail("checking the worker", r) end
  if r.code ~= 0 then
    r = _await(s, s:upload(core.worker_path(), remote, tonumber("755", 8)))
    if not r.ok then fail("uploading the worker", r) end
  end
  local master_port
  if node == 0 then  -- MASTER_PORT for every node: a port free on the head
    r = _await(s, s:step("\"$HOME\"/" .. remote .. " --free-port", "uploading", 30))
    master_port = r.ok and tonumber((r.tail or ""):match("(%d+)%s*$")) or nil
  end
  local pool_dir = ".skyhost/pools/" .. pool.uid
  local image = pool.opts.image or {}
  for _, st in ipairs(M.image_steps(image, pool_dir)) do
    phase(st[1])
    r = _await(s, s:step(st[2], st[1], pool.opts.setup_timeout or 1800))
    if not r.ok then fail(st[1] .. " step", r) end
  end
  phase("starting")
  local cd = image.workdir and ("mkdir -p " .. _q(image.workdir) .. " && cd " .. _q(image.workdir) .. " && ") or ""
  local cmd = ("%s%sexec \"$HOME\"/%s --concurrency %d --ttl %g --pool-dir \"$HOME\"/%s")
    :format(_env_prefix(image.env), cd, remote, pool.opts.concurrency or 0, pool.ttl, _q(pool_dir))
  local deadline = lifetime.worker_deadline(pool)  -- a pool with a timeout: the node knows it too
  if deadline then cmd = cmd .. (" --deadline %.3f"):format(deadline) end
  -- a provider whose machines bill until they end: the node powers itself off when its lease
  -- expires or its host is gone (sky.aws: on_expiry)
  if info.on_expiry then cmd = cmd .. " --on-expiry " .. _q(info.on_expiry) end
  -- a spot node watches its instance metadata for the provider's interruption notice (sky.aws)
  if info.spot_notice then cmd = cmd .. " --spot-notice " .. _q(info.spot_notice) end
  return s, cmd, master_port
end

M.bootstrap = _bootstrap  -- a replacement node's (stdlib/sky/pool/replace.lua)

--- A port free on this machine, for the head of a local pool.
local function _local_free_port()
  local f = io.popen(("%s --free-port 2>/dev/null"):format(_q(core.worker_path())))
  if not f then return nil end
  local port = tonumber(f:read("a"):match("%d+") or "")
  f:close()
  return port
end

--- Local nodes share this machine's cores: each runs one executor per core unless the pool
--- says otherwise. Far more workers or executors than cores only adds threads and memory, so
--- say so (once per pool) rather than silently start thousands of them.
function M.warn_local(pool, local_nodes)
  local n = 0
  for _ in pairs(local_nodes) do n = n + 1 end
  if n == 0 then return end
  local cores = core.cores()
  local executors = n * (pool.opts.concurrency or cores)
  if n > 4 * cores or executors > 64 * cores then
    io.stderr:write(("skyhost: warning: pool '%s' starts %d local workers (%d executor threads) "
      .. "on a %d-core machine; fewer nodes or a lower concurrency would run as fast\n")
      :format(pool.name, n, executors, cores))
  end
end

--- Starts a worker on every instance of the pool; returns when each has been handed to the
--- pool (readiness is awaited by the pool).
function M.start_all(pool, emit)
  local head = pool.instances[1] and pool.instances[1].info
  local head_addr = head and head.ip or "127.0.0.1"
  _sessions[pool] = {}
  local provider_name = pool.provider and pool.provider.name or "unknown"
  local tasks, local_nodes = {}, {}
  local identities = {}
  for i, inst in ipairs(pool.instances) do
    local node = i - 1
    identities[i] = {
      node = node, total_nodes = pool.nodes, is_head = node == 0, head_addr = head_addr,
      provider = provider_name, pool = pool.name, instance = inst.id,
      metrics_interval = pool.opts.metrics_interval or 5,
    }
    if inst.info.transport == "local" then
      local_nodes[i] = true
    elseif inst.info.transport == "command" then
      M.check_command(inst)
    elseif inst.info.ip then
      -- Each node in its own coroutine: a slow one does not hold the others up.
      tasks[i] = sched.spawn(_bootstrap, pool, node, inst, emit)
    else
      errors.raise("BadInstance", ("instance %s has neither an ip nor transport = \"local\" or \"command\""):format(inst.id))
    end
  end
  M.warn_local(pool, local_nodes)
  -- Workers join the pool in node order, so node i is the pool's node i. The head's bootstrap
  -- finds MASTER_PORT, which every node's identity carries.
  local master_port
  for i = 1, #pool.instances do
    local info = pool.instances[i].info
    if info.transport == "command" then
      identities[i].master_port = info.master_port
      pool.core:add_command_node(M.command_argv(pool, info), identities[i])
    elseif local_nodes[i] then
      if i == 1 then master_port = _local_free_port() end
      identities[i].master_port = master_port
      pool.core:add_local_node(core.worker_path(), identities[i], pool.opts.concurrency or 0,
        lifetime.worker_deadline(pool))
    else
      local s, cmd, port = sched.join(tasks[i])
      if i == 1 then master_port = port end
      identities[i].master_port = master_port
      pool.core:add_ssh_node(s, cmd, identities[i])
    end
  end
end

--- A "command" instance: the worker is reached through the pipes of a command the provider
--- names (a Slurm job step), {command = {argv...}, worker = path on the node}.
function M.check_command(inst)
  local cmd = inst.info.command
  if type(cmd) ~= "table" or #cmd == 0 then
    errors.raise("BadInstance", ("instance %s has transport = \"command\" but no command = {argv...}"):format(inst.id))
  end
  for j, a in ipairs(cmd) do
    if type(a) ~= "string" and type(a) ~= "number" then
      errors.raise("BadInstance", ("instance %s: command[%d] is a %s, not a string"):format(inst.id, j, type(a)))
    end
  end
end

--- The command's argv followed by the worker and its options: its dead-man lease (the node
--- outlives a silent host by ttl at most) and the pool's deadline.
function M.command_argv(pool, info)
  local argv = {}
  for j, a in ipairs(info.command) do argv[j] = tostring(a) end
  -- The image's env and workdir travel with the command; its install steps need a shell on
  -- the node before the worker exists, which only SSH bootstrap has.
  local image = pool.opts.image or {}
  for _, k in ipairs({ "apt", "pip", "setup" }) do
    local v = image[k]
    if v ~= nil and not (type(v) == "table" and #v == 0) then
      errors.raise("BadOption", ("sky.compute: image.%s runs over SSH, and these nodes are reached through a command (%s): install it on the cluster's nodes, or run it from a task with sky.sh")
        :format(k, tostring(info.command[1] == "env" and info.command[4] or info.command[1])))
    end
  end
  local keys = {}
  for k in pairs(image.env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  if image.workdir or #keys > 0 then
    argv[#argv + 1] = "env"
    if image.workdir then argv[#argv + 1] = "--chdir=" .. image.workdir end
    for _, k in ipairs(keys) do argv[#argv + 1] = k .. "=" .. tostring(image.env[k]) end
  end
  for _, a in ipairs({ info.worker or core.worker_path(), "--concurrency", tostring(pool.opts.concurrency or 0),
    "--ttl", ("%g"):format(pool.ttl) }) do
    argv[#argv + 1] = a
  end
  local deadline = lifetime.worker_deadline(pool)
  if deadline then
    argv[#argv + 1] = "--deadline"
    argv[#argv + 1] = ("%.3f"):format(deadline)
  end
  return argv
end

--- Closes the SSH sessions of nodes that never reached the pool (a failed bootstrap).
function M.close_sessions(pool)
  for _, s in ipairs(_sessions[pool] or {}) do s:close() end
  _sessions[pool] = nil
end

return M
