-- The `sky` module as a task sees it on a worker. Values named here travel by name: a function
-- that captured the host's sky.shard gets this one.
local shard = require "sky.common.shard"

local plugin = require "skyworker.plugin"

local M = {}
local _info = debug.getregistry()["skyworker.info"]

--- This node: node (0-based), total_nodes, is_head, head_addr, hostname, pid, provider, pool.
function M.instance_info()
  local copy = {}
  for k, v in pairs(_info) do copy[k] = v end
  return copy
end

function M.shard(...)
  return shard.shard(_info, ...)
end

local SH_OPTIONS = { env = "table", cwd = "string", timeout = "number", check = "boolean", stdin = "string" }
M.SH_TAIL = 1024 * 1024  -- bytes of stdout and of stderr a result keeps (the end)

local function _sh_failure(cmd, r)
  local how = r.timed_out and "timed out" or r.signal and ("killed by " .. r.signal)
    or ("exit status " .. r.code)
  local shown = #cmd > 200 and (cmd:sub(1, 200) .. "...") or cmd
  local text = r.stderr ~= "" and r.stderr or r.stdout
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local tail = table.concat(lines, "\n", math.max(1, #lines - 9))
  return ("sky.sh: command failed on node %d (%s): %s%s"):format(_info.node, how, shown,
    tail ~= "" and ("\n" .. tail) or "")
end

--- sky.sh(cmd [, {env=, cwd=, timeout=, check=, stdin=}]) → {code, signal, stdout, stderr,
--- timed_out, seconds}: /bin/sh -c cmd on this node, each output line a Log event as it comes.
function M.sh(cmd, opts)
  if type(cmd) ~= "string" then
    error(("sky.sh: expected a command string, got %s"):format(type(cmd)), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error(("sky.sh: expected an options table, got %s"):format(type(opts)), 2) end
  for k, v in pairs(opts) do
    local want = SH_OPTIONS[k]
    if not want then
      local names = {}
      for n in pairs(SH_OPTIONS) do names[#names + 1] = n end
      table.sort(names)
      error(("sky.sh: unknown option '%s' (valid options: %s)"):format(tostring(k), table.concat(names, ", ")), 2)
    end
    if type(v) ~= want then
      error(("sky.sh: option '%s' must be %s, got %s"):format(k, want, type(v)), 2)
    end
  end
  local env
  if opts.env then
    env = {}
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
        error(("sky.sh: env key %s is not a variable name"):format(tostring(k)), 2)
      end
      if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
        error(("sky.sh: env.%s must be a string, got %s"):format(k, type(v)), 2)
      end
      env[k] = tostring(v)
    end
  end
  if opts.timeout and opts.timeout <= 0 then error("sky.sh: option 'timeout' must be positive", 2) end
  local r = require("skyworker.shell").run(cmd, env, opts.cwd, opts.timeout, opts.stdin, M.SH_TAIL)
  if opts.check ~= false and (r.code ~= 0 or r.signal) then error(_sh_failure(cmd, r), 2) end
  return r
end

--- The metatable of plugin handles (sky.plugin on the host): a handle that travelled as an
--- upvalue or argument calls its plugin here, in this executor's plugin host.
M._plugin_mt = {
  __name = "sky.plugin",
  __call = plugin.call,
  __tostring = function(self) return ("sky.plugin(%s)"):format(self.name) end,
}

return M
