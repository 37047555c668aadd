-- Providers defined in Lua (sky.provider) for the broker tests. Their instances are local
-- workers (transport = "local"), so a pool that provisions through them runs real worker
-- processes. What each provision call does is scripted per call, and every call is logged, so
-- tests can check the order of attempts and that every id created was terminated.
--
--   local p, log = fake.new { name = "flaky", offers = { fake.offer("a", 2.0, 1.0) },
--                             behave = function(offer, n, call) return "capacity" end }
-- Behaviours: "ok", "error" (a plain Lua error), "capacity" / "quota" / "auth" (errors with that
-- code), { partial = k } (k ids), { slow = s, ["then"] = b } (sleeps s seconds first),
-- "error_after_create" (creates n, then fails, saying which ids), "terminated" (get_instance
-- says terminated), "pending" (pending twice, then running), "bad_ids", { ssh_port = p } (node 1
-- is an SSH instance on 127.0.0.1:p: its bootstrap fails after node 0's worker started).
local M = {}

local _names = 0

--- An offer of instance type `id`: on-demand `price`, spot `spot` (either may be nil).
function M.offer(id, price, spot, extra)
  local o = { instance_type = id, accelerator = "H100", count = 1, gpu_memory = 80, price = price, spot_price = spot }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local _codes = { capacity = "NoCapacity", quota = "QuotaExceeded", auth = "AuthFailed" }

function M.new(def)
  _names = _names + 1
  local name = def.name or ("fake" .. _names)
  local log = { provisions = {}, created = {}, terminated = {}, prepared = 0, torn = 0, offers_calls = 0,
    preempted = {} }  -- ids a test marks: get_instance reports a spot interruption for them
  local counter, states = 0, {}
  local p = sky.provider {
    name = name,
    offers_ttl = def.offers_ttl,
    offers = function(_, spec)
      log.offers_calls = log.offers_calls + 1
      log.spec = spec
      if def.offers_error then error(def.offers_error, 0) end
      return def.offers
    end,
    prepare = function(_, cluster)
      log.prepared = log.prepared + 1
      log.cluster = cluster
      if def.prepare_error then error(def.prepare_error, 0) end
    end,
    provision = function(_, cluster, n, offer)
      local call = #log.provisions + 1
      log.provisions[call] = ("%s:%s"):format(offer.instance_type, offer.spot and "spot" or "od")
      local b = def.behave and def.behave(offer, n, call) or "ok"
      if type(b) == "table" and b.slow then
        sky.sleep(b.slow)
        b = b["then"] or "ok"
      end
      if b == "error" then error("boom from " .. name) end
      if _codes[b] then error({ code = _codes[b], message = b .. " trouble at " .. name }) end
      if b == "bad_ids" then return "not a list" end
      local k = type(b) == "table" and b.partial or n
      local ids = {}
      for i = 1, k do
        counter = counter + 1
        ids[i] = ("%s-%d"):format(name, counter)
        log.created[#log.created + 1] = ids[i]
        states[ids[i]] = { behave = b, node = i - 1, polls = 0 }
      end
      if b == "error_after_create" then error({ message = "failed after creating some", ids = ids }) end
      return ids
    end,
    get_instance = function(_, _, id)
      local st = states[id]
      st.polls = st.polls + 1
      if log.preempted[id] then
        return { id = id, state = "terminated", preempted = true, reason = "spot interruption" }
      end
      if st.behave == "terminated" then return { id = id, state = "terminated" } end
      if st.behave == "pending" and st.polls <= 2 then return { id = id, state = "pending" } end
      if type(st.behave) == "table" and st.behave.ssh_port and st.node == 1 then
        return { id = id, state = "running", ip = "127.0.0.1", port = st.behave.ssh_port, user = "nobody" }
      end
      return { id = id, state = "running", transport = "local" }
    end,
    terminate = function(_, _, ids)
      if def.terminate_error then error(def.terminate_error, 0) end
      for _, id in ipairs(ids) do log.terminated[#log.terminated + 1] = id end
    end,
    teardown = function() log.torn = log.torn + 1 end,
  }
  return p, log
end

--- True when every id the provider created has been terminated (exactly once).
function M.all_terminated(log)
  local seen = {}
  for _, id in ipairs(log.terminated) do
    if seen[id] then return false, "terminated twice: " .. id end
    seen[id] = true
  end
  for _, id in ipairs(log.created) do
    if not seen[id] then return false, "never terminated: " .. id end
  end
  return true
end

M.alive = require("testlib").alive

--- Waits (up to 5 s) until none of `pids` runs; returns the ones still running.
function M.wait_gone(pids)
  local left
  for _ = 1, 100 do
    left = {}
    for _, pid in ipairs(pids) do
      if M.alive(pid) then left[#left + 1] = pid end
    end
    if #left == 0 then return left end
    sky.sleep(0.05)
  end
  return left
end

--- The worker pids of a pool.
function M.pids(pool)
  local out = {}
  for _, n in ipairs(pool:nodes_info()) do out[#out + 1] = n.pid end
  return out
end

return M
