-- The broker: from a pool's options to running instances, across providers.
--
--   1. request   the provider specs in the script's order (sky.request)
--   2. offers    each provider's offers(spec), filtered to what its spec asks for; providers the
--                catalog knows but this build does not implement are reported, never used
--   3. order     selection (sky.policy: "cheapest", "first", "available" or a function)
--   4. attempts  allocation expands each offer into spot / on-demand attempts, read lazily
--   5. search    attempts in order through the provider that listed the offer; a failure is
--                cleaned up (sky.attempt), blocks its scope (sky.blocklist) and the next attempt
--                runs; attempts over max_price or whose minimum run would pass the budget are
--                not made. When nothing is left the error lists every attempt and why it failed.
-- release() terminates the pool's instances, tears down what was prepared, and reports the cost.
local lazy = require "sky.internal.lazy"
local attempt = require "sky.broker.attempt"
local blocklist = require "sky.broker.blocklist"
local catalog = require "providers.catalog"
local errors = require "sky.errors"
local journal = require "sky.pool.journal"
local money = require "sky.broker.money"
local policy = require "sky.broker.policy"
local providers = require "providers"
local request = require "sky.broker.request"
local sched = require "sky.internal.sched"
local core = require "skyhost.core"

local M = {}

M.STRAGGLER_GRACE = 30 -- seconds release waits for provision calls that overran their attempt

-- A line on stderr about the search, in every display mode but quiet (over a spinner line).
local function _note(pool, text)
  if pool.display == "quiet" then return end
  local clear = pool.display == "spinner" and "\r\27[K" or ""
  io.stderr:write(("%sskyhost: pool %s: %s\n"):format(clear, pool.name, text))
end

local function _market(spot) return spot and "spot" or "on-demand" end

--- "gpu-a on flaky (zone-a, spot, $1.0000/h)"
function M.describe_attempt(a)
  local o = a.offer
  local where = {}
  if o.zone or o.region then where[#where + 1] = o.zone or o.region end
  where[#where + 1] = _market(a.spot)
  where[#where + 1] = ("$%.4f/h"):format(a.price or 0)
  return ("%s on %s (%s)"):format(tostring(o.instance_type), a.prov and a.prov.name or o.provider, table.concat(where, ", "))
end

local function _record_failure(search, rec)
  local f = search.failures
  f[#f + 1] = rec
  search.emit("AttemptFailed", {
    attempt = rec.attempt, provider = rec.provider, instance_type = rec.instance_type,
    region = rec.region, zone = rec.zone, spot = rec.spot, price = rec.price, reason = rec.reason,
    blocked = rec.blocked,
  })
end

-- A provider the catalog knows but this build does not implement: say so, with its offers.
local function _unimplemented(search, s)
  local n, low = 0, nil
  local ok, snap = pcall(catalog.snapshot)
  if ok then
    local q = { provider = s.name, accelerator = s.accelerator, count = s.count, memory = s.memory,
      region = s.region, zone = s.zone }
    local okq, matching = pcall(catalog.query, snap, q)
    for _, o in ipairs(okq and matching or {}) do
      n = n + 1
      local p = o.spot_price or o.price
      if p and (not low or p < low) then low = p end
    end
  end
  local reason = ("provider '%s' has %d matching offers in the catalog%s but is not implemented in this build yet; define it with sky.provider{name = \"%s\", ...} or remove it")
    :format(s.name, n, low and (" (from $%.2f/h)"):format(low) or "", s.name)
  _note(search.pool, reason)
  _record_failure(search, { provider = s.name, reason = reason, blocked = "provider " .. s.name })
end

-- Checks a provider's offers (and names the provider on those that do not say): nil, or what
-- is wrong. One pass; it runs over every offer of every pool.
local function _check_offers(list, name)
  local type_ = type
  for i = 1, #list do
    local o = list[i]
    if type_(o) ~= "table" then
      return ("offers() of '%s' returned a %s at index %d, not an offer table"):format(name, type_(o), i)
    end
    if type_(o.instance_type) ~= "string" then
      return ("offers() of '%s': offer %d has no instance_type (a string)"):format(name, i)
    end
    if type_(o.price) ~= "number" and type_(o.spot_price) ~= "number" then
      return ("offers() of '%s': offer %d (%s) has neither price nor spot_price"):format(name, i, o.instance_type)
    end
    if o.provider == nil then o.provider = name end
  end
end

-- Whether a spec filters offers at all (most pools on a Lua provider do not).
local function _filters(q)
  return q.accelerator or q.count or q.memory or q.region or q.zone
end

-- Every spec's offers, in spec order; owner[offer] = the spec (and so the provider) it came from.
local function _gather(search)
  local req, all, owner = search.req, {}, {}
  for _, s in ipairs(req.specs) do
    local prov = s.provider
    s.query = { accelerator = s.accelerator, count = s.count, memory = s.memory, region = s.region,
      zone = s.zone, nodes = req.nodes, allocation = type(req.allocation) == "string" and req.allocation or nil }
    if providers.is_ref(prov) then
      _unimplemented(search, s)
    elseif not search.blocked:match(prov, {}, nil) then
      local ok, list = attempt.within(req.timeout, nil, providers.offers, prov, s.query)
      local why
      if ok == nil then
        why = ("offers() did not return within %g s"):format(req.timeout)
      elseif not ok then
        why = "offers() failed: " .. blocklist.reason(list)
      elseif type(list) ~= "table" then
        why = ("offers() of '%s' returned %s, not a list"):format(s.name, type(list))
      else
        why = _check_offers(list, s.name)
      end
      if why then
        local e = search.blocked:block(prov, {}, nil, "provider")
        _note(search.pool, why)
        _record_failure(search, { provider = s.name, reason = why, blocked = blocklist.describe(e) })
      else
        local matching = _filters(s.query) and catalog.query(list, s.query) or list
        if #req.specs == 1 then
          -- One spec owns every offer (see _owner): no map to build.
          return matching, owner
        end
        for _, o in ipairs(matching) do
          if not owner[o] then
            owner[o] = s
            all[#all + 1] = o
          end
        end
      end
    end
  end
  return all, owner
end

-- The spec an offer belongs to: where it was gathered from, or (a user selection that built
-- its own offer tables) the first spec whose provider has the offer's provider name.
local function _owner(search, owner, o)
  if owner[o] then return owner[o] end
  local specs = search.req.specs
  -- A provider may list offers under other names (a marketplace): what one spec gathered is its.
  if #specs == 1 and not providers.is_ref(specs[1].provider) then return specs[1] end
  for _, s in ipairs(search.req.specs) do
    if not providers.is_ref(s.provider) and s.name == o.provider then return s end
  end
  errors.raise("BadSelection", ("selection returned an offer of provider '%s' (%s), which is not one of this pool's providers")
    :format(tostring(o.provider), tostring(o.instance_type)))
end

-- The provider's cluster for this pool, prepared once. Returns cluster | nil, failure.
local function _cluster(search, s)
  local prov = s.provider
  local c = search.clusters[prov]
  if c and not c.failed then return c end
  local pool = search.pool
  c = { id = pool.name, name = pool.name, pool = pool.id, uid = pool.uid, nodes = search.req.nodes, provider = prov.name,
    spec = s.query, ssh_public_key = pool.ssh_key and pool.ssh_key.public, tags = { ["skyhost-pool"] = pool.name },
    -- what a provider whose machines outlive a dead host by themselves needs (providers/slurm.lua)
    ttl = pool.ttl, emit = search.emit }
  -- A journal that cannot record this provider's machines stops the search before anything
  -- (a key pair, a group) is made.
  journal.require(pool, prov)
  local ok, err = attempt.within(search.req.timeout, nil, prov.prepare, prov, c)
  -- Even a failed prepare may have made something: teardown runs for it at the end.
  search.clusters[prov] = c
  search.prepared[#search.prepared + 1] = { prov = prov, cluster = c }
  if ok then return c end
  c.failed = true
  return nil, { reason = ok == nil and "prepare did not return in time" or ("prepare failed: " .. blocklist.reason(err)),
    scope = blocklist.scope_of(err, "provider"), err = err }
end

-- Tears down every prepared cluster except `keep`'s provider; returns the first error.
local function _teardown(search, keep)
  local cleanups = errors.cleanups()
  local remaining = {}
  for _, p in ipairs(search.prepared) do
    if p.prov == keep then
      remaining[#remaining + 1] = p
    else
      -- shielded: a teardown that an interrupt cut short is never run again (the pool forgets
      -- it here), and it deletes what bills or blocks (a group, a key pair)
      cleanups:run(sched.shielded, p.prov.teardown, p.prov, p.cluster)
    end
  end
  search.prepared = remaining
  return cleanups.first
end

local function _wait_stragglers(search, grace)
  local until_ = core.now() + grace
  for _, s in ipairs(search.stragglers) do
    while not s.done and core.now() < until_ do sched.await(core.sleep(0.05)) end
  end
end

--- The final error's text: every failure, then what was not tried and why.
function M.format_failures(search)
  local lines = {}
  for i, f in ipairs(search.failures) do
    local what = f.instance_type and ("%s on %s (%s, %s, $%.4f/h)"):format(f.instance_type, f.provider,
      f.zone or f.region or "-", _market(f.spot), f.price or 0) or f.provider
    lines[#lines + 1] = ("  %d. %s: %s%s"):format(i, what, f.reason, f.blocked and (" [blocked " .. f.blocked .. "]") or "")
  end
  local k = search.skipped
  local not_tried = {}
  local function add(n, why)
    if n > 0 then not_tried[#not_tried + 1] = ("%d attempt%s %s"):format(n, n == 1 and "" or "s", why) end
  end
  add(k.blocked, "in blocked zones, regions or providers")
  add(k.max_price, "over max_price")
  add(k.budget, "whose minimum run would pass the budget")
  if #not_tried > 0 then lines[#lines + 1] = "  not tried: " .. table.concat(not_tried, "; ") end
  return table.concat(lines, "\n")
end

local function _asked(req)
  local parts = {}
  for i, s in ipairs(req.specs) do parts[i] = request.describe(s) end
  return table.concat(parts, "; ")
end

local function _fail(search, code, message)
  local err = _teardown(search, nil)
  _wait_stragglers(search, M.STRAGGLER_GRACE)
  if err ~= nil then message = message .. "\n  (also: teardown failed: " .. errors.message(err) .. ")" end
  errors.raise(code, message, { attempts = search.failures })
end

-- Offers gathered, ordered and expanded: the attempts (a lazy list), the owner map, the count.
local function _choose(search)
  local req = search.req
  local offers, owner = _gather(search)
  if #offers == 0 then return nil, owner, 0 end
  local sel_spec = request.selection_spec(req, search.pool.opts)
  return policy.expand(policy.select(offers, sel_spec), req.allocation, sel_spec), owner, #offers
end

local function _new_search(pool, emit)
  return {
    pool = pool, req = request.normalize(pool.opts, pool.nodes), emit = emit or function() end,
    ledger = money.ledger(), blocked = blocklist.new(), clusters = {}, prepared = {},
    stragglers = {}, failures = {}, skipped = { blocked = 0, max_price = 0, budget = 0 },
  }
end

--- What a pool with options `opts` would try, in order, without provisioning anything: a lazy
--- list of attempts {offer, spot, price, provider}, and the failures met while gathering offers
--- (providers not implemented, offers() errors). Calls each provider's offers().
function M.plan(opts)
  local search = _new_search({ opts = opts, nodes = opts.nodes or 1, name = opts.name or "plan", display = "quiet" })
  local attempts, owner = _choose(search)
  if not attempts then return {}, search.failures end
  local n = 0
  return lazy.list(function(t, upto)
    while n < upto do
      local a = attempts[n + 1]
      if not a then return true end
      n = n + 1
      rawset(t, n, { offer = a.offer, spot = a.spot, price = a.price, provider = _owner(search, owner, a.offer).name })
    end
    return false
  end), search.failures
end

-- The search itself; returns on success with the pool's fields set.
local function _search(search, hooks)
  local pool, req = search.pool, search.req
  local attempts, owner, n_offers = _choose(search)
  if not attempts then
    local tried = #search.failures > 0 and (":\n" .. M.format_failures(search)) or ""
    _fail(search, "NoOffers", ("sky.compute: no offer matches %s%s"):format(_asked(req), tried))
  end
  local first = attempts[1]
  search.emit("OffersSelected", { offers = n_offers, instance_type = first and first.offer.instance_type,
    provider = first and first.offer.provider })
  local n, k = 0, search.skipped
  local i = 0
  while true do
    i = i + 1
    local a = attempts[i]
    if not a then break end
    local s = _owner(search, owner, a.offer)
    local prov = s.provider
    local max_price = s.max_price or req.max_price
    local cost = money.min_run_cost(a.price, req.nodes)
    if search.blocked:match(prov, a.offer, a.spot) then
      k.blocked = k.blocked + 1
    elseif max_price and a.price > max_price then
      k.max_price = k.max_price + 1
    elseif req.budget and cost > req.budget - search.ledger:spent() then
      k.budget = k.budget + 1
      if not search.over_budget or cost < search.over_budget.cost then
        search.over_budget = { cost = cost, attempt = a, prov = prov }
      end
    else
      n = n + 1
      local run = { offer = a.offer, spot = a.spot, price = a.price, prov = prov, spec = s,
        record = { attempt = n, provider = prov.name, instance_type = a.offer.instance_type,
          region = a.offer.region, zone = a.offer.zone, spot = a.spot, price = a.price } }
      local cluster, failure = _cluster(search, s)
      local ok, placement = false, nil
      if cluster then
        run.cluster = cluster
        ok, placement = attempt.run(search, run, hooks)
        if not ok then failure = placement end
      end
      if ok then
        search.placement, search.run = placement, run
        local ids = {}
        for j, inst in ipairs(placement.instances) do ids[j] = inst.id end
        search.ledger:set_nodes(prov.name, ids)
        return
      end
      local e = search.blocked:block(prov, a.offer, a.spot, failure.scope)
      run.record.reason, run.record.blocked = failure.reason, blocklist.describe(e)
      _note(pool, ("attempt %d failed: %s: %s; blocked %s"):format(n, M.describe_attempt(run), failure.reason, run.record.blocked))
      _record_failure(search, run.record)
    end
  end
  if n == 0 and search.over_budget and #search.failures == 0 then
    local ob = search.over_budget
    _fail(search, "BudgetExceeded", ("sky.compute: budget $%.2f is too small: the cheapest allowed offer, %s, costs %s for the minimum run (%d s on %d nodes); raise 'budget' or ask for fewer or cheaper nodes")
      :format(req.budget, M.describe_attempt({ offer = ob.attempt.offer, spot = ob.attempt.spot, price = ob.attempt.price, prov = ob.prov }),
        money.usd(ob.cost), money.MIN_RUN, req.nodes))
  end
  _fail(search, "ProvisionFailed", ("sky.compute: could not provision %d node%s (%s); %s:\n%s")
    :format(req.nodes, req.nodes == 1 and "" or "s", _asked(req),
      n == 0 and "no attempt could be made" or ("all %d attempts failed"):format(n), M.format_failures(search)))
end

-- pool -> its search (attempts, ledger, what was prepared): the broker's own record of a pool,
-- kept from the first attempt so that release() finds what an interrupted search created.
local _searches = setmetatable({}, { __mode = "k" })

--- `prov` says `ids` of `pool` are gone (a preempted node): they are no longer billed.
function M.instances_ended(pool, prov, ids)
  local search = _searches[pool]
  if search then search.ledger:stopped(prov.name, ids) end
end

--- One more node for `pool` (a replacement for a lost one, `replace = true`): the offer, market
--- and provider its placement came from, through the same attempt (journal, ledger, cleanup of
--- a failure). hooks.start(placement) brings its worker up. Returns true, placement | false,
--- reason. `emit` reports progress as for provision.
function M.replace(pool, emit, hooks)
  local search = _searches[pool]
  local run = search and search.run
  if not run then return false, "the pool has no placement to replace a node in" end
  local req = setmetatable({ nodes = 1 }, { __index = search.req })
  local sub = setmetatable({ req = req, emit = emit or search.emit }, { __index = search })
  local a = { offer = run.offer, spot = run.spot, price = run.price, prov = run.prov, spec = run.spec,
    cluster = run.cluster, record = { provider = run.prov.name, instance_type = run.offer.instance_type,
      region = run.offer.region, zone = run.offer.zone, spot = run.spot, price = run.price } }
  -- release() waits for it: what it launches after the pool began closing is terminated there.
  local straggler = { done = false }
  search.stragglers[#search.stragglers + 1] = straggler
  local r = table.pack(pcall(attempt.run, sub, a, hooks))
  straggler.done = true
  if not r[1] then error(r[2], 0) end
  local ok, placement = r[2], r[3]
  if ok then return true, placement end
  a.record.reason = placement.reason
  search.failures[#search.failures + 1] = a.record
  return false, placement.reason
end

--- Instance `id` of `prov` became the pool's node `node` (the cost summary names it so).
function M.node_placed(pool, prov, id, node)
  local search = _searches[pool]
  if search then search.ledger:set_node(prov.name, id, node) end
end

--- The attempts that failed for `pool` so far, as AttemptFailed reports them (tests, tools).
function M.failures(pool)
  local search = _searches[pool]
  return search and search.failures or {}
end

--- Provisions `pool.nodes` instances and, through hooks.start(placement), brings workers up on
--- them; returns the placement that worked: {provider, cluster, offer, instances ({id, info})}.
--- `emit(type, fields)` reports progress. On failure everything created has been cleaned up.
function M.provision(pool, emit, hooks)
  local search = _new_search(pool, emit)
  local req = search.req
  _searches[pool] = search
  _search(search, hooks)
  local err = _teardown(search, search.placement.provider)
  if err ~= nil then _note(pool, "teardown of an unused provider failed: " .. errors.message(err)) end
  if req.budget then
    money.watch(search.ledger, req.budget, function()
      return pool.state ~= "draining" and pool.state ~= "destroyed"
    end, function(spent, rate)
      local why = ("budget $%.2f would be passed: spent %s at %s/h")
        :format(req.budget, money.usd(spent), money.usd(rate))
      pool:end_early { reason = why, grace = money.STOP_GRACE }
    end)
  end
  return search.placement
end

local function _cost_summary(pool, search)
  local s = search.ledger:summary()
  s.budget = search.req.budget
  s.reason = pool.closed_reason  -- why the pool ended early (its timeout, its budget), if it did
  if #s.rows > 0 and pool.display ~= "quiet" and (s.total > 0 or s.budget or s.reason) then
    io.stderr:write(money.format(pool.name, s), "\n")
  end
  s.nodes = s.rows
  search.emit("CostSummary", s)
end

--- Terminates every instance the pool's search created and still runs (the pool's nodes, and
--- any attempt an interrupt cut short), tears down what was prepared, waits for late provision
--- calls, reports the cost. Raises the first failure after trying everything.
function M.release(pool)
  local search = _searches[pool]
  if not search then return end
  local cleanups = errors.cleanups()
  cleanups:run(_wait_stragglers, search, M.STRAGGLER_GRACE)
  for _, g in ipairs(search.ledger:live()) do
    cleanups:run(attempt.terminate, search, g.prov, g.cluster, g.ids)
  end
  cleanups:note(_teardown(search, nil))
  cleanups:run(_cost_summary, pool, search)
  cleanups:raise()
end

return M
