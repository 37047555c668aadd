-- A pool's entries in the intent journal (sky.state, docs/journal.md). Before a provider's create
-- call the pool records one intent per node it asks for; the ids the call returned are recorded
-- next to them; an instance is marked terminated only once its provider's terminate returned.
-- `skyhost ls` and `skyhost down` read the journal, and a pool whose skyhost died is an orphan.
--
-- The journal is a safety net: if it cannot be written (a read-only home, a full disk, a corrupt
-- file) skyhost says so once, and a pool runs without it only on providers whose machines end by
-- themselves (local workers, SSH hosts and Slurm jobs by their lease). Anything billable is
-- refused before it is created (M.require); what a pool could not record once its machines
-- existed is listed when it closes (M.close_pool).
local core = require "skyhost.core"
local errors = require "sky.errors"
local state = require "sky.state"

local M = {}

local _store, _broken  -- the journal, opened on first use; why it could not be used
-- pool -> {id = its journal id, keys = {[provider .. "\0" .. instance id] = journal key}}
local _entries = setmetatable({}, { __mode = "k" })

local function _warn(err)
  if _broken then return end
  _broken = tostring(err)
  io.stderr:write(("skyhost: cannot write the journal %s (%s): `skyhost ls` and `skyhost down` "
    .. "will not see this run's pools\n"):format(state.default_path(), _broken))
end

-- Runs fn(store); a journal that fails is reported once and left alone. `what`, for a pool's
-- entry `e`: what is lost if it is not written (listed when the pool closes).
local function _with(fn, e, what)
  local ok, r = false, nil
  if not _broken then
    ok, r = pcall(function()
      _store = _store or state.open()
      return fn(_store)
    end)
    if not ok then _warn(errors.is(r) and r.message or errors.message(r)) end
  end
  if not ok then
    if e and what then e.lost[#e.lost + 1] = what end
    return nil
  end
  return r
end

-- Machines of these providers end without skyhost: a pool may run on them without a journal.
local function _ends_by_itself(prov)
  return prov.ends_with_host or prov.ends_by_lease
end

--- Before `prov` may create anything for `pool` (its prepare, each provision): raises
--- JournalFailed, naming the journal and the fix, if the journal cannot record it and `prov`'s
--- machines would not end by themselves. Nothing is created then.
function M.require(pool, prov)
  if _entries[pool] and not _broken then return end
  if _ends_by_itself(prov) then return end
  errors.raise("JournalFailed", ("sky.compute: the journal %s cannot be written (%s), so nothing was "
    .. "created on %s: a machine it does not record could be forgotten and billed. Free space there "
    .. "or fix its permissions (a corrupt file: move it away), or set SKYHOST_STATE_DIR to a "
    .. "writable directory (docs/journal.md)"):format(state.default_path(), _broken or "not opened",
    tostring(prov.name)), { path = state.default_path() })
end

local function _read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- The kernel's start time of process `pid` (clock ticks since boot): with the boot id it tells
-- a live owner from a new process that reused its pid.
local function _start_time(pid)
  local stat = _read(("/proc/%d/stat"):format(pid))
  if not stat then return nil end
  local after = stat:match("%) (.*)$")  -- the command name may hold spaces and parentheses
  local fields = {}
  for f in (after or ""):gmatch("%S+") do fields[#fields + 1] = f end
  return fields[20]  -- field 22 of the line, 20th after the name
end

local function _boot_id() return (_read("/proc/sys/kernel/random/boot_id") or ""):gsub("%s", "") end

local function _hostname() return (_read("/proc/sys/kernel/hostname") or ""):gsub("%s", "") end

--- Who owns the pools this process creates: {pid, start, boot, host}.
function M.owner()
  local pid = core.pid()
  return { pid = pid, start = _start_time(pid), boot = _boot_id(), host = _hostname() }
end

--- "alive", "gone" (the owner process ended, or this machine rebooted since: its pools are
--- orphans) or "elsewhere" (another machine's: cannot tell).
function M.owner_state(owner)
  if type(owner) ~= "table" or owner.host ~= _hostname() then return "elsewhere" end
  if owner.boot ~= _boot_id() then return "gone" end  -- this machine rebooted since
  local start = _start_time(math.tointeger(owner.pid) or -1)
  return (start ~= nil and start == owner.start) and "alive" or "gone"
end

--- Records `pool` (state "requested"): a no-op without a journal.
function M.open_pool(pool)
  local id = _with(function(st)
    return st:record_pool { id = pool.uid, name = pool.name, provider = "",
      info = { owner = M.owner(), script = arg and arg[0] or nil, nodes = pool.nodes } }
  end)
  if id then _entries[pool] = { id = id, keys = {}, lost = {} } end
end

function M.mark_pool(pool, st_name)
  local e = _entries[pool]
  if e then _with(function(st) st:mark_pool(e.id, st_name) end) end
end

--- Before `prov.provision(cluster, n, offer)`: n intents. Returns their keys (maybe empty).
--- Raises JournalFailed (M.require) if they could not be recorded and `prov` is billable.
function M.intend(pool, prov, n, offer)
  M.require(pool, prov)
  local e = _entries[pool]
  if not e then return {} end
  local keys = _with(function(st)
    return st:atomically(function()
      local keys = {}
      for i = 1, n do
        local info = {
          node = i - 1, instance_type = offer.instance_type, region = offer.region,
          zone = offer.zone, spot = offer.spot and true or false, price = offer.attempt_price,
          -- worker processes that die with their host (the local provider): never an orphan
          ends_with_host = prov.ends_with_host or nil,
          -- nothing billable stays once its lease (ttl) ran out: SSH hosts, a Slurm holding job
          ends_by_lease = prov.ends_by_lease or nil,
        }
        -- what the provider needs to reach the instance from `skyhost down` (an endpoint, a profile)
        for k, v in pairs(type(prov.journal_info) == "table" and prov.journal_info or {}) do info[k] = v end
        keys[i] = st:record_instance_intent(e.id, prov.name, info)
      end
      return keys
    end)
  end)
  if not keys then M.require(pool, prov) end  -- broken just now
  return keys or {}
end

local function _ids_text(ids)
  local shown = {}
  for i, id in ipairs(ids) do shown[i] = tostring(id) end
  return table.concat(shown, ", ")
end

--- The provision call returned `ids` (maybe fewer than asked, maybe none): each recorded by its
--- intent; intents without an id are marked failed (nothing was created for them).
function M.launched(pool, keys, ids, prov)
  local e = _entries[pool]
  if not e or #keys == 0 then return end
  _with(function(st)
    st:atomically(function()
      for i, key in ipairs(keys) do
        if ids[i] ~= nil then
          st:mark_instance(key, "launched", { instance_id = tostring(ids[i]) })
          e.keys[prov.name .. "\0" .. tostring(ids[i])] = key
        else
          st:mark_instance(key, "failed")
        end
      end
    end)
  end, e, #ids > 0 and ("the launch of %s (%s)"):format(_ids_text(ids), prov.name) or nil)
end

--- `prov` confirmed that `ids` are terminated.
function M.terminated(pool, prov, ids)
  local e = _entries[pool]
  if not e then return end
  _with(function(st)
    st:atomically(function()
      for _, id in ipairs(ids) do
        local k = prov.name .. "\0" .. tostring(id)
        local key = e.keys[k]
        if key then
          st:mark_instance(key, "terminated")
          e.keys[k] = nil
        end
      end
    end)
  end, e, #ids > 0 and ("the termination of %s"):format(_ids_text(ids)) or nil)
end

--- The pool is destroyed: forgotten if nothing of it may still run, else kept for `skyhost ls`.
function M.close_pool(pool)
  local e = _entries[pool]
  if not e then return end
  _entries[pool] = nil
  _with(function(st)
    if #st:finish_pool(e.id) == 0 then st:forget_pool(e.id) end
  end, e, "the pool's end")
  if #e.lost > 0 then
    io.stderr:write(("skyhost: pool %s: the journal %s could not record %s (%s); it may still list "
      .. "the pool with machines it never learned the fate of: `skyhost ls` shows it, and once the "
      .. "journal can be written `skyhost down --orphans` confirms them through the provider\n")
      :format(pool.name, state.default_path(), table.concat(e.lost, "; "), _broken or "?"))
  end
end

--- The journal's pools with their owner's state ("alive", "gone", "elsewhere") and instances.
--- Orphans whose instances all ended with their owner (local worker processes) are settled
--- (marked terminated and forgotten) on the way: nothing of them can be running.
function M.pools(st)
  local out = {}
  for _, p in ipairs(st:live_pools()) do
    p.owner = M.owner_state(p.info and p.info.owner)
    p.instances = st:instances(p.id)
    local live, settle = 0, p.owner == "gone"
    for _, i in ipairs(p.instances) do
      if i.state ~= "terminated" and i.state ~= "failed" then
        live = live + 1
        settle = settle and i.info ~= nil and i.info.ends_with_host == true
      end
    end
    if settle then
      st:atomically(function()
        for _, i in ipairs(p.instances) do
          if i.state ~= "terminated" and i.state ~= "failed" then st:mark_instance(i.key, "terminated") end
        end
        st:finish_pool(p.id)
        st:forget_pool(p.id)
      end)
    else
      p.live = live
      out[#out + 1] = p
    end
  end
  return out
end

--- The journal itself (nil, why if it cannot be opened): for `skyhost ls` and `skyhost down`.
function M.store()
  local ok, st = pcall(function()
    _store = _store or state.open()
    return _store
  end)
  if not ok then return nil, errors.message(st) end
  return st
end

--- Once per process, at its first pool: one line if pools of a skyhost that is gone may still
--- hold machines.
function M.notice_orphans()
  if M._noticed then return end
  M._noticed = true
  local n = _with(function(st)
    local count = 0
    for _, p in ipairs(M.pools(st)) do
      if p.owner == "gone" then count = count + 1 end
    end
    return count
  end)
  if n and n > 0 then
    io.stderr:write(("skyhost: %d pool%s of a skyhost that is gone may still have machines: "
      .. "`skyhost ls` lists them, `skyhost down --orphans` ends them\n"):format(n, n == 1 and "" or "s"))
  end
end

return M
