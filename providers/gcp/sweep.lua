-- `skyhost down --sweep gcp` (docs/journal.md, docs/gcp.md): every instance labelled
-- skyhost-pool in the zones swept, grouped by that label; what belongs to no pool live in the
-- journal is deleted and waited for until the zone lists none of it (a stopped VM still bills
-- its disk, so TERMINATED ones are deleted too). An instance whose insert answer was lost (a
-- crash the journal cannot record) carries the label from its insert, so it is found as well.
local catalog = require "providers.catalog"
local errors = require "sky.errors"

local M = {}

M.LABEL = "skyhost-pool"
M.WAIT = 600

--- The zones to sweep: each of `names` that is a zone (us-east4-a), or every zone the catalog has
--- in a region named (us-east4); none named: every zone of the catalog's GCP offers.
function M.zones(names)
  local by_region, all, seen = {}, {}, {}
  for _, o in ipairs(catalog.query(catalog.snapshot(), { provider = "gcp" })) do
    if o.zone and not seen[o.zone] then
      seen[o.zone] = true
      all[#all + 1] = o.zone
      by_region[o.region] = by_region[o.region] or {}
      table.insert(by_region[o.region], o.zone)
    end
  end
  if not names or #names == 0 then
    table.sort(all)
    return all
  end
  local out = {}
  for _, n in ipairs(names) do
    if n:find("^%l+%-%l+%d+%-%l$") then
      out[#out + 1] = n
    elseif by_region[n] then
      for _, z in ipairs(by_region[n]) do out[#out + 1] = z end
    else
      errors.raise("BadOption", ("sky.gcp: '%s' is neither a zone (us-east4-a) nor a region the catalog knows"):format(n))
    end
  end
  return out
end

-- {[label] = {names}} of the labelled instances `zone` lists, and their statuses.
local function _listed(c, zone)
  local doc = c:call("GET", c:url("zones/%s/instances", zone), nil, "instances.list", zone) or {}
  local by, status = {}, {}
  for _, inst in ipairs(doc.items or {}) do
    local label = type(inst.labels) == "table" and inst.labels[M.LABEL]
    if label then
      by[label] = by[label] or {}
      table.insert(by[label], inst.name)
      status[inst.name] = inst.status
    end
  end
  return by, status
end

--- opts as aws's sweep: {region (zones or regions), live = function(uid), journal = {pool ids},
--- dry_run, say, wait, poll_interval}. A label is the pool id made label-safe; a journal pool
--- whose id gives that label is named by its id. Returns {pools = {[uid] = {zone, instances}}}.
function M.sweep(opts)
  local gcp = require "providers.gcp"
  local env = os.getenv("SKYHOST_GCP_API")
  local c = gcp.new({ endpoint = env ~= "" and env or nil }):_client()
  local say = opts.say or function() end
  local uid_of = {}
  for _, id in ipairs(opts.journal or {}) do uid_of[gcp.slug(id):sub(1, 63)] = id end
  local found = {}
  for _, zone in ipairs(M.zones(opts.region)) do
    local by, status = _listed(c, zone)
    local labels = {}
    for label in pairs(by) do labels[#labels + 1] = label end
    table.sort(labels)
    for _, label in ipairs(labels) do
      local uid, names = uid_of[label] or label, by[label]
      table.sort(names)
      local text = ("%d instance%s (%s)"):format(#names, #names == 1 and "" or "s", table.concat(names, ", "))
      if opts.live and opts.live(uid) then
        say(("pool %s (%s): live in the journal, left alone: %s"):format(uid, zone, text))
      elseif opts.dry_run then
        found[uid] = { zone = zone, instances = names }
        say(("pool %s (%s): would end %s"):format(uid, zone, text))
      else
        found[uid] = { zone = zone, instances = names }
        local deadline, sent, left = os.time() + (opts.wait or M.WAIT), {}, names
        while #left > 0 do
          for _, n in ipairs(left) do
            -- Deleting already (STOPPING): asking again is refused as resourceNotReady.
            if not sent[n] and status[n] ~= "STOPPING" then
              sent[n] = true
              local ok, err = pcall(c.call, c, "DELETE", c:url("zones/%s/instances/%s", zone, n), nil,
                "instances.delete", zone)
              if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
            end
          end
          require("sky").sleep(opts.poll_interval or 1)
          by, status = _listed(c, zone)
          left = by[label] or {}
          if #left > 0 and os.time() > deadline then
            errors.raise("CleanupFailed", ("sky.gcp: pool %s in %s: instances %s still listed after %d s")
              :format(uid, zone, table.concat(left, ", "), opts.wait or M.WAIT))
          end
        end
        say(("pool %s (%s): ended %s"):format(uid, zone, text))
      end
    end
  end
  return { pools = found }
end

return M
