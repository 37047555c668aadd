-- Native plugins (docs/plugins.md). sky.plugin(path, name) is a remote-able function like a
-- sky.fn: calling it makes a pending task, which runs the C or C++ function `name` from the
-- shared library at `path` in a plugin host on the node. Here: the handle, and shipping the
-- library to SSH nodes, once per node, by content hash.
local core = require "skyhost.core"
local ssh = require "skyhost.ssh"
local errors = require "sky.errors"
local fnmod = require "sky.fn"
local options = require "sky.options"
local sched = require "sky.internal.sched"

local M = {}

-- The handles' metatable. It is also sky._plugin_mt, so a handle that a Lua function captures
-- travels as plain fields plus this metatable's name, and becomes on the node a handle with the
-- worker's metatable of that name, which calls the plugin there.
local Plugin = { __name = "sky.plugin" }
M.meta = Plugin

local _files = {}  -- every plugin file named in this script, in order: {path, hash, remote}
local _seen = {}   -- path .. hash -> true
local _defs = setmetatable({}, { __mode = "k" })  -- handle -> the task's function bytes

local function _basename(path) return path:match("([^/]+)/*$") or path end

--- sky.plugin(path, name [, {isolate = false}]) or sky.plugin{path = ..., name = ...,
--- isolate = ...}: the function `name` (exported with SKY_PLUGIN(name)) of the shared library
--- at `path`, as a remote-able function. The file is read now (its content hash names it on the
--- nodes); it is loaded on a node at first use. isolate = false runs it in the worker itself:
--- no process switch per call, but a crash takes the worker (the node) down.
function M.plugin(path, name, opts)
  if type(path) == "table" and name == nil then
    opts = { isolate = path.isolate }
    path, name = path.path, path.name
  end
  opts = options.check("sky.plugin", opts, { isolate = "boolean" })
  if type(path) ~= "string" then
    errors.raise("BadArgument", ("sky.plugin: expected the path of a shared library, got %s"):format(type(path)))
  end
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    errors.raise("BadArgument", ("sky.plugin: expected the plugin's name (a C identifier, as in SKY_PLUGIN(name)), got %s")
      :format(type(name) == "string" and ("%q"):format(name) or type(name)))
  end
  local hash, err = ssh.file_sha256(path)
  if not hash then errors.raise("PluginMissing", "sky.plugin: " .. err) end
  hash = hash:sub(1, 20)
  if not _seen[path .. "\0" .. hash] then
    _seen[path .. "\0" .. hash] = true
    _files[#_files + 1] = {
      path = path, hash = hash, remote = (".skyhost/plugins/%s/%s"):format(hash, _basename(path)),
    }
  end
  return setmetatable({ name = name, path = path, symbol = name, hash = hash,
    isolate = opts.isolate ~= false }, Plugin)
end

function M.is_plugin(v) return getmetatable(v) == Plugin end

--- Calling a handle makes a pending task, as calling a sky.fn does.
function Plugin.__call(self, ...)
  local def = _defs[self]
  if not def then
    -- A worker tells it from a Lua function by the leading 0 (worker/plugin_host.hpp).
    def = string.pack("<BBBs4s4s4s4", 0, 1, self.isolate == false and 0 or 1, self.name, self.path,
      self.symbol, self.hash)
    _defs[self] = def
  end
  return fnmod.pending(self, def, table.pack(...))
end

function Plugin.__tostring(self) return ("sky.plugin(%s from %s)"):format(self.name, self.path) end

fnmod.register_kind(Plugin)

-- pool -> {sent = {[remote path] = true}, shipped = files shipped so far, busy = true while
-- a coroutine ships}: kept here, not in the pool, which only pool.lua writes.
local _state = setmetatable({}, { __mode = "k" })

local function _of(pool)
  local st = _state[pool]
  if not st then
    st = { sent = {}, shipped = 0 }
    _state[pool] = st
  end
  return st
end

local function _ship(pool)
  local count = #_files
  local sent = _of(pool).sent
  local jobs = {}
  for i, inst in ipairs(pool.instances or {}) do
    local node = i - 1
    -- Only SSH nodes get files: a local or command node (a Slurm step) reads this machine's
    -- (or the cluster's shared) file system.
    if inst.info and inst.info.transport == nil and pool.core:node(node).alive then
      local queued = {}  -- one file named by two paths is sent once
      for f = 1, count do
        local p = _files[f]
        if not sent[p.remote] and not queued[p.remote] then
          queued[p.remote] = true
          -- put_once: nothing is sent when the node already has the file under its hash
          jobs[#jobs + 1] = { node = node, p = p, wait = pool.core:transfer(node, "put_once", p.path, p.remote) }
        end
      end
    end
  end
  local failures = {}
  for _, j in ipairs(jobs) do
    sched.await(j.wait)
    local err = pool.core:transfer_result(j.wait)
    if err then failures[#failures + 1] = ("node %d: %s"):format(j.node, err) end
  end
  if #failures > 0 then
    errors.raise("PluginShipFailed", "cannot send plugins to the nodes: " .. table.concat(failures, "; "))
  end
  for f = 1, count do sent[_files[f].remote] = true end
  _of(pool).shipped = count
end

--- Before tasks go to a pool: every plugin file named so far is on each of its SSH nodes (local
--- nodes load the file from its path). Cheap when nothing is new.
function M.ship(pool)
  local st = _of(pool)
  if st.shipped == #_files then return end
  while st.busy do sched.await(core.sleep(0.01)) end  -- another coroutine ships
  if st.shipped == #_files then return end
  st.busy = true
  local ok, err = pcall(_ship, pool)
  st.busy = nil
  if not ok then error(err, 0) end
end

return M
