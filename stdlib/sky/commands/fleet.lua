-- `skyhost ls` and `skyhost down`: the pools the journal knows (stdlib/sky/pool/journal.lua), whether
-- their skyhost still runs, and ending them. docs/journal.md says what each guarantees.
local core = require "skyhost.core"
local journal = require "sky.pool.journal"
local json = require "sky.json"
local providers = require "providers"
local sched = require "sky.internal.sched"

local M = {}

local LS_USAGE = [[
usage: skyhost ls [--json]

Lists the pools in the journal (~/.skyhost/state.db, or $SKYHOST_STATE_DIR/state.db): those
still running, and orphans — pools whose skyhost is gone while the journal cannot confirm that
their machines ended. With --json, one JSON object per pool per line.
]]

local DOWN_USAGE = [[
usage: skyhost down POOL... | --orphans | --all  [--force] [--forget]
       skyhost down --sweep PROVIDER [--region R]... [--dry-run]

Ends pools from the journal (by id or name, as `skyhost ls` shows them) and confirms it.
  --orphans  every pool whose skyhost is gone
  --all      every pool, orphaned or not
  --force    also end pools whose skyhost still runs: that skyhost is asked to stop (SIGTERM)
             and tears its pools down itself (a skyhost on another machine is taken as gone)
  --forget   drop from the journal what no provider here can end (after you ended it yourself)
  --sweep P  ask provider P (aws, gcp, lambda, digitalocean, runpod, vast) for everything tagged
             or named as a skyhost pool's, and end what belongs to no pool live in the journal:
             what a skyhost that died could not record
  --region R aws: the regions to sweep (default: the credentials' region); gcp: zones or regions
             (default: every zone of the catalog); the others list everything at once
  --dry-run  with --sweep: say what would be ended, end nothing
Running it twice is harmless: what is already gone is skipped.
]]

local function _age(seconds)
  if seconds < 120 then return ("%ds"):format(math.floor(seconds)) end
  if seconds < 7200 then return ("%dm"):format(math.floor(seconds / 60)) end
  if seconds < 172800 then return ("%dh"):format(math.floor(seconds / 3600)) end
  return ("%dd"):format(math.floor(seconds / 86400))
end

-- Dollars so far: each instance's price for the time it has been (or was) up.
local function _cost(p, now)
  local total = 0
  for _, i in ipairs(p.instances) do
    local price = i.info and tonumber(i.info.price)
    if price and i.instance_id ~= "" then
      total = total + price * ((i.terminated or now) - i.created) / 3600
    end
  end
  return total
end

local function _providers(p)
  local seen, out = {}, {}
  for _, i in ipairs(p.instances) do
    if not seen[i.provider] then
      seen[i.provider] = true
      out[#out + 1] = i.provider
    end
  end
  return #out > 0 and table.concat(out, ",") or "-"
end

local function _owner_text(p)
  local o = p.info and p.info.owner or {}
  if p.owner == "alive" then return ("pid %s"):format(o.pid) end
  if p.owner == "gone" then return "gone" end
  return "elsewhere" .. (o.host and o.host ~= "" and (" (" .. o.host .. ")") or "")
end

local function _open_journal(cmd)
  local st, why = journal.store()
  if not st then io.stderr:write(("skyhost %s: cannot open the journal: %s\n"):format(cmd, why)) end
  return st
end

function M.ls(...)
  local args = { ... }
  local as_json = false
  for _, a in ipairs(args) do
    if a == "--help" or a == "-h" then
      io.stdout:write(LS_USAGE)
      return 0
    elseif a == "--json" then
      as_json = true
    else
      io.stderr:write(("skyhost ls: unknown argument '%s'\nTry 'skyhost ls --help'.\n"):format(a))
      return 2
    end
  end
  local st = _open_journal("ls")
  if not st then return 1 end
  local pools, now = journal.pools(st), core.time()
  for _, p in ipairs(pools) do
    p.cost = _cost(p, now)
    p.orphan = p.owner == "gone" and p.live > 0
  end
  if as_json then
    for _, p in ipairs(pools) do
      local insts = {}
      for k, i in ipairs(p.instances) do
        insts[k] = { provider = i.provider, id = i.instance_id ~= "" and i.instance_id or nil,
          state = i.state, created = i.created, terminated = i.terminated, info = i.info }
      end
      io.stdout:write(json.encode({ id = p.id, name = p.name, state = p.state, owner = p.owner,
        orphan = p.orphan, created = p.created, live = p.live, cost = p.cost,
        script = p.info and p.info.script, instances = insts }), "\n")
    end
    return 0
  end
  if #pools == 0 then
    io.stdout:write("no pools\n")
    return 0
  end
  local fmt = "%-22s %-12s %-12s %-12s %-10s %5s %6s %9s\n"
  io.stdout:write(fmt:format("POOL", "NAME", "STATE", "OWNER", "PROVIDER", "LIVE", "AGE", "COST"))
  for _, p in ipairs(pools) do
    local state = p.orphan and "orphaned" or p.state
    io.stdout:write(fmt:format(p.id, p.name, state, _owner_text(p), _providers(p),
      ("%d/%d"):format(p.live, #p.instances), _age(now - p.created), ("$%.2f"):format(p.cost)))
  end
  return 0
end

-- How `skyhost down` ends an orphan's instances, by provider: those that end with their host or
-- by their lease need nothing; a built-in provider module may export end_orphans(instances)
-- (journal records) → the instance ids it confirmed terminated (docs/journal.md).
local function _end_instances(provider, insts)
  local first = insts[1].info or {}
  if first.ends_with_host then return "ended with their skyhost" end
  if first.ends_by_lease then return "they end by their lease (ttl) once their skyhost is gone" end
  local module = providers.BUILTIN[provider] or (providers.FACTORY or {})[provider]
  local ok, mod = pcall(require, module or ("providers." .. provider))
  if not ok or type(mod) ~= "table" or type(mod.end_orphans) ~= "function" then
    local ids = {}
    for i, r in ipairs(insts) do ids[i] = r.instance_id ~= "" and r.instance_id or "(never got an id)" end
    local why = ok and type(mod) == "table" and "it cannot end instances of a skyhost that is gone"
      or "it was defined by its script"
    return nil, ("provider '%s' cannot be reached from here (%s): end instances %s yourself, "
      .. "then run skyhost down again with --forget"):format(provider, why, table.concat(ids, ", "))
  end
  local okc, confirmed = pcall(mod.end_orphans, insts)
  if not okc then return nil, ("provider '%s': %s"):format(provider, tostring(confirmed)) end
  return "terminated", confirmed
end

-- Ends pool `p` (journal record from journal.pools) whose owner is gone. Returns true when the
-- journal has nothing of it left.
local function _end_orphan(st, p, forget)
  local by_provider, order = {}, {}
  for _, i in ipairs(p.instances) do
    if i.state ~= "terminated" and i.state ~= "failed" then
      if not by_provider[i.provider] then
        by_provider[i.provider] = {}
        order[#order + 1] = i.provider
      end
      table.insert(by_provider[i.provider], i)
    end
  end
  local all = true
  for _, prov in ipairs(order) do
    local insts = by_provider[prov]
    local how, confirmed = _end_instances(prov, insts)
    if not how and forget then how = "forgotten (--forget): check the provider yourself" end
    if how then
      local done = {}
      if type(confirmed) == "table" then
        for _, id in ipairs(confirmed) do done[tostring(id)] = true end
      end
      local gone = st:atomically(function()
        -- another `skyhost down` that ran at the same time ended the pool first
        if st:pool(p.id) == nil then return true end
        for _, i in ipairs(insts) do
          if type(confirmed) ~= "table" or done[i.instance_id or ""] then
            st:mark_instance(i.key, "terminated")
          else
            all = false
          end
        end
      end)
      io.stdout:write(("pool %s: %d %s instance%s: %s\n"):format(p.id, #insts, prov,
        #insts == 1 and "" or "s", how))
      if gone then
        io.stdout:write(("pool %s (%s): ended (by another skyhost down at the same time)\n"):format(p.id, p.name))
        return true
      end
    else
      all = false
      io.stderr:write(("skyhost down: pool %s: %s\n"):format(p.id, confirmed))
    end
  end
  if not all then return false end
  st:atomically(function()
    if st:pool(p.id) == nil then return end  -- forgotten meanwhile by another `skyhost down`
    st:finish_pool(p.id)
    st:forget_pool(p.id)
  end)
  io.stdout:write(("pool %s (%s): ended\n"):format(p.id, p.name))
  return true
end

-- Asks a live owner to stop (SIGTERM: it tears its pools down) and waits until the journal no
-- longer lists `p`.
local function _stop_owner(st, p)
  local pid = math.tointeger(p.info.owner.pid)
  local ok, why = core.signal(pid, "TERM")
  if not ok then return false, ("cannot signal skyhost pid %d: %s"):format(pid, why) end
  io.stdout:write(("pool %s: asked skyhost pid %d to stop; waiting for its teardown\n"):format(p.id, pid))
  local deadline = core.now() + 120
  while core.now() < deadline do
    local still = false
    for _, q in ipairs(journal.pools(st)) do still = still or q.id == p.id end
    if not still then
      io.stdout:write(("pool %s (%s): ended by its skyhost\n"):format(p.id, p.name))
      return true
    end
    if journal.owner_state(p.info.owner) ~= "alive" then return nil end  -- exited: an orphan now
    sched.await(core.sleep(0.1))
  end
  return false, ("skyhost pid %d did not finish its teardown within 120 s"):format(pid)
end

-- `skyhost down --sweep PROVIDER`: the provider module's sweep(opts) ends what is tagged as a
-- pool's and is not live in the journal; the journal's orphans it ended are confirmed there.
local function _sweep(st, provider, flags)
  local module = providers.BUILTIN[provider] or (providers.FACTORY or {})[provider]
  local ok, mod = pcall(require, module or ("providers." .. provider))
  if not ok or type(mod) ~= "table" or type(mod.sweep) ~= "function" then
    io.stderr:write(("skyhost down: provider '%s' cannot be swept (only a provider that tags or names what "
      .. "it creates by pool can: aws, gcp, lambda, digitalocean, runpod, vast); `skyhost down --orphans` ends "
      .. "what the journal recorded\n"):format(provider))
    return 1
  end
  local live, gone, ids = {}, {}, {}
  for _, p in ipairs(journal.pools(st)) do
    if p.owner == "gone" then gone[p.id] = p else live[p.id] = true end
    ids[#ids + 1] = p.id
  end
  local okc, res = pcall(mod.sweep, { region = #flags.region > 0 and flags.region or nil, dry_run = flags["dry-run"],
    live = function(uid) return live[uid] == true end, journal = ids,
    say = function(line) io.stdout:write(line, "\n") end })
  if not okc then
    io.stderr:write(("skyhost down: sweeping %s: %s\n"):format(provider, type(res) == "table" and res.message or tostring(res)))
    return 1
  end
  if next(res.pools) == nil then io.stdout:write(("nothing of skyhost's to sweep in %s\n"):format(provider)) end
  if flags["dry-run"] then return 0 end
  for uid, what in pairs(res.pools) do
    local p = gone[uid]
    if p then
      local left = 0
      st:atomically(function()
        for _, i in ipairs(p.instances) do
          if i.state ~= "terminated" and i.state ~= "failed" then
            -- What the sweep covered: aws a region, gcp a zone, the REST clouds everything.
            local info = i.info or {}
            if i.provider == provider and (what.region == nil or info.region == nil or info.region == what.region)
              and (what.zone == nil or info.zone == nil or info.zone == what.zone) then
              st:mark_instance(i.key, "terminated")
            else
              left = left + 1
            end
          end
        end
      end)
      if left == 0 then
        st:finish_pool(p.id)
        st:forget_pool(p.id)
        io.stdout:write(("pool %s (%s): ended\n"):format(p.id, p.name))
      end
    end
  end
  return 0
end

function M.down(...)
  local names, flags, args = {}, { region = {} }, { ... }
  local i = 0
  while i < #args do
    i = i + 1
    local a = args[i]
    if a == "--help" or a == "-h" then
      io.stdout:write(DOWN_USAGE)
      return 0
    elseif a == "--orphans" or a == "--all" or a == "--force" or a == "--forget" or a == "--dry-run" then
      flags[a:sub(3)] = true
    elseif a == "--sweep" or a == "--region" then
      i = i + 1
      if args[i] == nil or args[i]:sub(1, 1) == "-" then
        io.stderr:write(("skyhost down: %s needs a value\nTry 'skyhost down --help'.\n"):format(a))
        return 2
      end
      if a == "--sweep" then flags.sweep = args[i] else table.insert(flags.region, args[i]) end
    elseif a:sub(1, 1) == "-" then
      io.stderr:write(("skyhost down: unknown argument '%s'\nTry 'skyhost down --help'.\n"):format(a))
      return 2
    else
      names[#names + 1] = a
    end
  end
  if flags.sweep then
    if #names > 0 or flags.orphans or flags.all or flags.force or flags.forget then
      io.stderr:write("skyhost down: --sweep goes alone (with --region and --dry-run)\nTry 'skyhost down --help'.\n")
      return 2
    end
    local st = _open_journal("down")
    if not st then return 1 end
    return _sweep(st, flags.sweep, flags)
  elseif flags["dry-run"] or #flags.region > 0 then
    io.stderr:write("skyhost down: --dry-run and --region go with --sweep\nTry 'skyhost down --help'.\n")
    return 2
  end
  if #names == 0 and not flags.orphans and not flags.all then
    io.stderr:write("skyhost down: name the pools to end, or give --orphans or --all\nTry 'skyhost down --help'.\n")
    return 2
  end
  local st = _open_journal("down")
  if not st then return 1 end
  local pools, chosen, rc = journal.pools(st), {}, 0
  for _, name in ipairs(names) do
    local hits = {}
    for _, p in ipairs(pools) do
      if p.id == name or p.name == name then hits[#hits + 1] = p end
    end
    if #hits == 0 then
      io.stderr:write(("skyhost down: no pool '%s' in the journal (`skyhost ls` lists them)\n"):format(name))
      rc = 1
    elseif #hits > 1 and hits[1].id ~= name then
      local ids = {}
      for i, p in ipairs(hits) do ids[i] = p.id end
      io.stderr:write(("skyhost down: '%s' names %d pools (%s): give an id\n"):format(name, #hits, table.concat(ids, ", ")))
      rc = 1
    else
      chosen[hits[1]] = true
    end
  end
  for _, p in ipairs(pools) do
    if flags.all or (flags.orphans and p.owner == "gone") then chosen[p] = true end
  end
  local any = false
  for _, p in ipairs(pools) do
    if chosen[p] then
      any = true
      local ok, why = true, nil
      if p.owner == "alive" or (p.owner == "elsewhere" and not flags.force) then
        if not flags.force then
          ok, why = false, ("pool %s is run by skyhost pid %s%s, still running: stop that script (Ctrl-C tears it down) or add --force")
            :format(p.id, p.info.owner.pid, p.owner == "elsewhere" and (" on " .. tostring(p.info.owner.host)) or "")
        elseif p.owner == "alive" then
          ok, why = _stop_owner(st, p)
          if ok == nil then
            for _, q in ipairs(journal.pools(st)) do
              if q.id == p.id then ok = _end_orphan(st, q, flags.forget) end
            end
            ok = ok ~= false
          end
        end
      else
        ok = _end_orphan(st, p, flags.forget)
      end
      if not ok then
        rc = 1
        if why then io.stderr:write("skyhost down: ", why, "\n") end
      end
    end
  end
  if not any and rc == 0 then io.stdout:write("nothing to end\n") end
  return rc
end

return M
