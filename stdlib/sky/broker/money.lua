-- Money: what a pool costs and what it may cost.
--
-- A ledger keeps every instance the broker created for a pool, from the moment the provider
-- returned its id to the moment terminate returned, with the price of the attempt that made it
-- (spot or on-demand, USD/h for the whole instance). Instances of failed attempts are in it too:
-- they were billed. Cost = price x (stop - start). Times come from the monotonic clock.
--
-- Budget (USD): an attempt is not made when even its minimum run (M.MIN_RUN seconds on every
-- node) would pass the budget; once the pool runs, a watcher drains and tears it down before
-- the projected spend passes the budget, keeping M.TEARDOWN_ALLOWANCE seconds of spend in hand
-- for the teardown itself.
local core = require "skyhost.core"
local sched = require "sky.internal.sched"

local M = {}

M.MIN_RUN = 60            -- seconds: the shortest run a provider bills (AWS: 60 s minimum)
M.TEARDOWN_ALLOWANCE = 10 -- seconds of spend kept for draining and terminating
M.STOP_GRACE = 1          -- seconds running tasks get when a budget stops the pool

local Ledger = {}
Ledger.__index = Ledger

function M.ledger() return setmetatable({ entries = {}, by_id = {} }, Ledger) end

--- Records instances launched by an attempt, billed from now.
function Ledger:launched(provider_name, ids, attempt, nodes_from)
  local now = core.now()
  for i, id in ipairs(ids) do
    local e = {
      id = id, provider = provider_name, instance_type = attempt.offer.instance_type,
      spot = attempt.spot, price = attempt.price or 0, on_demand_price = attempt.offer.price,
      region = attempt.offer.region, zone = attempt.offer.zone, start = now,
      node = nodes_from and (nodes_from + i - 1) or nil,
      prov = attempt.prov, cluster = attempt.cluster, -- to terminate it, whatever happens
    }
    self.entries[#self.entries + 1] = e
    self.by_id[provider_name .. "\0" .. tostring(id)] = e
  end
end

--- Marks the pool's nodes (entry.node) once an attempt succeeded; others stay unnumbered.
function Ledger:set_nodes(provider_name, ids)
  for i, id in ipairs(ids) do
    local e = self.by_id[provider_name .. "\0" .. tostring(id)]
    if e then e.node = i - 1 end
  end
end

--- Instance `id` of `provider_name` is the pool's node `node` (a replacement, `replace = true`).
function Ledger:set_node(provider_name, id, node)
  local e = self.by_id[provider_name .. "\0" .. tostring(id)]
  if e then e.node = node end
end

--- Instances still billed (not terminated), grouped by provider in launch order:
--- { {prov =, cluster =, ids = {...}}, ... }.
function Ledger:live()
  local groups, by_prov = {}, {}
  for _, e in ipairs(self.entries) do
    if not e.stop and e.prov then
      local g = by_prov[e.prov]
      if not g then
        g = { prov = e.prov, cluster = e.cluster, ids = {} }
        by_prov[e.prov] = g
        groups[#groups + 1] = g
      end
      g.ids[#g.ids + 1] = e.id
    end
  end
  return groups
end

--- Stops billing instances (terminate returned). Unknown ids are ignored.
function Ledger:stopped(provider_name, ids)
  local now = core.now()
  for _, id in ipairs(ids) do
    local e = self.by_id[provider_name .. "\0" .. tostring(id)]
    if e and not e.stop then e.stop = now end
  end
end

--- USD spent up to `t` (default now), and the spend rate now (USD/h of instances still billed).
function Ledger:spent(t)
  t = t or core.now()
  local total, rate = 0, 0
  for _, e in ipairs(self.entries) do
    local stop = e.stop or t
    if stop > e.start then total = total + e.price * (stop - e.start) / 3600 end
    if not e.stop then rate = rate + e.price end
  end
  return total, rate
end

--- The summary at close: rows per instance (nodes first, then failed attempts), the total, and
--- what the same time would have cost on demand (nil where an offer has no on-demand price).
function Ledger:summary()
  local rows, total, od_total, od_known = {}, 0, 0, true
  local now = core.now()
  for _, e in ipairs(self.entries) do
    local seconds = math.max(0, (e.stop or now) - e.start)
    local cost = e.price * seconds / 3600
    local od = e.on_demand_price and e.on_demand_price * seconds / 3600
    rows[#rows + 1] = {
      node = e.node, id = e.id, provider = e.provider, instance_type = e.instance_type,
      spot = e.spot, price = e.price, seconds = seconds, cost = cost, on_demand_cost = od,
    }
    total = total + cost
    if od then od_total = od_total + od else od_known = false end
  end
  table.sort(rows, function(a, b)
    if (a.node == nil) ~= (b.node == nil) then return a.node ~= nil end
    if a.node and b.node and a.node ~= b.node then return a.node < b.node end
    return false
  end)
  return { rows = rows, total = total, on_demand_total = od_known and od_total or nil, currency = "USD" }
end

local function _usd(v)
  if v == nil then return "n/a" end
  if v < 0.01 and v > 0 then return ("$%.4f"):format(v) end
  return ("$%.2f"):format(v)
end
M.usd = _usd

--- The summary as the table printed at pool close.
function M.format(name, s)
  local out = { ("cost of pool %s:"):format(name) }
  out[#out + 1] = ("  %-6s %-12s %-22s %-9s %10s %9s %10s"):format("node", "provider", "instance type", "market", "USD/h", "seconds", "cost")
  for _, r in ipairs(s.rows) do
    out[#out + 1] = ("  %-6s %-12s %-22s %-9s %10.4f %9.1f %10s"):format(r.node and tostring(r.node) or "failed",
      r.provider, tostring(r.instance_type), r.spot and "spot" or "on-demand", r.price, r.seconds, _usd(r.cost))
  end
  out[#out + 1] = ("  total %s; on demand it would have cost %s"):format(_usd(s.total), _usd(s.on_demand_total))
  if s.reason then out[#out + 1] = "  ended early: " .. s.reason end
  return table.concat(out, "\n")
end

--- Cost of the minimum run of an attempt on `nodes` nodes.
function M.min_run_cost(price, nodes)
  return (price or 0) * nodes * M.MIN_RUN / 3600
end

--- Seconds from now until the spend would reach `budget` less the teardown allowance; nil if
--- nothing is being billed.
function Ledger:seconds_left(budget)
  local spent, rate = self:spent()
  if rate <= 0 then return nil, spent, rate end
  local usable = budget - spent - rate * M.TEARDOWN_ALLOWANCE / 3600
  return usable * 3600 / rate, spent, rate
end

--- Watches a running pool's spend: when the projected spend would pass `budget` (less the
--- teardown allowance), calls stop(spent, rate) once. Returns at once when nothing is billed;
--- ends when live() turns false. Runs as its own task on the driver.
function M.watch(ledger, budget, live, stop)
  return sched.spawn(function()
    while live() do
      local left, spent, rate = ledger:seconds_left(budget)
      if not left then return end
      if left <= 0 then return stop(spent, rate) end
      -- Wake at the projected moment; sooner now and then, as the rate only falls (nodes lost).
      sched.await(core.sleep(math.min(left, 30)))
    end
  end)
end

return M
