-- Pools: provision nodes through a provider, start a worker on each, run tasks, tear down.
-- The state machine: requested → provisioning → ready → draining → destroyed, each step an
-- event. Whatever fails on the way, what was created is destroyed before the error is raised.
local core = require "skyhost.core"
local cpool = require "skyhost.pool"
local errors = require "sky.errors"
local events = require "sky.events"
local options = require "sky.options"
local broker = require "sky.broker"
local connect = require "sky.connect"
local sched = require "sky.sched"

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
  ttl = "number",
  image = "table",
  connect_timeout = "number",
  setup_timeout = "number",
  name = "string",
  on_event = "callable",
  display = "string",
  -- what to run on and how to choose it (stdlib/sky/broker.lua, docs/broker.md)
  accelerator = "string|table",
  region = "string|table",
  zone = "string|table",
  selection = "string|function",
  allocation = "string|function",
  spot = "boolean",
  max_price = "number",
  budget = "number",
  provision_timeout = "number",
}

M.DISPLAYS = { "auto", "log", "quiet", "spinner" }

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
  if opts.retries and opts.retries < 0 then
    errors.raise("BadOption", "sky.compute: option 'retries' must be 0 or more")
  end
  if opts.display then options.one_of("sky.compute", "display", opts.display, M.DISPLAYS) end
  if opts.ttl ~= nil and opts.ttl <= 0 then
    errors.raise("BadOption", "sky.compute: option 'ttl' must be a positive number of seconds")
  end
  if opts.image ~= nil then opts.image = connect.check_image(opts.image) end
  return opts
end

local function _emit(self, type_, fields)
  local ev = fields or {}
  ev.type = type_
  ev.pool = self.id
  events.deliver(self, ev)
end

--- sky.compute{...}: a ready pool. Raises, having destroyed whatever it created, if it cannot.
function M.compute(opts)
  opts = _check_options(opts)
  _last_id = _last_id + 1
  local pub, priv = require("skyhost.ssh").keygen("skyhost-pool")
  local self = setmetatable({
    ssh_key = { public = pub, private = priv },  -- the pool's own key, for machines it creates
    id = _last_id,
    name = opts.name or ("pool-" .. _last_id),
    opts = opts,
    nodes = opts.nodes or (type(opts.provider) == "table" and opts.provider.default_nodes) or 1,
    ttl = opts.ttl or 600,
    state = "requested",
    handlers = {},
    instances = {},
    started = core.now(),
    _waits = {},
  }, Pool)
  if opts.on_event then self:on("*", opts.on_event) end
  events.attach(self, opts.display)
  _open[self.id] = self
  local ok, err = pcall(self._start, self)
  if not ok then
    self:close()
    if errors.is(err) then err.where = errors.user_site(2) end
    error(err, 0)
  end
  return self
end

function Pool:_start()
  _emit(self, "ClusterRequested", { nodes = self.nodes })
  self.state = "provisioning"
  local emit = function(type_, fields) _emit(self, type_, fields) end
  -- The broker walks the offers until one provisions and its workers come up (_bring_up); it
  -- fills self.provider, self.offer, self.cluster, self.instances ({id, info}) and
  -- self.ledger, and cleans up every failed attempt itself.
  broker.provision(self, emit, {
    start = function() self:_bring_up(emit) end,
    stop = function() self:_drop_workers() end,
  })
  for i = 0, self.nodes - 1 do
    _emit(self, "InstanceReady", { node = i, hostname = self.core:node(i).hostname })
  end
  -- Renew the workers' dead-man lease well within its ttl.
  self.core:set_lease_interval(math.min(self.ttl / 4, 10))
  self.state = "ready"
  _emit(self, "ClusterReady", { nodes = self.nodes, seconds = core.now() - self.started })
end

--- Starts a worker on each of self.instances and waits until all are ready; raises if one
--- cannot start (the broker then drops them and tries its next offer).
function Pool:_bring_up(emit)
  self.core = cpool.new {
    id = self.id,
    concurrency = self.opts.concurrency or 4,
    prefetch = self.opts.prefetch,
    retries = self.opts.retries or 1,
  }
  self.core:set_task_events(events.wants_task_events(self))
  connect.start_all(self, emit)
  sched.await(self.core:ready_wait())
  local why = self.core:start_error()
  if why then errors.raise("StartFailed", why) end
end

--- Removes the workers and sessions _bring_up made (a failed attempt).
function Pool:_drop_workers()
  if self.core then
    self.core:destroy()
    self.core = nil
  end
  connect.close_sessions(self)
end

function Pool:_check_open()
  if self.state ~= "ready" then
    local why = self.closed_reason and (": " .. self.closed_reason) or ""
    errors.raise("PoolClosed", ("pool '%s' is %s%s"):format(self.name, self.state, why))
  end
end

-- Waits for a batch. A pool closed meanwhile (its budget, another coroutine) wakes the wait,
-- and the caller gets PoolClosed instead of waiting forever.
function Pool:_await_batch(wait)
  self._waits[wait] = true
  sched.await(wait)
  self._waits[wait] = nil
  self:_check_open()
end

local function _raise_task_error(self, failure)
  errors.raise("TaskFailed", ("task failed on node %s: %s"):format(failure.node, failure.message), {
    node = failure.node,
    remote_message = failure.message,
    remote_traceback = failure.traceback,
    pool = self.name,
  })
end

--- Runs pending tasks and waits. mode: "first" (first value of the one task), "all" (all its
--- values), "list" (list of each task's first value). pins[i]: node for task i, or nil.
function Pool:_dispatch(tasks, mode, pins)
  self:_check_open()
  local c = self.core
  local batch, wait = c:new_batch()
  for i, p in ipairs(tasks) do
    c:submit(batch, c:define(p.closure), pins and pins[i], p.args)
  end
  self:_await_batch(wait)
  local r = table.pack(c:results(batch, mode ~= "list"))
  if not r[1] then _raise_task_error(self, r[2]) end
  if mode == "first" then return r[2] end
  return table.unpack(r, 2, r.n)
end

--- All return values of a task; for a group, each task's first value, as separate returns.
function Pool:run(p)
  local fnmod = require "sky.fn"
  if fnmod.is_group(p) then return table.unpack(self:_dispatch(p.tasks, "list")) end
  if not fnmod.is_pending(p) then
    errors.raise("BadArgument", ("pool:run: expected a pending task, got %s"):format(type(p)))
  end
  return self:_dispatch({ p }, "all")
end

--- The task on every node; results in node order (results[1] is node 0).
function Pool:broadcast(p)
  if not require("sky.fn").is_pending(p) then
    errors.raise("BadArgument", ("pool:broadcast: expected a pending task, got %s"):format(type(p)))
  end
  local tasks, pins = {}, {}
  for i = 1, self.nodes do
    tasks[i], pins[i] = p, i - 1
  end
  return self:_dispatch(tasks, "list", pins)
end

--- fn(item) for each item, spread over the nodes; results in input order.
function Pool:map(fn, items, opts)
  local fnmod = require "sky.fn"
  opts = options.check("pool:map", opts, { concurrency = "integer" })
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
  local n = #items
  if n == 0 then return {} end
  local c = self.core
  local template = fn()  -- captures the function once for the whole map
  local closure = c:define(template.closure)
  local batch, wait = c:new_batch(opts.concurrency)
  for i = 1, n do
    c:submit(batch, closure, nil, { n = 1, items[i] })
  end
  self:_await_batch(wait)
  local ok, res = c:results(batch, false)
  if not ok then _raise_task_error(self, res) end
  return res
end

local function _nodes_for(self, what, opts)
  opts = options.check(what, opts, { node = "integer" })
  if opts.node == nil then
    local all = {}
    for i = 0, self.nodes - 1 do all[#all + 1] = i end
    return all, false
  end
  if opts.node < 0 or opts.node >= self.nodes then
    errors.raise("BadArgument", ("%s: node %d does not exist (nodes are 0 to %d)")
      :format(what, opts.node, self.nodes - 1))
  end
  return { opts.node }, true
end

local function _transfers(self, what, jobs)
  local waits = {}
  for i, j in ipairs(jobs) do waits[i] = self.core:transfer(j.node, j.dir, j.local_path, j.remote) end
  local failures = {}
  for i, id in ipairs(waits) do
    sched.await(id)
    local err = self.core:transfer_error(id)
    if err then failures[#failures + 1] = ("node %d: %s"):format(jobs[i].node, err) end
  end
  if #failures > 0 then
    errors.raise("TransferFailed", what .. " failed on " .. table.concat(failures, "; "))
  end
end

--- Copies the local file to `remote` on every node (or {node = i}), all at once. A relative
--- remote path is relative to the remote user's home; parent directories are created.
function Pool:put(local_path, remote, opts)
  self:_check_open()
  if type(local_path) ~= "string" or type(remote) ~= "string" then
    errors.raise("BadArgument", "pool:put(local_path, remote_path [, {node = i}]) takes two paths")
  end
  local f = io.open(local_path, "rb")
  if not f then errors.raise("BadArgument", ("pool:put: cannot read %s"):format(local_path)) end
  f:close()
  local jobs = {}
  for _, n in ipairs((_nodes_for(self, "pool:put", opts))) do
    jobs[#jobs + 1] = { node = n, dir = "put", local_path = local_path, remote = remote }
  end
  _transfers(self, "pool:put", jobs)
end

--- Copies `remote` from one node ({node = i}: to exactly `local_path`) or from every node (then
--- `local_path` is a directory: it gets <node>/<file name> per node). Returns the paths written.
function Pool:get(remote, local_path, opts)
  self:_check_open()
  if type(local_path) ~= "string" or type(remote) ~= "string" then
    errors.raise("BadArgument", "pool:get(remote_path, local_path [, {node = i}]) takes two paths")
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
    jobs[#jobs + 1] = { node = n, dir = "get", local_path = dest, remote = remote }
    paths[#paths + 1] = dest
  end
  _transfers(self, "pool:get", jobs)
  return paths
end

--- Handler for events of this pool: name is "*" or an event type, "TaskCompleted" or
--- "task_completed".
function Pool:on(name, fn)
  events.subscribe(self, name, fn)
  if self.core then self.core:set_task_events(events.wants_task_events(self)) end
  return self
end

--- Per node: {node, hostname, pid, alive}.
function Pool:nodes_info()
  local out = {}
  for i = 0, self.nodes - 1 do
    local n = self.core:node(i)
    n.node = i
    out[#out + 1] = n
  end
  return out
end

--- Stops every worker, terminates every instance, releases the provider. Idempotent; safe
--- from an error path, a <close>, or teardown after Ctrl-C.
function Pool:close()
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
  self.state = "draining"
  self._closer = coroutine.running()
  if not resumed then _emit(self, "ClusterDraining", {}) end
  local first_err
  local function try(f, ...)
    local ok, e = pcall(f, ...)
    if not ok and first_err == nil then first_err = e end
  end
  if self.core then
    -- A budget stop gives running tasks no time: every second is billed.
    local grace = self.stop_grace or 5
    if not resumed then try(function() sched.await_always(self.core:shutdown(grace)) end) end
    self.core:destroy()  -- kills anything the grace period did not end
  end
  connect.close_sessions(self)
  try(broker.release, self)
  self.state = "destroyed"
  _open[self.id] = nil
  _emit(self, "ClusterDestroyed", { seconds = core.now() - self.started })
  events.detach(self)
  for w in pairs(self._waits) do sched.complete(w) end  -- waiting callers get PoolClosed
  if first_err ~= nil then error(first_err, 0) end
end

Pool.__close = function(self) self:close() end

function Pool.__tostring(self)
  return ("sky.pool(%s, %d nodes, %s)"):format(self.name, self.nodes, self.state)
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

function M.open_pools()
  local out = {}
  for _, p in pairs(_open) do out[#out + 1] = p end
  return out
end

return M
