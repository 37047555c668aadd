-- sky.state: the intent journal (host/state/state.cpp) — which pools and instances this host may have
-- created, so `skyhost ls/down` and crash recovery find them — and a TTL cache for offers.
--
-- One call per transition, each its own transaction:
--   local st = require "sky.state"
--   local id  = st.record_pool { name = "train", provider = "aws", info = { region = "us-east-1" } }
--   local key = st.record_instance_intent(id, "aws", { node = 0 })   -- BEFORE the create call
--   st.mark_instance(key, "launched", { instance_id = "i-0abc" })     -- after it returned
--   st.mark_pool(id, "ready")
--   st.mark_instance(key, "terminated")                               -- once confirmed
--   st.finish_pool(id)          -- → instances still not confirmed terminated (normally {})
-- The module functions use the store at $SKYHOST_STATE_DIR/state.db (~/.skyhost/state.db),
-- opened on first use; sky.state.open(path) gives a store object with the same methods.
local cstate = require "skyhost.state"
local errors = require "sky.errors"
local json = require "sky.json"

local M = {}

local Store = {}
Store.__index = Store
Store.__name = "sky.state.store"

local function _call(self, method, ...)
  if not self._db then errors.raise("StateClosed", "sky.state: the store is closed") end
  local r = table.pack(pcall(self._db[method], self._db, ...))
  if not r[1] then
    errors.raise("StateError", ("sky.state.%s: %s"):format(method, errors.message(r[2])))
  end
  return table.unpack(r, 2, r.n)
end

local function _encode_info(info)
  if info == nil then return nil end
  return json.encode(info)
end

local function _decode_info(rec)
  if rec and rec.info then
    rec.info = rec.info ~= "" and json.decode(rec.info) or nil
  end
  return rec
end

local function _decode_all(list)
  for _, rec in ipairs(list) do _decode_info(rec) end
  return list
end

--- Opens (creating) the journal at `path`, default $SKYHOST_STATE_DIR/state.db or
--- ~/.skyhost/state.db. Directories are created mode 0700.
function M.open(path)
  local ok, db = pcall(cstate.open, path)
  if not ok then errors.raise("StateError", "sky.state.open: " .. errors.message(db)) end
  return setmetatable({ _db = db }, Store)
end

function M.default_path() return cstate.default_path() end

function Store:path() return _call(self, "path") end

--- Records a pool ({id=, name=, provider=, info=}) in state "requested"; returns its id (a new
--- "sky-xxxxxxxx" if none was given). `info` is any JSON-encodable value.
function Store:record_pool(p)
  if type(p) ~= "table" then
    errors.raise("BadArgument", "sky.state.record_pool: expected a table {name=, provider=}")
  end
  return _call(self, "record_pool",
    { id = p.id, name = p.name, provider = p.provider, info = _encode_info(p.info) })
end

--- A pool's state transition (free-form: "provisioning", "ready", "draining" ...).
function Store:mark_pool(id, state) return _call(self, "mark_pool", id, state) end

--- Call BEFORE the provider's create call. Returns the instance's journal key.
function Store:record_instance_intent(pool_id, provider, info)
  return _call(self, "record_instance_intent", pool_id, provider, _encode_info(info))
end

--- An instance's transition; opts.instance_id once the provider gave one, opts.info to replace
--- its info. "terminated" / "failed" (provider confirmed nothing exists) are final.
function Store:mark_instance(key, state, opts)
  opts = opts or {}
  return _call(self, "mark_instance", key, state, opts.instance_id, _encode_info(opts.info))
end

--- Marks the pool destroyed; returns its instances not yet confirmed terminated.
function Store:finish_pool(id) return _decode_all(_call(self, "finish_pool", id)) end

--- Deletes a destroyed pool whose instances are all terminated.
function Store:forget_pool(id) return _call(self, "forget_pool", id) end

--- Pools not destroyed, or with instances not confirmed terminated (orphans), oldest first.
function Store:live_pools() return _decode_all(_call(self, "live_pools")) end

function Store:pool(id) return _decode_info(_call(self, "pool", id)) end

function Store:instances(pool_id) return _decode_all(_call(self, "instances", pool_id)) end

--- The cached value for (provider, key) if stored at most `ttl` seconds ago, else nil.
function Store:cache_get(provider, key, ttl)
  local text = _call(self, "cache_get", provider, key, ttl)
  if text == nil then return nil end
  return json.decode(text)
end

--- Caches `value` (JSON-encodable) for (provider, key), stamped now.
function Store:cache_put(provider, key, value)
  return _call(self, "cache_put", provider, key, json.encode(value))
end

--- Drops cache entries older than `age` seconds; returns how many.
function Store:cache_prune(age) return _call(self, "cache_prune", age) end

--- Runs fn(store) in one transaction: all its calls are kept, or none if it raises (the error
--- is re-raised). fn must not wait (no HTTP, no sleep): the transaction would stay open.
function Store:atomically(fn)
  _call(self, "begin")
  local r = table.pack(pcall(fn, self))
  if not r[1] then
    _call(self, "rollback")
    error(r[2], 0)
  end
  _call(self, "commit")
  return table.unpack(r, 2, r.n)
end

function Store:close()
  if self._db then
    self._db:close()
    self._db = nil
  end
end
Store.__close = Store.close

-- The module's functions work on the default store.
local _default
function M.default()
  if not _default then _default = M.open() end
  return _default
end

for _, name in ipairs({ "record_pool", "mark_pool", "record_instance_intent", "mark_instance",
  "finish_pool", "forget_pool", "live_pools", "pool", "instances", "cache_get", "cache_put",
  "cache_prune", "atomically" }) do
  M[name] = function(...) return Store[name](M.default(), ...) end
end

return M
