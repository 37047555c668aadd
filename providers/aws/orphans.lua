-- Ending AWS resources a skyhost left behind (docs/journal.md), by the skyhost-pool tag and the
-- skyhost-<pool> names the provider gives them (providers/aws.lua):
--   end_orphans(records)  the journal's instances of pools whose skyhost is gone (`skyhost down
--                         --orphans`): terminated, waited for, and their pool's group and key pair
--                         deleted; intents that never got an id are looked for by tag.
--   sweep(opts)           every instance, security group and key pair of a pool that is not live
--                         in the journal (`skyhost down --sweep aws`), including what the journal
--                         could not record (a crash between a create call and its answer).
local credentials = require "providers.aws.credentials"
local ec2 = require "providers.aws.ec2"
local errors = require "sky.errors"
local rest_sweep = require "providers.rest_sweep"

local M = {}

M.TAG = "skyhost-pool"
M.WAIT = 600  -- seconds to wait for instances to reach `terminated`

local function _env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

--- The EC2 endpoint of `region`: `endpoint`, else $AWS_ENDPOINT_URL_EC2 or $AWS_ENDPOINT_URL
--- (as the AWS SDKs read them), else AWS's.
function M.endpoint(region, endpoint)
  return endpoint or _env("AWS_ENDPOINT_URL_EC2") or _env("AWS_ENDPOINT_URL")
    or ("https://ec2.%s.amazonaws.com/"):format(region)
end

local function _client(region, endpoint, profile)
  return ec2.client { endpoint = M.endpoint(region, endpoint), region = region,
    credentials = credentials.resolve(profile) }
end

local function _tag(item)
  for _, t in ipairs(ec2.items(item, "tagSet")) do
    if ec2.text(t, "key") == M.TAG then return ec2.text(t, "value") end
  end
  return nil
end

-- Instances not yet terminated, by pool: {[uid] = {ids}}; `uid` limits the search to one pool.
local function _live_instances(c, uid)
  local filter = uid and { Name = "tag:" .. M.TAG, Value = { uid } } or { Name = "tag-key", Value = { M.TAG } }
  local by_pool = {}
  local doc = c:call("DescribeInstances", { Filter = { filter } })
  for _, res in ipairs(ec2.items(doc, "reservationSet")) do
    for _, item in ipairs(ec2.items(res, "instancesSet")) do
      local pool = _tag(item)
      if pool and ec2.text(item, "instanceState", "name") ~= "terminated" then
        by_pool[pool] = by_pool[pool] or {}
        table.insert(by_pool[pool], ec2.text(item, "instanceId"))
      end
    end
  end
  return by_pool
end

-- Security groups made for a pool (tagged, or named skyhost-<pool> with the provider's
-- description): {[uid] = {{id, name}}}.
local function _groups(c)
  local out = {}
  for _, g in ipairs(ec2.items(c:call("DescribeSecurityGroups", {}), "securityGroupInfo")) do
    local name = ec2.text(g, "groupName") or ""
    local pool = _tag(g)
    if not pool and (ec2.text(g, "groupDescription") or ""):find("^skyhost pool ") then
      pool = name:match("^skyhost%-(.+)$")
    end
    if pool then
      out[pool] = out[pool] or {}
      table.insert(out[pool], { id = ec2.text(g, "groupId"), name = name })
    end
  end
  return out
end

-- Key pairs named skyhost-<pool>: {[uid] = {names}}.
local function _keys(c)
  local out = {}
  for _, k in ipairs(ec2.items(c:call("DescribeKeyPairs", {}), "keySet")) do
    local name = ec2.text(k, "keyName") or ""
    local pool = _tag(k) or name:match("^skyhost%-(.+)$")
    if pool then
      out[pool] = out[pool] or {}
      table.insert(out[pool], name)
    end
  end
  return out
end

-- Terminates `ids` and waits until none of them, nor anything tagged with `uid`, is alive.
-- Returns nil, or why not.
local function _terminate(c, uid, ids, opts)
  if #ids > 0 then c:call("TerminateInstances", { InstanceId = ids }) end
  local deadline = os.time() + (opts.wait or M.WAIT)
  while true do
    local alive = _live_instances(c, uid)[uid] or {}
    if #alive == 0 then return nil end
    if os.time() > deadline then
      return ("instances %s are not terminated after %d s"):format(table.concat(alive, ", "), opts.wait or M.WAIT)
    end
    c:call("TerminateInstances", { InstanceId = alive })
    require("sky").sleep(opts.poll_interval or 1)
  end
end

local function _gone(err)  -- deleting what is already deleted is no error
  local code = type(err) == "table" and err.aws_code or ""
  return code:find("NotFound") ~= nil
end

-- Deletes pool `uid`'s groups and key pairs (named in `groups` and `keys`, or looked up by name).
local function _delete_rest(c, uid, groups, keys)
  for _, g in ipairs(groups) do
    local ok, err = pcall(c.call, c, "DeleteSecurityGroup", { GroupId = g.id })
    if not ok and not _gone(err) then error(err, 0) end
  end
  for _, k in ipairs(keys) do
    local ok, err = pcall(c.call, c, "DeleteKeyPair", { KeyName = k })
    if not ok and not _gone(err) then error(err, 0) end
  end
  return uid
end

--- `skyhost down` of orphans: `records` are journal instances (provider "aws") with info.region,
--- info.endpoint and info.profile. Returns the instance ids confirmed terminated ("" stands
--- for intents without an id, once nothing tagged with their pool is alive).
function M.end_orphans(records, opts)
  opts = opts or {}
  local groups, order = {}, {}
  for _, r in ipairs(records) do
    local info = r.info or {}
    local region = info.region or credentials.resolve(info.profile).region
    if not region then errors.raise("BadOption", "sky.aws: the journal has no region for instance " .. tostring(r.instance_id)) end
    local k = table.concat({ region, info.endpoint or "", info.profile or "", r.pool_id or "" }, "\0")
    if not groups[k] then
      groups[k] = { region = region, endpoint = info.endpoint, profile = info.profile, pool = r.pool_id, ids = {} }
      order[#order + 1] = k
    end
    if r.instance_id and r.instance_id ~= "" then table.insert(groups[k].ids, r.instance_id) end
  end
  local confirmed = {}
  for _, k in ipairs(order) do
    local g = groups[k]
    local c = _client(g.region, g.endpoint, g.profile)
    local why = _terminate(c, g.pool, g.ids, opts)
    if why then errors.raise("CleanupFailed", ("sky.aws: pool %s in %s: %s"):format(g.pool, g.region, why)) end
    for _, id in ipairs(g.ids) do confirmed[#confirmed + 1] = id end
    confirmed[#confirmed + 1] = ""
    _delete_rest(c, g.pool, (_groups(c))[g.pool] or {}, (_keys(c))[g.pool] or {})
  end
  return confirmed
end

--- Sweeps by tag: opts = {region (name or list; default the credentials'), endpoint, profile,
--- live = function(uid) → true for a pool not to touch, dry_run, say = function(line)}.
--- Returns {pools = {[uid] = {region, instances, groups, keys}}} of what was (or, dry, would
--- be) ended.
function M.sweep(opts)
  local regions = opts.region
  if type(regions) == "string" then regions = { regions } end
  if not regions or #regions == 0 then
    local r = credentials.resolve(opts.profile).region
    if not r then errors.raise("BadOption", "no region: give --region R (or set AWS_REGION)") end
    regions = { r }
  end
  local say = opts.say or function() end
  local found = {}
  for _, region in ipairs(regions) do
    local c = _client(region, opts.endpoint, opts.profile)
    local insts, groups, keys = _live_instances(c), _groups(c), _keys(c)
    local uids = rest_sweep.pool_uids(insts, groups, keys)
    for _, uid in ipairs(uids) do
      local what = { region = region, instances = insts[uid] or {}, groups = groups[uid] or {}, keys = keys[uid] or {} }
      local names = {}
      for _, g in ipairs(what.groups) do names[#names + 1] = g.id end
      local text = ("%d instance%s%s, %d security group%s, %d key pair%s"):format(#what.instances,
        #what.instances == 1 and "" or "s", #what.instances > 0 and (" (" .. table.concat(what.instances, ", ") .. ")") or "",
        #what.groups, #what.groups == 1 and "" or "s", #what.keys, #what.keys == 1 and "" or "s")
      if opts.live and opts.live(uid) then
        say(("pool %s (%s): live in the journal, left alone: %s"):format(uid, region, text))
      elseif opts.dry_run then
        found[uid] = what
        say(("pool %s (%s): would end %s"):format(uid, region, text))
      else
        found[uid] = what
        local why = _terminate(c, uid, what.instances, opts)
        if why then errors.raise("CleanupFailed", ("sky.aws: pool %s in %s: %s"):format(uid, region, why)) end
        _delete_rest(c, uid, what.groups, what.keys)
        say(("pool %s (%s): ended %s"):format(uid, region, text))
      end
    end
  end
  return { pools = found }
end

return M
