-- Commands on every node of a pool: pool:sh (one shell command everywhere) and pool:torchrun (a
-- multi-node PyTorch launch). Both are tasks running sky.sh on the nodes (worker/lua/sky.lua),
-- so their output streams back as Log events while they run. Installed as pool methods.
local errors = require "sky.errors"
local fnmod = require "sky.fn"
local options = require "sky.options"
local replace = require "sky.pool.replace"  -- which worker is node 0 now

local M = {}

local SH_SCHEMA = { env = "table", cwd = "string", timeout = "number", check = "boolean", stdin = "string" }

local function _copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

local function _check_env(what, env)
  for k, v in pairs(env or {}) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
      errors.raise("BadOption", ("%s: env key %s is not a variable name"):format(what, tostring(k)))
    end
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      errors.raise("BadOption", ("%s: env.%s must be a string, got %s"):format(what, k, type(v)))
    end
  end
end

local function _tail(r, n)
  local text = (r.stderr ~= nil and r.stderr ~= "") and r.stderr or (r.stdout or "")
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

local function _status(r)
  if r.timed_out then return "timed out" end
  if r.signal then return "killed by " .. r.signal end
  return "exit status " .. tostring(r.code)
end

local run_sh = fnmod.fn(function(cmd, opts) return sky.sh(cmd, opts) end)

--- pool:sh(cmd [, opts]): the command on every node at once; results in node order
--- (results[1] from node 0). With check (the default) a failure on any node raises once all have
--- finished, naming each failed node with its status and last lines of output.
function M.sh(self, cmd, opts)
  if type(cmd) ~= "string" then
    errors.raise("BadArgument", ("pool:sh: expected a command string, got %s"):format(type(cmd)))
  end
  opts = options.check("pool:sh", opts, SH_SCHEMA)
  _check_env("pool:sh", opts.env)
  local remote = _copy(opts)
  remote.check = false  -- every node finishes; the failures are reported together below
  local results = self:broadcast(run_sh(cmd, remote))
  if opts.check == false then return results end
  local failed, nodes = {}, {}
  for i, r in ipairs(results) do
    if r.code ~= 0 or r.signal then
      nodes[#nodes + 1] = i - 1
      local tail = _tail(r, 5)
      failed[#failed + 1] = ("node %d: %s%s"):format(i - 1, _status(r),
        tail ~= "" and (":\n  " .. tail:gsub("\n", "\n  ")) or "")
    end
  end
  if #failed > 0 then
    local shown = #cmd > 120 and (cmd:sub(1, 120) .. "...") or cmd
    errors.raise("CommandFailed", ("pool:sh: '%s' failed on %d of %d nodes\n%s")
      :format(shown, #failed, #results, table.concat(failed, "\n")),
      { nodes = nodes, results = results, pool = self.name })
  end
  return results
end

local TORCHRUN_SCHEMA = {
  args = "table", nproc_per_node = "integer", env = "table", cwd = "string", timeout = "number",
  launcher = "string",
}

local free_port = fnmod.fn(function() return require("skyworker.shell").free_port() end)

local launch = fnmod.fn(function(o)
  local info = sky.instance_info()
  local nproc = o.nproc_per_node or math.max(info.gpu_count or 0, 1)
  local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local parts = {
    o.launcher, "--nnodes=" .. info.total_nodes, "--node_rank=" .. info.node,
    "--nproc_per_node=" .. nproc, "--master_addr=" .. q(info.head_addr),
    "--master_port=" .. o.port, q(o.script),
  }
  for _, a in ipairs(o.args) do parts[#parts + 1] = q(a) end
  local env = o.env
  env.MASTER_PORT = tostring(o.port)
  local r = sky.sh(table.concat(parts, " "), { env = env, cwd = o.cwd, timeout = o.timeout })
  r.node, r.nproc_per_node = info.node, nproc
  return r
end)

--- pool:torchrun(script [, {args, nproc_per_node, env, cwd, timeout, launcher}]): torchrun on
--- every node with --nnodes/--node_rank/--master_addr/--master_port set; returns per-node results
--- in node order. A failing rank fails the call with its node and output tail; the other nodes'
--- launches are stopped then.
function M.torchrun(self, script, opts)
  if type(script) ~= "string" then
    errors.raise("BadArgument", ("pool:torchrun: expected a script path, got %s"):format(type(script)))
  end
  opts = options.check("pool:torchrun", opts, TORCHRUN_SCHEMA)
  _check_env("pool:torchrun", opts.env)
  if opts.nproc_per_node ~= nil and opts.nproc_per_node < 1 then
    errors.raise("BadOption", "pool:torchrun: option 'nproc_per_node' must be at least 1")
  end
  local args = {}
  for i, a in ipairs(opts.args or {}) do
    if type(a) ~= "string" and type(a) ~= "number" then
      errors.raise("BadOption", ("pool:torchrun: args[%d] must be a string, got %s"):format(i, type(a)))
    end
    args[i] = tostring(a)
  end
  -- A port free on the head node now, rather than the one picked when the pool started: an
  -- earlier launch may still hold that one.
  replace.await(self, { 0 })
  local port = self:dispatch({ free_port() }, "first", { replace.worker(self, 0) })
  local o = {
    script = script, args = args, nproc_per_node = opts.nproc_per_node, env = _copy(opts.env),
    cwd = opts.cwd, timeout = opts.timeout, launcher = opts.launcher or "torchrun", port = port,
  }
  return self:broadcast(launch(o))
end

return M
