-- Pools: provision nodes through a provider, start a worker on each, run tasks, tear down.
-- The state machine: requested → provisioning → ready → draining → destroyed, each step an
-- event. Whatever fails on the way, what was created is destroyed before the error is raised.
local core = require "skyhost.core"
local cpool = require "skyhost.pool"
local errors = require "sky.errors"
local events = require "sky.events"
local options = require "sky.options"
local broker = require "sky.broker"
local connect = require "sky.pool.connect"
local plugin = require "sky.plugin"
local sched = require "sky.internal.sched"
local lifetime = require "sky.pool.lifetime"
local failure = require "sky.internal.failure"
local fnmod = require "sky.fn"
local ssh = require "skyhost.ssh"
local display = require "sky.pool.display"
local journal = require "sky.pool.journal"
local replace = require "sky.pool.replace"

local M = {}

local Pool = {}
Pool.__index = Pool
Pool.__name = "sky.pool"

local _open = {}  -- id -> pool, for teardown of pools left open
local _last_id = 0

local SCHEMA = {
  provider = "string|table",
  nodes = "integer",
  concurrency = "integer",
  prefetch = "integer",
  retries = "integer",
  max_frame = "integer",
  task_timeout = "number",
  ttl = "number",
  timeout = "number",  -- the pool's maximum lifetime (stdlib/sky/pool/lifetime.lua)
  image = "table",
  connect_timeout = "number",
  -- an SSH node silent this long is lost: keepalives every interval, lost after count of them
  keepalive_interval = "number",
  keepalive_count = "integer",
  setup_timeout = "number",
  name = "string",
  on_event = "callable",
  display = "string",
  metrics_interval = "number",  -- seconds between a node's Metric events; 0: none
  -- what to run on and how to choose it (stdlib/sky/broker/init.lua, docs/broker.md)
  accelerator = "string|table",
  region = "string|table",
  zone = "string|table",
  selection = "string|function",
  allocation = "string|function",
  spot = "boolean",
  max_price = "number",
  budget = "number",
  provision_timeout = "number",
  replace = "boolean",  -- a lost node gets a new instance (stdlib/sky/pool/replace.lua)
}

M.DISPLAYS = { "auto", "log", "quiet", "spinner" }
M.MAX_FRAME = 1 << 30  -- the largest message either way (host/links/wire.hpp kMaxFrame)

local function _check_options(opts)
  opts = options.check("sky.compute", opts, SCHEMA)
  local function positive(key)
    local v = opts[key]
    if v ~= nil and v < 1 then
      errors.raise("BadOption", ("sky.compute: option '%s' must be at least 1, got %d"):format(key, v))
    end
  end
  positive("nodes")
  positive("concurrency")
  positive("keepalive_count")
  if opts.keepalive_interval ~= nil and opts.keepalive_interval <= 0 then
    errors.raise("BadOption", "sky.compute: option 'keepalive_interval' must be a positive number of seconds")
  end
  if opts.retries and opts.retries < 0 then
    errors.raise("BadOption", "sky.compute: option 'retries' must be 0 or more")
  end
  if opts.max_frame and (opts.max_frame < 1024 or opts.max_frame > M.MAX_FRAME) then
    errors.raise("BadOption", ("sky.compute: option 'max_frame' must be 1024 to %d bytes, got %d")
      :format(M.MAX_FRAME, opts.max_frame))
  end
  if opts.display then options.one_of("sky.compute", "display", opts.display, M.DISPLAYS) end
  if opts.metrics_interval ~= nil and opts.metrics_interval < 0 then
    errors.raise("BadOption", "sky.compute: option 'metrics_interval' must be 0 or more seconds")
  end
  if opts.ttl ~= nil and opts.ttl <= 0 then
    errors.raise("BadOption", "sky.compute: option 'ttl' must be a positive number of seconds")
  end
  if opts.timeout ~= nil and opts.timeout <= 0 then
    errors.raise("BadOption", "sky.compute: option 'timeout' must be a positive number of seconds")
  end
  options.seconds("sky.compute", "task_timeout", opts.task_timeout)
  if opts.image ~= nil then opts.image = connect.check_image(opts.image) end
  return opts
end
M.check_options = _check_options  -- sky.pool{...} checks its options before the first call

-- A state change, recorded in the journal too (`skyhost ls` shows it).
function Pool:_set_state(state)
  self.state = state
  journal.mark_pool(self, state)
end

local function _emit(self, type_, fields)
  local ev = fields or {}
  ev.type = type_
  ev.pool = self.id
  events.deliver(self, ev)
end

local function _random_hex(bytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes)
  if f then f:close() end
  if not raw or #raw < bytes then
    raw = string.pack("<i4i4", core.pid(), math.random(0, 0x7fffffff)):sub(1, bytes)
  end
  return (raw:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- sky.compute{...}: a ready pool. Raises, having destroyed whatever it created, if it cannot.
function M.compute(opts)
  opts = _check_options(opts)
  _last_id = _last_id + 1
  local pub, priv = ssh.keygen("skyhost-pool")
  local name = opts.name or ("pool-" .. _last_id)
  local self = setmetatable({
    ssh_key = { public = pub, private = priv },  -- the pool's own key, for machines it creates
    id = _last_id,
    name = name,
    -- Unique across processes and hosts (two scripts on one machine both have a "pool-1"):
    -- names what a pool leaves on a shared node, such as its scratch directory there.
    uid = name:gsub("[^%w%-_.]", "_") .. "-" .. _random_hex(6),
    opts = opts,
    nodes = opts.nodes or (type(opts.provider) == "table" and opts.provider.default_nodes) or 1,
    ttl = opts.ttl or 600,
    state = "requested",
    handlers = {},
    instances = {},
    started = core.now(),
    _waits = {},
  }, Pool)
  self.deadline = opts.timeout and self.started + opts.timeout
  journal.notice_orphans()
  journal.open_pool(self)  -- before anything billable can exist
  if opts.on_event then self:on("*", opts.on_event) end
  events.subscribe(self, "InstanceLost", function(ev)
    replace.lost(self, ev.node)  -- before anything else runs: a broadcast now waits for it
    self:_check_alive(false)
    self:_node_lost(ev.node)
  end)
  self.display = display.resolve(opts.display)
  events.attach(self)
  _open[self.id] = self
  local ok, err = pcall(self._start, self)
  if not ok then
    self:close()
    if errors.is(err) then err.where = errors.user_site(2) end
    error(err, 0)
  end
  lifetime.watch(self)
  return self
end

function Pool:_start()
  _emit(self, "ClusterRequested", { nodes = self.nodes })
  self:_set_state("provisioning")
  local emit = function(type_, fields) _emit(self, type_, fields) end
  -- The broker walks the offers until one provisions and its workers come up (_bring_up on
  -- that attempt's placement); it cleans up every failed attempt itself.
  broker.provision(self, emit, {
    start = function(placement) self:_bring_up(placement, emit) end,
    stop = function() self:_drop_workers() end,
  })
  for i = 0, self.nodes - 1 do
    _emit(self, "InstanceReady", { node = i, hostname = self.core:node(i).hostname })
  end
  -- Renew the workers' dead-man lease well within its ttl.
  self.core:set_lease_interval(math.min(self.ttl / 4, 10))
  local image = self.opts.image
  if image and image.sync then self:_put(image.sync, image.workdir) end  -- docs/data.md
  self:_set_state("ready")
  _emit(self, "ClusterReady", { nodes = self.nodes, seconds = core.now() - self.started })
end

--- Takes `placement` (the broker's attempt: provider, cluster, offer, spot, price, instances),
--- starts a worker on each instance and waits until all are ready; raises if one cannot start
--- (the broker then calls _drop_workers and tries its next offer).
function Pool:_bring_up(placement, emit)
  self.provider, self.cluster = placement.provider, placement.cluster
  self.offer, self.instances = placement.offer, placement.instances
  self.spot, self.price = placement.spot, placement.price  -- the market bought, $/h per node
  self.core = cpool.new {
    id = self.id,
    concurrency = self.opts.concurrency or 0,  -- 0: each node runs one task per core
    prefetch = self.opts.prefetch,
    retries = self.opts.retries or 1,
    max_frame = self.opts.max_frame,
  }
  self.core:set_task_events(events.wants_task_events(self))
  connect.start_all(self, emit)
  sched.await(self.core:ready_wait())
  local why = self.core:start_error()
  if why then errors.raise("StartFailed", why) end
end

--- Removes the workers and sessions _bring_up made, and forgets its placement (a failed
--- attempt).
function Pool:_drop_workers()
  if self.core then
    self.core:destroy()
    self.core = nil
  end
  connect.close_sessions(self)
  self.provider, self.cluster, self.offer, self.instances = nil, nil, nil, {}
  self.spot, self.price = nil, nil
end

function Pool:_check_open()
  if self.state ~= "ready" then
    if self.state == "failed" then self:_check_alive(true) end
    local why = self.closed_reason and (": " .. self.closed_reason) or ""
    local fields = { pool = self.name }
    for k, v in pairs(self.closed_fields or {}) do fields[k] = v end  -- e.g. a timeout's limit
    errors.raise(self.closed_code or "PoolClosed", ("pool '%s' is %s%s"):format(self.name, self.state, why), fields)
  end
end

--- After node `node` was lost: asks its provider what became of its instance (not for local
--- workers or sky.ssh hosts, which are not bought). An instance the provider reports terminated
--- with `preempted = true` (a spot interruption) is an InstancePreempted event, and it no longer
--- counts as possibly running (the journal). The pool's retries run the node's tasks elsewhere.
function Pool:_check_preempted(node)
  local prov, inst = self.provider, self.instances[node + 1]
  if not prov or not inst or prov.ends_with_host or prov.name == "ssh" then return end
  local ok, now = pcall(prov.get_instance, prov, self.cluster, inst.id)
  if not ok or type(now) ~= "table" or now.state ~= "terminated" then return end
  journal.terminated(self, prov, { inst.id })
  broker.instances_ended(self, prov, { inst.id })
  if now.preempted and not (self._noticed or {})[node] then  -- said once, at the notice
    _emit(self, "InstancePreempted", { node = node, instance = inst.id,
      reason = now.reason or "spot interruption" })
  end
end

--- Node `node` was lost: what became of its instance (_check_preempted), then, with
--- `replace = true`, a new node in its place (stdlib/sky/pool/replace.lua) unless its spot
--- interruption notice started one already.
function Pool:_node_lost(node)
  sched.spawn(function()
    self:_check_preempted(node)
    if (self._noticed or {})[node] == "replacing" then return end
    replace.node_lost(self, node, function(type_, fields) _emit(self, type_, fields) end)
  end)
end

--- Node `node`'s instance announced its end (a spot interruption notice in its instance
--- metadata, sent by its worker): the scheduler sends it no new work, and the pool says
--- InstancePreempted now and, with `replace = true`, starts the replacement while it still runs.
function Pool:_spot_notice(ev)
  local node, inst = ev.node, self.instances[ev.node + 1]
  self._noticed = self._noticed or {}
  if self._noticed[node] or not inst then return end
  -- a pool not ready yet replaces the node when it is lost, as any other
  self._noticed[node] = (self.state == "ready" or self.state == "failed") and "replacing" or "noticed"
  _emit(self, "InstancePreempted", { node = node, instance = inst.id, reason = "spot interruption notice",
    action = ev.action, notice_time = ev.notice_time })
  if self._noticed[node] ~= "replacing" then return end
  sched.spawn(function()
    replace.node_lost(self, node, function(type_, fields) _emit(self, type_, fields) end)
  end)
end

--- A pool whose nodes are all lost is "failed": nothing it is given could ever run. With
--- `raise`, says so as an error naming why each node was lost.
function Pool:_check_alive(raise)
  local c = self.core
  if not c or (self.state ~= "ready" and self.state ~= "failed") or c:alive_count() > 0 then return end
  self:_set_state("failed")
  if not raise then return end
  local why = {}
  for i = 0, self.nodes - 1 do
    local n = c:node(replace.worker(self, i))
    why[#why + 1] = ("node %d: %s"):format(i, n.lost or "?")
  end
  errors.raise("NoLiveNodes", ("pool '%s' has no live nodes left (%s)"):format(self.name,
    table.concat(why, "; ")), { pool = self.name })
end

-- Nobody waits for a batch any more (an error or an interrupt unwound the wait, or its
-- coroutine was closed): its tasks still queued are dropped, those running cancelled.
local BatchGuard = {
  __close = function(g)
    if g.done then return end
    local pool = g.pool
    events.progress(pool, g.batch, nil)
    -- A pool closed meanwhile has dropped every batch with its workers.
    if pool.state == "ready" or pool.state == "failed" then pool.core:release(g.batch) end
  end,
}

-- Waits for a batch. A pool closed meanwhile (its budget, another coroutine) wakes the wait,
-- and the caller gets PoolClosed instead of waiting forever.
function Pool:_await_batch(wait)
  self._waits[wait] = true
  sched.await(wait)
  self._waits[wait] = nil
  -- Its last node lost, the batch still has its tasks' own failures to report.
  if self.state ~= "failed" then self:_check_open() end
end

local function _timeout(self, p, timeout)
  return timeout or p.fn.timeout or self.opts.task_timeout
end

-- Submits tasks with submit(i) for i = 1..n. An argument that cannot travel fails the call on
-- the user's line, naming the task or item, and nothing of the batch runs.
local function _submit_all(self, batch, n, submit, what)
  local i = 0
  local ok, err = pcall(function()
    for j = 1, n do
      i = j
      submit(j)
    end
  end)
  if not ok then
    self.core:release(batch)
    if errors.is(err) then error(err, 0) end
    local msg = errors.message(err):gsub("^stdlib/[^:]*:%d+: ", "")
    errors.raise("CannotSend", ("%s %d: %s"):format(what, i, msg))
  end
end

--- Runs pending tasks and waits: what `>>`, `&` and sky.gather call (scripts use those, run,
--- broadcast and map). mode: "first" (first value of the one task), "all" (all its
--- values), "list" (list of each task's first value). pins[i]: node for task i, or nil.
--- `timeout`: seconds each task may run (else its sky.fn's, else the pool's task_timeout).
function Pool:dispatch(tasks, mode, pins, timeout)
  self:_check_open()
  if #tasks == 0 then return {} end  -- an empty group: nothing to wait for
  self:_check_alive(true)
  plugin.ship(self)
  local c = self.core
  local batch, wait = c:new_batch()
  local guard <close> = setmetatable({ pool = self, batch = batch }, BatchGuard)
  _submit_all(self, batch, #tasks, function(i)
    local p = tasks[i]
    c:submit(batch, c:define(p.closure), pins and pins[i], p.args, _timeout(self, p, timeout))
  end, "task")
  self:_await_batch(wait)
  guard.done = true
  local r = table.pack(c:results(batch, mode == "list" and "list" or "all"))
  if not r[1] then
    local f = r[2]
    error(failure.error(self, f, nil, tasks[f.index].fn.name), 0)
  end
  if mode == "first" then return r[2] end
  return table.unpack(r, 2, r.n)
end

local RUN_OPTIONS = { timeout = "number" }

local function _run_options(what, opts)
  opts = options.check(what, opts, RUN_OPTIONS)
  options.seconds(what, "timeout", opts.timeout)
  return opts
end

--- All return values of a task; for a group, each task's first value, as separate returns.
--- opts: {timeout = seconds per task}.
function Pool:run(p, opts)
  opts = _run_options("pool:run", opts)
  if fnmod.is_group(p) then
    return table.unpack(self:dispatch(p.tasks, "list", nil, opts.timeout))
  end
  if not fnmod.is_pending(p) then
    errors.raise("BadArgument", ("pool:run: expected a pending task, got %s%s")
      :format(type(p), fnmod.is_fn(p) and " (a sky.fn: call it, pool:run(f(args)))" or ""))
  end
  return self:dispatch({ p }, "all", nil, opts.timeout)
end

--- The task on every node; results in node order (results[1] is node 0). A node being
--- replaced is waited for, and its replacement runs the task (stdlib/sky/pool/replace.lua).
function Pool:broadcast(p, opts)
  opts = _run_options("pool:broadcast", opts)
  if not fnmod.is_pending(p) then
    errors.raise("BadArgument", ("pool:broadcast: expected a pending task, got %s%s")
      :format(type(p), fnmod.is_fn(p) and " (a sky.fn: call it, pool:broadcast(f(args)))" or ""))
  end
  self:_check_open()
  local all = {}
  for i = 1, self.nodes do all[i] = i - 1 end
  replace.await(self, all)
  local tasks, pins = {}, {}
  for i = 1, self.nodes do
    tasks[i], pins[i] = p, replace.worker(self, i - 1)
  end
  return self:dispatch(tasks, "list", pins, opts.timeout)
end

local MAP_OPTIONS = { concurrency = "integer", timeout = "number", errors = "string" }

--- fn(item) for each item, spread over the nodes; results in input order. opts: concurrency
--- (most items running at once), timeout (seconds per item), errors = "raise" (default: the
--- first failure raises) or "return" (returns results, failures).
function Pool:map(fn, items, opts)
  opts = options.check("pool:map", opts, MAP_OPTIONS)
  if opts.concurrency ~= nil and opts.concurrency < 1 then
    errors.raise("BadOption", ("pool:map: option 'concurrency' must be at least 1, got %d")
      :format(opts.concurrency))
  end
  options.seconds("pool:map", "timeout", opts.timeout)
  local collect = opts.errors == "return"
  if opts.errors ~= nil then options.one_of("pool:map", "errors", opts.errors, { "raise", "return" }) end
  if not fnmod.is_fn(fn) then
    if type(fn) ~= "function" then
      errors.raise("BadArgument", ("pool:map: expected a function, got %s"):format(type(fn)))
    end
    fn = fnmod.fn(fn)
  end
  if type(items) ~= "table" then
    errors.raise("BadArgument", ("pool:map: expected a list of items, got %s"):format(type(items)))
  end
  self:_check_open()
  plugin.ship(self)
  local n = #items
  if n == 0 then
    if collect then return {}, {} end
    return {}
  end
  self:_check_alive(true)
  local c = self.core
  local template = fn()  -- captures the function once for the whole map
  local timeout = _timeout(self, template, opts.timeout)
  local batch, wait = c:new_batch(opts.concurrency, collect)
  local guard <close> = setmetatable({ pool = self, batch = batch }, BatchGuard)
  local closure
  _submit_all(self, batch, n, function(i)
    closure = closure or c:define(template.closure)  -- inside: a function that cannot travel
    c:submit(batch, closure, nil, { n = 1, items[i] }, timeout)
  end, "pool:map: item")
  events.progress(self, batch, { what = "map", total = n, started = core.now(),
    poll = function() return c:progress(batch) end })
  self:_await_batch(wait)
  guard.done = true
  events.progress(self, batch, nil)
  if collect then
    local results, failed = c:results(batch, "collect")
    for i, f in ipairs(failed) do
      failed[i] = { index = f.index, error = failure.error(self, f, "pool:map", fn.name, true) }
    end
    return results, failed
  end
  local ok, res = c:results(batch, "list")
  if not ok then error(failure.error(self, res, "pool:map", fn.name, true), 0) end
  return res
end

local function _nodes_for(self, what, opts)
  opts = options.check(what, opts, { node = "integer", lanes = "integer" })
  if opts.lanes ~= nil and (opts.lanes < 1 or opts.lanes > 16) then
    errors.raise("BadOption", ("%s: option 'lanes' must be 1 to 16, got %d"):format(what, opts.lanes))
  end
  if opts.node == nil then
    local all = {}
    for i = 0, self.nodes - 1 do all[#all + 1] = i end
    replace.await(self, all)
    return all, false
  end
  if opts.node < 0 or opts.node >= self.nodes then
    errors.raise("BadArgument", ("%s: node %d does not exist (nodes are 0 to %d)")
      :format(what, opts.node, self.nodes - 1))
  end
  replace.await(self, { opts.node })
  return { opts.node }, true
end

-- A job's kind as pool:transfer names it: a directory sync is a tree transfer.
local TRANSFER_KIND = { sync = "put_dir", sync_get = "get_dir" }

local function _transfers(self, what, jobs)
  local waits = {}
  for i, j in ipairs(jobs) do
    waits[i] = self.core:transfer(replace.worker(self, j.node), TRANSFER_KIND[j.dir] or j.dir, j.local_path, j.remote,
      j.lanes or 0)
  end
  local failures, reports = {}, {}
  for i, id in ipairs(waits) do
    sched.await(id)
    local err, report = self.core:transfer_result(id)
    reports[i] = report
    if err then failures[#failures + 1] = ("node %d: %s"):format(jobs[i].node, err) end
  end
  if #failures > 0 then
    errors.raise("TransferFailed", what .. " failed on " .. table.concat(failures, "; "))
  end
  return reports
end

--- Copies the local file to `remote` on every node (or {node = i}), all at once. A relative
--- remote path is relative to the remote user's home; parent directories are created.
--- A local directory is synced: `remote` becomes a copy of its tree and only what differs
--- (by content) moves (docs/data.md, "Directories"); returns one report per node
--- ({sent, sent_bytes, copied, removed, entries, hashed, hashed_bytes}).
function Pool:put(local_path, remote, opts)
  self:_check_open()
  return self:_put(local_path, remote, opts)
end

function Pool:_put(local_path, remote, opts)
  if type(local_path) ~= "string" or type(remote) ~= "string" then
    errors.raise("BadArgument", "pool:put(local_path, remote_path [, {node = i}]) takes two paths")
  end
  local f = io.open(local_path, "rb")
  if not f then errors.raise("BadArgument", ("pool:put: cannot read %s"):format(local_path)) end
  local _, _, errno = f:read(0)
  f:close()
  local dir = errno == 21  -- EISDIR
  if dir and (remote:gsub("/+$", "") == "" or remote:match("^/+$")) then
    errors.raise("BadArgument", "pool:put: a directory needs a destination directory other than /")
  end
  local jobs = {}
  for _, n in ipairs((_nodes_for(self, "pool:put", opts))) do
    jobs[#jobs + 1] = { node = n, dir = dir and "sync" or "put", local_path = local_path,
      remote = dir and remote:gsub("/+$", "") or remote, lanes = opts and opts.lanes }
  end
  local reports = _transfers(self, "pool:put", jobs)
  if dir then return reports end
end

--- Copies `remote` from one node ({node = i}: to exactly `local_path`) or from every node (then
--- `local_path` is a directory: it gets <node>/<file name> per node). Returns the paths written.
--- A `remote` ending in "/" is a directory: the local one becomes a copy of its tree, only what
--- differs moving (docs/data.md, "Directories"); a second result lists one report per node.
function Pool:get(remote, local_path, opts)
  self:_check_open()
  if type(local_path) ~= "string" or type(remote) ~= "string" then
    errors.raise("BadArgument", "pool:get(remote_path, local_path [, {node = i}]) takes two paths")
  end
  local tree = remote:sub(-1) == "/"
  if tree and remote:match("^/+$") then
    errors.raise("BadArgument", "pool:get: a directory other than / (it would copy the whole machine)")
  end
  local nodes, one = _nodes_for(self, "pool:get", opts)
  local jobs, paths = {}, {}
  local name = remote:match("([^/]+)/*$") or remote
  for _, n in ipairs(nodes) do
    local dest = local_path
    if not one then
      local dir = ("%s/%d"):format(local_path, n)
      os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
      dest = dir .. "/" .. name
    end
    jobs[#jobs + 1] = { node = n, dir = tree and "sync_get" or "get", local_path = dest,
      remote = tree and remote:gsub("/+$", "") or remote, lanes = opts and opts.lanes }
    paths[#paths + 1] = dest
  end
  local reports = _transfers(self, "pool:get", jobs)
  if tree then return paths, reports end
  return paths
end

--- Handler for events of this pool: name is "*" or an event type, "TaskCompleted" or
--- "task_completed".
function Pool:on(name, fn)
  if type(name) ~= "string" then
    errors.raise("BadArgument", ("pool:on: expected an event name, got %s"):format(type(name)))
  end
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    errors.raise("BadArgument", ("pool:on: expected a function to call with each event, got %s")
      :format(type(fn)))
  end
  events.subscribe(self, name, fn)
  if self.core then self.core:set_task_events(events.wants_task_events(self)) end
  return self
end

--- Per node: {node, worker, hostname, pid, alive, executors, lost = why it was lost}; a
--- replaced node's is its replacement's (worker: its index in events).
function Pool:nodes_info()
  local out = {}
  for i = 0, self.nodes - 1 do
    local w = replace.worker(self, i)
    local n = self.core:node(w)
    n.node, n.worker = i, w
    out[#out + 1] = n
  end
  return out
end

--- Ends the pool before its script does (its timeout, its budget): says so on stderr, records
--- why — what then waits on the pool fails with `how.code` (default PoolClosed) and
--- `how.fields` — and closes it, giving running tasks `how.grace` seconds.
function Pool:end_early(how)
  io.stderr:write(("skyhost: pool %s: %s; draining and tearing down the pool now\n")
    :format(self.name, how.reason))
  self.closed_code, self.closed_reason, self.closed_fields = how.code, how.reason, how.fields
  self.stop_grace = how.grace
  pcall(self.close, self)
end

--- Stops every worker, terminates every instance, releases the provider. Idempotent; safe
--- from an error path, a <close>, or teardown after Ctrl-C.
function Pool:close()
  if self.state == "destroyed" then return end
  -- After Ctrl-C the pool's <close> runs while the interrupt unwinds the script: its waits (the
  -- provider's terminate calls) must not be interrupted too, or machines stay up unconfirmed.
  return sched.shielded(self._close, self)
end

function Pool:_close()
  if self.state == "destroyed" then return end
  local resumed = false
  if self.state == "draining" then
    -- Another coroutine is closing it (a budget stop): wait for that, unless teardown cut that
    -- coroutine short, in which case the rest of the job is done here.
    local closer = self._closer
    if closer == coroutine.running() then return end
    while self.state == "draining" and coroutine.status(closer) ~= "dead" do
      sched.await_always(core.sleep(0.02))
    end
    if self.state == "destroyed" then return end
    resumed = true
  end
  self:_set_state("draining")
  self._closer = coroutine.running()
  if not resumed then _emit(self, "ClusterDraining", { reason = self.closed_reason }) end
  local cleanups = errors.cleanups()
  if self.core then
    -- A budget stop gives running tasks no time: every second is billed.
    local grace = self.stop_grace or 5
    if not resumed then cleanups:run(function() sched.await_always(self.core:shutdown(grace)) end) end
    self.core:destroy()  -- kills anything the grace period did not end
  end
  connect.close_sessions(self)
  cleanups:run(broker.release, self)
  journal.close_pool(self)  -- kept for `skyhost ls` if an instance's end was not confirmed
  self.state = "destroyed"
  _open[self.id] = nil
  _emit(self, "ClusterDestroyed", { seconds = core.now() - self.started, reason = self.closed_reason })
  events.detach(self)
  for w in pairs(self._waits) do sched.complete(w) end  -- waiting callers get PoolClosed
  cleanups:raise()
end

Pool.__close = function(self) self:close() end

-- Commands on every node: pool:sh, pool:torchrun (stdlib/sky/pool/jobs.lua).
for name, method in pairs(require "sky.pool.jobs") do Pool[name] = method end
-- `5 >> pool`, `f >> pool` (f not called): the left side has no __shr, so Lua asks the pool.
function Pool.__shr(x, pool)
  fnmod.not_pending(x, ">>")
end

function Pool.__tostring(self)
  local nodes = display.plural(self.nodes, "node")
  local alive = self.core and (self.state == "ready" or self.state == "failed") and self.core:alive_count()
  if alive and alive < self.nodes then nodes = ("%d of %s alive"):format(alive, nodes) end
  return ("sky.pool(%s, %s, %s)"):format(self.name, nodes, self.state)
end

--- Closes every pool still open (end of script, error, interrupt).
function M.close_all()
  local ids = {}
  for id in pairs(_open) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local p = _open[id]
    if p then pcall(p.close, p) end
  end
end

sched.at_teardown(M.close_all)

function M.open_pools()
  local out = {}
  for _, p in pairs(_open) do out[#out + 1] = p end
  return out
end

return M
