-- skyhost's subcommands that are written in Lua: `skyhost offers ...`, `skyhost check`, and
-- `skyhost ls` / `skyhost down` (stdlib/sky/commands/fleet.lua).
-- app/main.cpp hands them to Runtime::run_command, which calls M.run(name, args...) and
-- exits with what it returns. None starts a pool or a worker.
local catalog = require "providers.catalog"
local clouds = require "providers.clouds"
local errors = require "sky.errors"
local providers = require "providers"
local sched = require "sky.internal.sched"

local M = {}

local OFFERS_USAGE = [[
usage: skyhost offers [--accelerator NAME] [--count N] [--spot] [--provider P]... [--region R]
                      [--limit N] [--offline] [--json]

Lists GPU offers from the catalog snapshot that ships with skyhost, cheapest first (USD per hour
for the whole instance). Without --spot, offers sort by on-demand price, then spot-only offers;
with --spot, only offers with a spot price, sorted by it. Providers with a live offers API
(Lambda, DigitalOcean, Vast.ai, RunPod) whose credentials are found are asked for their prices now
(their offers without capacity left out); the footer names them. SKYHOST_<PROVIDER>_API (for example
SKYHOST_LAMBDA_API) points a provider at another endpoint; SKYHOST_RUNPOD_CATALOG_API points RunPod's
price list (its API v2) elsewhere.

  --accelerator NAME  H100, A100-80GB, L4, ... (aliases and any case work: h100-sxm)
  --count N           accelerators per instance
  --spot              only offers sold as spot / preemptible, sorted by spot price
  --provider P        only this provider (repeat it or give a comma-separated list)
  --region R          only this region
  --limit N           print the N cheapest only
  --offline           the catalog snapshot only, no provider is asked
  --json              one JSON object per offer, one per line
]]

-- Providers whose offers() asks the cloud's API for prices and capacity (providers/*.lua M.merge_live).
local LIVE = { "lambda", "digitalocean", "vast", "runpod" }

-- Replaces the catalog rows of each LIVE provider that the query covers and whose credentials are
-- found with what its provider's offers() returns (the broker's path). Returns the new list, the
-- providers that answered, and how many of their offers were left out for lack of capacity.
local function _refresh(list, q)
  local wanted
  if q.provider then
    wanted = {}
    for _, p in ipairs(q.provider) do wanted[p] = true end
  end
  local hj = require "providers.http_json"
  local live, replaced, dropped = {}, {}, 0
  local fresh = {}
  for _, name in ipairs(LIVE) do
    local mod = require(providers.FACTORY[name])
    if (not wanted or wanted[name]) and hj.find(mod.CREDENTIALS) then
      local api = os.getenv("SKYHOST_" .. name:upper() .. "_API")
      -- RunPod's price list is its API v2, on another host than the v1 it launches with.
      local catalog = name == "runpod" and os.getenv("SKYHOST_RUNPOD_CATALOG_API") or nil
      local ok, offers = pcall(function()
        local spec = {}
        for k, v in pairs(q) do spec[k] = v end
        spec.provider = nil
        return mod.new({ api = api ~= "" and api or nil, catalog_api = catalog ~= "" and catalog or nil }):offers(spec)
      end)
      local answered = false
      if ok then
        for _, o in ipairs(offers) do answered = answered or o.source == "live" end
      end
      if answered then
        live[#live + 1] = name
        replaced[name] = true
        for _, o in ipairs(offers) do
          if o.available == false then dropped = dropped + 1 else fresh[#fresh + 1] = o end
        end
      end
    end
  end
  if #live == 0 then return list, live, 0 end
  local out = {}
  for _, o in ipairs(list) do
    if not replaced[o.provider] then out[#out + 1] = o end
  end
  for _, o in ipairs(fresh) do out[#out + 1] = o end
  return out, live, dropped
end

-- Arguments: "--flag value", "--flag=value", boolean flags. Returns opts or nil, err.
local function _parse(args, spec)
  local opts, i = {}, 1
  while i <= #args do
    local a = args[i]
    local key, value = a:match("^%-%-([%w-]+)=(.*)$")
    key = key or a:match("^%-%-([%w-]+)$")
    if a == "-h" then key = "help" end
    local kind = key and spec[key]
    if not kind then return nil, ("unknown argument '%s'"):format(a) end
    if kind == "flag" then
      if value then return nil, ("--%s takes no value"):format(key) end
      opts[key] = true
    else
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then return nil, ("--%s needs a value"):format(key) end
      end
      if kind == "int" then
        local n = math.tointeger(tonumber(value))
        if not n or n < 1 then return nil, ("--%s must be a whole number above 0, got '%s'"):format(key, value) end
        value = n
      end
      if kind == "list" then
        local list = opts[key] or {}
        for item in value:gmatch("[^,%s]+") do list[#list + 1] = item end
        value = list
      end
      opts[key] = value
    end
    i = i + 1
  end
  return opts
end

local function _fmt_price(p) return p and ("%.4f"):format(p) or "-" end

local function _fmt_num(v)
  if v == nil then return "-" end
  if math.type(v) == "integer" or v == math.floor(v) then return ("%d"):format(v) end
  return ("%g"):format(v)
end

-- JSON for one flat offer, keys in a fixed order (stable output for scripts and tests).
local _json_keys = { "provider", "instance_type", "accelerator", "count", "gpu_memory", "vcpus", "memory",
  "region", "zone", "price", "spot_price", "source", "date" }
local function _json(o)
  local parts = {}
  for _, k in ipairs(_json_keys) do
    local v = o[k]
    local text
    if v == nil then
      text = "null"
    elseif type(v) == "number" then
      text = math.type(v) == "integer" and tostring(v) or ("%.14g"):format(v)
    else
      text = '"' .. tostring(v):gsub('[%c"\\]', function(c)
        return ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t" })[c] or ("\\u%04x"):format(c:byte())
      end) .. '"'
    end
    parts[#parts + 1] = ('"%s":%s'):format(k, text)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- skyhost offers [...]: returns the exit status.
function M.offers(...)
  local opts, err = _parse({ ... }, { accelerator = "string", count = "int", spot = "flag", provider = "list",
    region = "string", limit = "int", json = "flag", offline = "flag", help = "flag" })
  if not opts then
    io.stderr:write("skyhost offers: ", err, "\n", "Try 'skyhost offers --help'.\n")
    return 2
  end
  if opts.help then
    io.stdout:write(OFFERS_USAGE)
    return 0
  end
  local q = { accelerator = opts.accelerator, count = opts.count, provider = opts.provider,
    region = opts.region, spot = opts.spot or nil }
  if opts.provider then
    for _, p in ipairs(opts.provider) do
      if not clouds.by_name[p] and not providers.implemented(p) then providers.resolve(p, "--provider") end
    end
  end
  local all = catalog.snapshot()
  local list = catalog.query(all, q)
  local live, dropped = {}, 0
  if not opts.offline then list, live, dropped = _refresh(list, q) end
  -- Sort by the price a buyer would pay first; ties keep catalog order.
  local key, index = {}, {}
  for i, o in ipairs(list) do
    index[o] = i
    if opts.spot then key[o] = o.spot_price else key[o] = o.price or (1e9 + (o.spot_price or 0)) end
  end
  table.sort(list, function(a, b)
    if key[a] ~= key[b] then return key[a] < key[b] end
    return index[a] < index[b]
  end)
  local n = opts.limit and math.min(opts.limit, #list) or #list
  if opts.json then
    for i = 1, n do io.stdout:write(_json(list[i]), "\n") end
    return 0
  end
  if #list == 0 then
    io.stdout:write("no offers match\n")
    return 0
  end
  local rows = { { "PROVIDER", "INSTANCE TYPE", "GPU", "COUNT", "GPU GiB", "vCPU", "RAM GiB", "REGION", "ZONE", "$/H", "SPOT $/H" } }
  local unimplemented, seen = {}, {}
  for i = 1, n do
    local o = list[i]
    rows[#rows + 1] = { o.provider, o.instance_type, o.accelerator or "-", _fmt_num(o.count), _fmt_num(o.gpu_memory),
      _fmt_num(o.vcpus), _fmt_num(o.memory), o.region or "-", o.zone or "-", _fmt_price(o.price), _fmt_price(o.spot_price) }
    if not providers.implemented(o.provider) and not seen[o.provider] then
      seen[o.provider] = true
      unimplemented[#unimplemented + 1] = o.provider
    end
  end
  local width = {}
  for _, r in ipairs(rows) do
    for c, cell in ipairs(r) do width[c] = math.max(width[c] or 0, #cell) end
  end
  local right = { [4] = true, [5] = true, [6] = true, [7] = true, [10] = true, [11] = true }
  for _, r in ipairs(rows) do
    local cells = {}
    for c, cell in ipairs(r) do
      cells[c] = right[c] and (" "):rep(width[c] - #cell) .. cell or cell .. (" "):rep(width[c] - #cell)
    end
    io.stdout:write((table.concat(cells, "  "):gsub("%s+$", "")), "\n")
  end
  local date = list[1].date or "unknown date"
  io.stdout:write(("%d of %d offers; USD per hour per instance; catalog snapshot (%s) from skypilot-catalog, see providers/catalog/README.md\n")
    :format(n, #list, date))
  if #live > 0 then
    io.stdout:write("live prices from ", table.concat(live, ", "), " (their APIs, just now)",
      dropped > 0 and ("; %d of their offers without capacity now left out"):format(dropped) or "", "\n")
  end
  if #unimplemented > 0 then
    table.sort(unimplemented)
    io.stdout:write("not implemented in this build yet, listed for their prices: ", table.concat(unimplemented, ", "), "\n")
  end
  return 0
end

--- skyhost check: every provider, whether it can be used and whether its credentials are found.
function M.check(...)
  if select("#", ...) > 0 then
    local a = ...
    if a == "-h" or a == "--help" then
      io.stdout:write("usage: skyhost check\n\nLists each provider skyhost knows, whether this build implements it, and whether\n"
        .. "its credentials are found (and where it looked). Secret values are never printed.\n")
      return 0
    end
    io.stderr:write(("skyhost check: unknown argument '%s'\nTry 'skyhost check --help'.\n"):format(a))
    return 2
  end
  local rows = {
    { "local", "ready", "none needed: workers run on this machine" },
    { "ssh", "ready", "machines you list with sky.ssh{hosts = ...}; keys from ~/.ssh or identity =" },
  }
  local found_any = false
  for _, c in ipairs(clouds.list) do
    local found, where, looked = clouds.credentials(c)
    if providers.FACTORY[c.name] == "providers.aws" then
      -- What sky.aws itself would use (a file with no keys in it is not credentials).
      found, where = require("providers.aws.credentials").describe()
      where = found and where or nil
    elseif providers.FACTORY[c.name] then
      -- A JSON/REST cloud: a file counts only when it holds a key (providers/http_json.lua).
      local places = require(providers.FACTORY[c.name]).CREDENTIALS
      if places then
        local key
        key, where, looked = require("providers.http_json").find(places)
        found = key ~= nil
      end
    end
    if providers.FACTORY[c.name] == "providers.gcp" then
      -- What sky.gcp itself would use: a readable key file of a type it handles.
      found, where = require("providers.gcp.auth").describe()
      where = found and where or nil
    end
    local status = providers.implemented(c.name) and "ready" or "not implemented"
    local text = found and ("found: %s"):format(where) or ("not found (looked at %s)"):format(table.concat(looked, ", "))
    found_any = found_any or found
    rows[#rows + 1] = { c.name, status, text }
  end
  io.stdout:write(("%-15s %-16s %s\n"):format("PROVIDER", "STATUS", "CREDENTIALS"))
  for _, r in ipairs(rows) do io.stdout:write(("%-15s %-16s %s\n"):format(r[1], r[2], r[3])) end
  io.stdout:write("Cloud providers are listed for `skyhost offers` and credentials only; define one in a script\n"
    .. "with sky.provider{...} to provision through it.\n")
  return 0
end

-- Every subcommand, the one list of them: app/main.cpp asks M.is_command whether a word names
-- one (a script cannot take these names) and prints M.usage() in `skyhost --help`.
M.LIST = {
  { name = "offers", args = "[--accelerator NAME] [--count N] [--spot] [--provider P] [--json]",
    about = "GPU offers and prices from the catalog (live where a cloud answers), cheapest first", run = M.offers },
  { name = "check", about = "each provider: implemented, credentials found (and where)", run = M.check },
  { name = "ls", args = "[--json]", about = "pools in the journal: running, and orphans of a skyhost gone",
    run = require("sky.commands.fleet").ls },
  { name = "down", args = "POOL... | --orphans | --all [--force] | --sweep PROVIDER",
    about = "end pools from the journal and confirm it", run = require("sky.commands.fleet").down },
}

local BY_NAME = {}
for _, c in ipairs(M.LIST) do BY_NAME[c.name] = c end

function M.is_command(name)
  return BY_NAME[name] ~= nil
end

--- The commands' lines of `skyhost --help`: synopsis, then the summary in the second column (or
--- on a line of its own when the synopsis is long).
function M.usage()
  local lines = {}
  for _, c in ipairs(M.LIST) do
    local synopsis = "  skyhost " .. c.name .. (c.args and (" " .. c.args) or "")
    if #synopsis < 28 then
      lines[#lines + 1] = ("%-28s%s"):format(synopsis, c.about)
    else
      lines[#lines + 1] = synopsis
      lines[#lines + 1] = (" "):rep(28) .. c.about
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- Runs subcommand `name` with string arguments; returns the exit status. Errors are printed
--- as the CLI prints them.
function M.run(name, ...)
  local c = BY_NAME[name]
  if not c then
    io.stderr:write(("skyhost: unknown command '%s'\n"):format(tostring(name)))
    return 2
  end
  local r = table.pack(sched.main(c.run, ...))
  if not r[1] then
    local e = r[2]
    local text = errors.is(e) and e.message or errors.message(e)
    io.stderr:write(("skyhost %s: %s\n"):format(name, text))
    return 1
  end
  return math.tointeger(r[2]) or 0
end

return M
