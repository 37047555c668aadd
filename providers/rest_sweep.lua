-- `skyhost down --sweep <cloud>` for the JSON/REST clouds (docs/journal.md): every instance (and
-- SSH key) the cloud lists under a skyhost pool's name, grouped by pool; what belongs to no pool
-- live in the journal is deleted and waited for until the API lists none of it. The clouds name
-- what they create skyhost-<pool>-<i> (keys skyhost-<pool>), so a crash between a create call and
-- its answer, which the journal cannot record, is found this way too.
local errors = require "sky.errors"

local M = {}

M.WAIT = 600  -- seconds to wait until the API lists none of a swept pool's instances

--- The pool uid in an instance's name or label skyhost-<pool>-<i>, nil if none.
function M.pool_of_instance(name)
  return type(name) == "string" and name:match("^skyhost%-(.+)%-%d+$") or nil
end

--- The pool uid in a key's name skyhost-<pool>, nil if none.
function M.pool_of_key(name)
  return type(name) == "string" and name:match("^skyhost%-(.+)$") or nil
end

--- The base URL a sweep of `cloud` talks to: $SKYHOST_<CLOUD>_API (a proxy, the tests' fakes, as
--- for `skyhost offers`), else the provider's own.
function M.api(cloud)
  local v = os.getenv("SKYHOST_" .. cloud:upper() .. "_API")
  return v ~= "" and v or nil
end

--- The pool uids that are keys of any of the maps given ({[uid] = ...}), sorted.
function M.pool_uids(...)
  local uids, seen = {}, {}
  for _, set in ipairs({ ... }) do
    for uid in pairs(set) do
      if not seen[uid] then
        seen[uid] = true
        uids[#uids + 1] = uid
      end
    end
  end
  table.sort(uids)
  return uids
end

local function _group(items, pool_of)
  local out = {}
  for _, it in ipairs(items or {}) do
    local uid = it.pool or pool_of(it.name)
    if uid then
      out[uid] = out[uid] or {}
      table.insert(out[uid], it.id)
    end
  end
  return out
end

local function _plural(n, word, ids)
  return ("%d %s%s%s"):format(n, word, n == 1 and "" or "s", n > 0 and (" (" .. table.concat(ids, ", ") .. ")") or "")
end

--- cloud = {name, list = function() → {{id, name, pool?}} of instances not yet gone (pool: when
--- the cloud says it otherwise, by tag), terminate =
--- function(ids), keys = function() → {{id, name}} (optional), delete_key = function(id)};
--- opts as aws's sweep: {live = function(uid) → true to leave alone, dry_run, say, wait,
--- poll_interval}. Returns {pools = {[uid] = {instances, keys}}} of what was (dry: would be) ended.
function M.sweep(cloud, opts)
  local say = opts.say or function() end
  local insts = _group(cloud.list(), M.pool_of_instance)
  local keys = cloud.keys and _group(cloud.keys(), M.pool_of_key) or {}
  local uids = M.pool_uids(insts, keys)
  local found = {}
  for _, uid in ipairs(uids) do
    local what = { instances = insts[uid] or {}, keys = keys[uid] or {} }
    local text = _plural(#what.instances, "instance", what.instances)
    if cloud.keys then text = text .. ", " .. _plural(#what.keys, "SSH key", {}) end
    if opts.live and opts.live(uid) then
      say(("pool %s (%s): live in the journal, left alone: %s"):format(uid, cloud.name, text))
    elseif opts.dry_run then
      found[uid] = what
      say(("pool %s (%s): would end %s"):format(uid, cloud.name, text))
    else
      found[uid] = what
      -- Each id is deleted once (a second delete of one being deleted can be refused), then
      -- waited for; an id that shows up meanwhile (a create still landing) is deleted in turn.
      local ids, sent, deadline = what.instances, {}, os.time() + (opts.wait or M.WAIT)
      while #ids > 0 do
        local new = {}
        for _, id in ipairs(ids) do
          if not sent[id] then sent[id] = true; new[#new + 1] = id end
        end
        if #new > 0 then cloud.terminate(new) end
        require("sky").sleep(opts.poll_interval or 1)
        ids = _group(cloud.list(), M.pool_of_instance)[uid] or {}
        if #ids > 0 and os.time() > deadline then
          errors.raise("CleanupFailed", ("sky.%s: pool %s: instances %s still listed after %d s"):format(cloud.name, uid,
            table.concat(ids, ", "), opts.wait or M.WAIT))
        end
      end
      for _, id in ipairs(what.keys) do cloud.delete_key(id) end
      say(("pool %s (%s): ended %s"):format(uid, cloud.name, text))
    end
  end
  return { pools = found }
end

return M
