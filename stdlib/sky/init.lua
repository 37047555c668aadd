-- The `sky` module: what a script uses. Also preloaded as the global `sky`.
local core = require "skyhost.core"
local errors = require "sky.errors"
local fnmod = require "sky.fn"
local http = require "sky.http"
local json = require "sky.json"
local plugin = require "sky.plugin"
local pool = require "sky.pool"
local sched = require "sky.internal.sched"
local scope = require "sky.pool.scope"
local shard = require "sky.common.shard"
shard.fail = function(message) errors.raise("BadArgument", message) end
local accelerators = require "sky.broker.accelerators"
local catalog = require "providers.catalog"
local clouds = require "providers.clouds"
local multipool = require "sky.pool.multipool"
local override = require "sky.override"
local policy = require "sky.broker.policy"
local providers = require "providers"

local M = {}

M.version = core.version

M.fn = fnmod.fn
M.gather = fnmod.gather
M.compute = pool.compute
-- Native functions on the nodes (docs/plugins.md). The handles' metatable is a field so that
-- the codec sends it by name: the worker has its own under the same name.
M.plugin = plugin.plugin
M._plugin_mt = plugin.meta

-- The scoped form (stdlib/sky/pool/scope.lua): sky.pool{...}(main) runs main with a current pool,
-- which `task >> sky`, sky.run, sky.broadcast and sky.map use.
M.pool = scope.pool
M.current_pool = scope.current
M.run, M.broadcast, M.map = scope.run, scope.broadcast, scope.map
M.dispatch = scope.dispatch  -- `task >> sky`: the current pool dispatches (fn.lua)

--- sky.ssh{hosts = {...}, user =, identity =, known_hosts =, host_keys =}: a provider for
--- machines you already have (see providers/ssh.lua).
M.ssh = function(opts) return require("providers.ssh").new(opts) end
--- sky.slurm{partition =, account =, qos =, time =, gpus_per_node =, ...}: nodes of a Slurm
--- cluster, workers as job steps (see providers/slurm.lua, docs/slurm.md).
M.slurm = function(opts) return require("providers.slurm").new(opts) end
--- sky.aws{region =, zone =, profile =, image =, subnet =, endpoint =, ...}: EC2 instances
--- (providers/aws.lua, docs/aws.md).
M.aws = function(opts) return require("providers.aws").new(opts) end
--- sky.gcp{project =, zone =, region =, credentials =, image =, public_ip =, ...}: Compute Engine
--- instances (providers/gcp.lua, docs/gcp.md).
M.gcp = function(opts) return require("providers.gcp").new(opts) end
--- sky.runpod{}, sky.lambda{}, sky.digitalocean{}, sky.vast{}: JSON/REST clouds (providers/<cloud>.lua,
--- docs/clouds.md).
M.runpod = function(opts) return require("providers.runpod").new(opts) end
M.lambda = function(opts) return require("providers.lambda").new(opts) end
M.digitalocean = function(opts) return require("providers.digitalocean").new(opts) end
M.vast = function(opts) return require("providers.vast").new(opts) end
M.http = http
M.json = json

-- The broker (docs/broker.md): hardware by name, offers, policies, providers in Lua, several
-- pools at once.
M.accelerators = accelerators
M.catalog = catalog
M.policy = policy
M.provider = providers.define
M.override = override.override
M.multipool = multipool.multipool
-- sky.runpod{}, ...: the other cloud providers the catalog knows. Not implemented in
-- this build: the broker reports them as such (sky.provider{name = "aws", ...} implements one).
for _, c in ipairs(clouds.list) do
  if M[c.name] == nil then
    M[c.name] = function(opts) return providers.ref(c.name, opts) end
  end
end

--- Runs fn(...) concurrently with the caller; returns a handle whose :wait() gives fn's results
--- (or raises its error). Use it to drive several pools at once.
function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    errors.raise("BadArgument", ("sky.spawn: expected a function, got %s"):format(type(fn)))
  end
  local task = sched.spawn(fn, ...)
  scope.inherit(task.co)  -- the caller's current pool is the new coroutine's too
  return setmetatable({}, {
    __name = "sky.task",
    __index = {
      wait = function() return sched.join(task) end,
      done = function() return task.done end,
    },
  })
end

--- Waits for every handle from sky.spawn; returns a list of their first results.
function M.wait_all(handles)
  local out = {}
  for i, h in ipairs(handles) do out[i] = (h:wait()) end
  return out
end

--- Pauses the calling coroutine for `seconds`, letting everything else run.
function M.sleep(seconds)
  if type(seconds) ~= "number" then
    errors.raise("BadArgument", ("sky.sleep: expected seconds, got %s"):format(type(seconds)))
  end
  sched.await(core.sleep(seconds))
end

--- On the host (fn.local_call), this process stands for a one-node pool.
function M.instance_info()
  return {
    node = 0,
    total_nodes = 1,
    is_head = true,
    head_addr = "127.0.0.1",
    hostname = core.hostname(),
    pid = core.pid(),
    provider = "host",
  }
end

function M.shard(...)
  return shard.shard(M.instance_info(), ...)
end

--- sky.sh runs on a node, inside a task (worker/lua/sky.lua); defined here so that a function
--- that captured it travels, and so that calling it on the host says what to do instead.
function M.sh(cmd)
  errors.raise("NotOnNode", ("sky.sh(%q) runs inside a task on a node; on the host use "
    .. "pool:sh(cmd) for every node, or os.execute"):format(tostring(cmd)))
end

return M
