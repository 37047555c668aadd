-- One provisioning attempt: an offer, in one market, through the provider that listed it.
--   prepare (once per provider and pool) -> provision n -> wait until every instance runs ->
--   start a worker on each (the pool's bring-up)
-- Every step runs under the attempt's deadline. Whatever fails, what the attempt created is
-- terminated before it returns the failure: {reason = text, scope = blocklist scope, err = the
-- error raised, if any}. Only a terminate that keeps failing raises (CleanupFailed): the search
-- must stop rather than leave machines it can no longer account for.
local core = require "skyhost.core"
local blocklist = require "sky.broker.blocklist"
local errors = require "sky.errors"
local journal = require "sky.pool.journal"
local sched = require "sky.internal.sched"

local M = {}

M.TERMINATE_TRIES = 3
M.POLL_FIRST, M.POLL_MAX = 0.05, 5 -- seconds between get_instance rounds (doubling)

--- Runs fn(...) as its own task and waits at most `timeout` seconds. Returns true, results... |
--- false, err | nil, "timeout". If fn finishes after the deadline, late(ok, results...) runs
--- then, in fn's task (to clean up what it made).
function M.within(timeout, late, fn, ...)
  local box, abandoned = nil, false
  local task = sched.spawn(function(...)
    local r = table.pack(pcall(fn, ...))
    if abandoned then
      if late then late(table.unpack(r, 1, r.n)) end
    else
      box = r
    end
  end, ...)
  -- One turn of the driver first: what does not wait (a local provider) is done by then, even
  -- with no time left.
  local tick = sched.new_wait()
  sched.complete(tick)
  sched.await(tick)
  -- Awaited even when done, so that its completion is not left behind in the driver.
  local limit = not task.done and timeout and timeout < math.huge and math.max(timeout, 0) or nil
  local ok, done = pcall(sched.await, task.wait, limit)
  if not ok or not done then abandoned = true end
  if not ok then error(done, 0) end
  if box then
    -- Ctrl-C inside fn (the signal hook raises in running code) stops the whole search, as it
    -- would have if it had come while we waited: it is not the provider's failure.
    if not box[1] and M.is_interrupt(box[2]) then error(box[2], 0) end
    return table.unpack(box, 1, box.n)
  end
  return nil, "timeout"
end

--- Whether an error is an interrupt (Ctrl-C, SIGTERM).
function M.is_interrupt(err)
  return errors.is(err, "Interrupted")
end

local FAILURE = {} -- marks failure tables raised inside the attempt's own steps

local function _failure(reason, scope, err)
  return setmetatable({ reason = reason, scope = blocklist.scope_of(err, scope), err = err }, FAILURE)
end

--- Terminates `ids` of `prov` (retrying), stops their billing. Raises CleanupFailed if it
--- cannot.
function M.terminate(search, prov, cluster, ids)
  if #ids == 0 then return end
  local last
  for try = 1, M.TERMINATE_TRIES do
    local ok, err = pcall(prov.terminate, prov, cluster, ids)
    if ok then
      search.ledger:stopped(prov.name, ids)
      journal.terminated(search.pool, prov, ids)
      return
    end
    last = err
    if try < M.TERMINATE_TRIES then sched.await(core.sleep(0.2 * try)) end
  end
  local shown = {}
  for i, id in ipairs(ids) do shown[i] = tostring(id) end
  errors.raise("CleanupFailed", ("provider '%s' failed to terminate instances %s after %d tries: %s; they may still be running (and billed): check the provider's console")
    :format(prov.name, table.concat(shown, ", "), M.TERMINATE_TRIES, errors.message(last)), { ids = ids, provider = prov.name })
end

-- Ids as the protocol allows them: a list of strings or integers, no more than asked.
local function _check_ids(ids, n)
  if type(ids) ~= "table" then return nil, ("provision returned %s, not a list of instance ids"):format(type(ids)) end
  for i, id in ipairs(ids) do
    if type(id) ~= "string" and math.type(id) ~= "integer" then
      return nil, ("provision returned a bad instance id at index %d (%s)"):format(i, type(id))
    end
  end
  if #ids > n then return nil, ("provision returned %d ids for %d nodes"):format(#ids, n) end
  return ids
end

local _STATES = { pending = true, running = true, terminated = true }

-- Polls get_instance until every instance runs. Raises a failure table on the way.
local function _wait_running(prov, cluster, ids, deadline)
  local infos, gap = {}, M.POLL_FIRST
  while true do
    local all = true
    for i, id in ipairs(ids) do
      local inst = infos[i]
      if not inst or inst.state == "pending" then
        inst = prov:get_instance(cluster, id)
        if type(inst) ~= "table" or not _STATES[inst.state] then
          error(_failure(("get_instance(%s) must return {id, state = \"pending\"|\"running\"|\"terminated\", ...}, got %s")
            :format(tostring(id), type(inst) == "table" and ("state " .. tostring(inst.state)) or type(inst)), "provider"), 0)
        end
        if inst.id == nil then inst.id = id end
        if inst.state == "terminated" then
          error(_failure(("instance %s was terminated before it ran (preempted or out of capacity)"):format(tostring(id)), "zone"), 0)
        end
        if inst.state == "running" and inst.transport ~= "local" and inst.transport ~= "command"
          and type(inst.ip) ~= "string" then
          error(_failure(("get_instance(%s) returned a running instance with neither ip nor transport = \"local\" or \"command\"")
            :format(tostring(id)), "provider"), 0)
        end
        infos[i] = inst
      end
      all = all and inst.state == "running"
    end
    if all then return infos end
    if core.now() + gap > deadline then
      error(_failure("instances still pending when the attempt's time ran out", "zone"), 0)
    end
    sched.await(core.sleep(gap))
    gap = math.min(gap * 2, M.POLL_MAX)
  end
end

-- Process ids of the workers a failed bring-up started (for the record; tests check them).
local function _worker_pids(pool)
  local pids, c = {}, pool.core
  if not c then return pids end
  pcall(function()
    for i = 0, c:node_count() - 1 do pids[#pids + 1] = c:node(i).pid end
  end)
  return pids
end

local function _ids_of(err)
  if type(err) == "table" and type(err.ids) == "table" then return err.ids end
  return {}
end

--- Runs attempt `a` ({offer, spot, price, prov, spec, cluster}) for `search`. Returns true and
--- the placement {provider, cluster, offer, spot, price, instances = {{id, info}...}}, or false and a
--- failure. `hooks.start(placement)` brings workers up on its instances; hooks.stop() removes
--- them.
function M.run(search, a, hooks)
  local pool, prov, cluster, n = search.pool, a.prov, a.cluster, search.req.nodes
  local deadline = core.now() + search.req.timeout
  -- The provider gets its offer with the market chosen: offer.spot, offer.attempt_price.
  local offer = {}
  for k, v in pairs(a.offer) do offer[k] = v end
  offer.spot, offer.attempt_price = a.spot, a.price
  local rec = a.record
  -- What the provider made: billed from now (the ledger), and in the journal by its intent.
  local keys = journal.intend(pool, prov, n, offer)
  local function launched(list)
    search.ledger:launched(prov.name, list, a)
    journal.launched(pool, keys, list, prov)
  end

  -- provision: if it returns after the deadline, terminate what it made, whenever that is.
  local straggler = { done = false }
  local function late(ok, ids)
    local list = ok and _check_ids(ids, math.huge) or _ids_of(ids)
    launched(list or {})
    if list and #list > 0 then
      rec.late_ids = list
      pcall(M.terminate, search, prov, cluster, list)
    end
    straggler.done = true
  end
  local ok, ids = M.within(deadline - core.now(), late, prov.provision, prov, cluster, n, offer)
  if ok == nil then
    search.stragglers[#search.stragglers + 1] = straggler
    return false, _failure(("provision did not return within %g s"):format(search.req.timeout), "zone")
  end
  if not ok then
    local made = _ids_of(ids)
    launched(made)
    rec.ids = made
    M.terminate(search, prov, cluster, made)
    return false, _failure(blocklist.reason(ids), "zone", ids)
  end
  local list, why = _check_ids(ids, n)
  if not list then
    -- A protocol mistake; terminate whatever ids can be read, then block the provider.
    local readable = {}
    for _, id in ipairs(type(ids) == "table" and ids or {}) do
      if type(id) == "string" or math.type(id) == "integer" then readable[#readable + 1] = id end
    end
    launched(readable)
    rec.ids = readable
    M.terminate(search, prov, cluster, readable)
    return false, _failure(why, "provider")
  end
  rec.ids = list
  launched(list)
  for _, id in ipairs(list) do search.emit("InstanceLaunched", { instance = id, provider = prov.name }) end
  if #list < n then
    M.terminate(search, prov, cluster, list)
    return false, _failure(("provisioned %d of %d nodes"):format(#list, n), "zone")
  end

  local okw, infos = M.within(deadline - core.now(), nil, _wait_running, prov, cluster, list, deadline)
  if not okw then
    M.terminate(search, prov, cluster, list)
    if okw == nil then return false, _failure("instances did not reach running in time", "zone") end
    if getmetatable(infos) == FAILURE then return false, infos end
    return false, _failure(blocklist.reason(infos), "zone", infos)
  end
  -- Where the pool runs if its workers come up: the pool takes it in hooks.start(placement)
  -- (connect.lua reads its provider, cluster and instances) and lets go of it in hooks.stop().
  local placement = { provider = prov, cluster = cluster, offer = a.offer, spot = a.spot,
    price = a.price, instances = {} }
  for i, id in ipairs(list) do
    placement.instances[i] = { id = id, info = infos[i] }
    search.emit("InstanceRunning", { instance = id, node = i - 1 })
  end

  if hooks and hooks.start then
    local oks, err = M.within(deadline - core.now(), nil, hooks.start, placement)
    if not oks then
      rec.pids = _worker_pids(pool)
      pcall(hooks.stop)
      M.terminate(search, prov, cluster, list)
      local why = oks == nil and "workers did not start in time" or ("workers did not start: " .. blocklist.reason(err))
      return false, _failure(why, "offer")
    end
  end
  return true, placement
end

return M
