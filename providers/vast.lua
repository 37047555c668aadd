-- sky.vast{...}: Vast.ai instances through its API (console.vast.ai/api, bearer API key). Vast
-- sells machines by ask: the catalog's offer says which GPU, how many and which country; at
-- launch skyhost searches the rentable asks of that kind (POST /api/v0/bundles), cheapest first,
-- and accepts one per node (PUT /api/v0/asks/{id}) with the pool's public key put in place by
-- the on-start script, the instance labelled skyhost-<pool>-<i>. SSH goes to the host and port
-- the API reports (ssh_host, ssh_port). Teardown deletes the instances and waits until the API
-- lists none labelled so. Offers are the catalog's, refreshed from the same ask search (live
-- prices and capacity, M.merge_live). See docs/clouds.md.
local errors = require "sky.errors"
local hj = require "providers.http_json"
local options = require "sky.options"

local M = {}

M.API = "https://console.vast.ai"
M.IMAGE = "vastai/base-image:@vastai-automatic-tag"
M.CREDENTIALS = { env = { "VAST_API_KEY", "VASTAI_API_KEY" },
  files = { { path = "~/.vast_api_key" }, { path = "~/.config/vastai/vast_api_key" } } }
M.HOW = "set VAST_API_KEY or run `vastai set api-key KEY` (~/.config/vastai/vast_api_key); `skyhost check` shows what is found"

local SCHEMA = { region = "string|table", api = "string", image = "string", user = "string", disk_gb = "integer",
  retries = "integer", poll_interval = "number", live = "boolean" }

--- Seconds the broker keeps live offers (sky.state's cache) before asking again.
M.OFFERS_TTL = 300

--- Most asks one live offers search asks for: past it, a kind the answer lacks may still exist.
M.LIVE_LIMIT = 1000

local function _bad(fmt, ...) errors.raise("BadOption", "sky.vast: " .. fmt:format(...)) end

--- Vast's error body {error, msg} → skyhost code, message.
function M.classify(status, doc, text)
  local msg = doc and (doc.msg or doc.detail or doc.error) or text
  msg = type(msg) == "string" and msg or text
  local low = msg:lower()
  if status == 401 or (doc and doc.error == "auth_error") or low:find("invalid user key") then return "AuthFailed", msg end
  if status == 410 or low:find("no_such_ask") or low:find("no longer available") then return "NoCapacity", msg end
  if low:find("insufficient credit") or low:find("balance") then return "QuotaExceeded", msg end
  return nil, msg
end

local Provider = {}

function M.new(opts)
  opts = options.check("sky.vast", opts, SCHEMA)
  if opts.api and not opts.api:find("^https?://[^/]") then _bad("api must be an http:// or https:// URL, got '%s'", opts.api) end
  if opts.disk_gb and (opts.disk_gb < 1 or opts.disk_gb > 100000) then _bad("disk_gb must be 1..100000 GB") end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  local self = { name = "vast", opts = opts, regions = type(opts.region) == "string" and { opts.region } or opts.region,
    user = opts.user or "root", offers_ttl = opts.live ~= false and M.OFFERS_TTL or nil,
    offers_origin = opts.api or M.API }
  return hj.install(self, Provider)
end

function Provider:_api()
  if not self._client then
    self._client = hj.client { cloud = "Vast.ai", base = (self.opts.api or M.API):gsub("/$", ""),
      key = (hj.credentials("vast", M.CREDENTIALS, M.HOW)), classify = M.classify, how = M.HOW,
      retries = self.opts.retries }
  end
  return self._client
end

-- The catalog's instance type <count>x-<GPU>-<cpus>-<memory MB> → count, GPU.
local function _kind(instance_type)
  local count, gpu = (instance_type or ""):match("^(%d+)x%-(.-)%-%d+%-%d+$")
  return tonumber(count), gpu
end

-- Vast writes a GPU "H100 SXM" in answers and takes "H100_SXM" in searches (as its CLI does).
local function _gpu_key(name) return (tostring(name):gsub("[_%s]+", " "):lower()) end

--- The catalog's offers with what one ask search says now: per offer the cheapest rentable
--- ask of its GPU and count in its country (price, `available`). An offer no ask matches is
--- `available = false`, unless the answer was cut at `limit` asks (it may be past the cut).
function M.merge_live(offers, asks, limit)
  local best = {}
  for _, a in ipairs(asks) do
    local cc = type(a.geolocation) == "string" and a.geolocation:match(",%s*(%u%u)%s*$")
    local price = tonumber(a.dph_total)
    if cc and price and a.gpu_name and tonumber(a.num_gpus) then
      local k = ("%s|%d|%s"):format(_gpu_key(a.gpu_name), math.tointeger(tonumber(a.num_gpus)) or -1, cc)
      if not best[k] or price < best[k] then best[k] = price end
    end
  end
  local cut = #asks >= limit
  for _, o in ipairs(offers) do
    local count, gpu = _kind(o.instance_type)
    local cc = o.region and o.region:match(",%s*(%u%u),%s*%u+$")
    if count and cc then
      local price = best[("%s|%d|%s"):format(_gpu_key(gpu), count, cc)]
      if price then
        o.price, o.available, o.source = price, true, "live"
      elseif not cut then
        o.available, o.source = false, "live"
      end
    end
  end
  return offers
end

--- The live search of `offers`' kinds: every GPU and count of them at once, on-demand.
function M.live_body(offers, limit)
  local gpus, counts, seen = {}, {}, {}
  for _, o in ipairs(offers) do
    local count, gpu = _kind(o.instance_type)
    if gpu and not seen[gpu] then seen[gpu] = true; gpus[#gpus + 1] = gpu end
    if count and not seen[count] then seen[count] = true; counts[#counts + 1] = count end
  end
  if #gpus == 0 then return nil end
  table.sort(gpus)
  table.sort(counts)
  return { gpu_name = { ["in"] = gpus }, num_gpus = { ["in"] = counts }, rentable = { eq = true },
    verified = { eq = true }, type = "ondemand", limit = limit }
end

function Provider:offers(spec)
  local offers = hj.catalog_offers("vast", spec, self.regions)
  if self.opts.live == false then return offers end
  local body = M.live_body(offers, M.LIVE_LIMIT)
  if not body then return offers end
  local ok, doc = pcall(function() return self:_api():call("POST", "/api/v0/bundles", body, { retries = 1, timeout = 10 }) end)
  if not ok or type(doc) ~= "table" or type(doc.offers) ~= "table" then return offers end
  return M.merge_live(offers, doc.offers, M.LIVE_LIMIT)
end

function Provider:prepare(cluster)
  self:_api()
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.vast: the pool has no SSH key") end
  if cluster.ssh_public_key:find("'") then errors.raise("BadProvider", "sky.vast: the pool's SSH key has a quote in it") end
  cluster.vast = { known_hosts = os.tmpname(), count = 0 }
end

--- The ask search for `n` nodes of `offer` (the catalog's instance type is <count>x-<GPU>-...).
function M.search_body(n, offer)
  local count, gpu = _kind(offer.instance_type)
  if not gpu then _bad("offer %s does not name a Vast GPU", tostring(offer.instance_type)) end
  return { gpu_name = { ["in"] = { gpu } }, num_gpus = { ["in"] = { count } }, rentable = { eq = true },
    verified = { eq = true }, type = offer.spot and "bid" or "ondemand", limit = math.max(16, 4 * n) }
end

--- The asks of the search answer in the offer's country (the catalog's region ends ", CC, XX"),
--- cheapest first.
function M.pick(asks, offer)
  local cc = offer.region and offer.region:match(",%s*(%u%u),%s*%u+$")
  local out = {}
  for _, a in ipairs(asks or {}) do
    local geo = type(a.geolocation) == "string" and a.geolocation or ""
    if not cc or geo:find(", " .. cc, 1, true) then out[#out + 1] = a end
  end
  table.sort(out, function(a, b) return (tonumber(a.dph_total) or math.huge) < (tonumber(b.dph_total) or math.huge) end)
  return out
end

--- The PUT /api/v0/asks/{id} body of node `label` (tests check it against the spec).
function Provider:create_body(cluster, label)
  local key = cluster.ssh_public_key
  return { image = self.opts.image or M.IMAGE, label = label, disk = self.opts.disk_gb or 32, runtype = "ssh_direct",
    target_state = "running", cancel_unavail = true,
    onstart = ("mkdir -p /root/.ssh && chmod 700 /root/.ssh && grep -qF '%s' /root/.ssh/authorized_keys 2>/dev/null"
      .. " || echo '%s' >> /root/.ssh/authorized_keys"):format(key, key) }
end

function Provider:provision(cluster, n, offer)
  local api, ids = self:_api(), {}
  local asks = M.pick(api:call("POST", "/api/v0/bundles", M.search_body(n, offer)).offers, offer)
  for _, ask in ipairs(asks) do
    if #ids == n then break end
    cluster.vast.count = cluster.vast.count + 1
    local label = ("skyhost-%s-%d"):format(hj.pool(cluster), cluster.vast.count)
    local ok, doc = pcall(api.call, api, "PUT", "/api/v0/asks/" .. math.tointeger(ask.id), self:create_body(cluster, label))
    if ok and doc.new_contract then
      ids[#ids + 1] = tostring(math.tointeger(doc.new_contract))
    elseif not ok and not (type(doc) == "table" and doc.code == "NoCapacity") then
      if type(doc) == "table" then doc.ids = ids end
      error(doc, 0)
    end
  end
  if #ids < n then
    local err = errors.new("NoCapacity", ("sky.vast: %d of %d rentable asks for %s%s"):format(#ids, n, offer.instance_type,
      offer.region and (" in " .. offer.region) or ""), { ids = ids })
    error(err, 0)
  end
  return ids
end

local STATES = { running = "running", loading = "pending", created = "pending", exited = "terminated",
  offline = "terminated" }

function Provider:get_instance(cluster, id)
  local api = self:_api()
  local ok, doc = pcall(api.call, api, "GET", "/api/v0/instances/" .. id)
  if not ok then
    if type(doc) == "table" and doc.status == 404 then return { id = id, state = "terminated" } end
    error(doc, 0)
  end
  local inst = type(doc.instances) == "table" and doc.instances or nil
  if not inst or next(inst) == nil then return { id = id, state = "terminated" } end
  local state = STATES[inst.actual_status] or "pending"
  local host, port = inst.ssh_host, tonumber(inst.ssh_port)
  if state == "running" and not (host and port) then state = "pending" end
  return { id = id, state = state, ip = host, port = port, user = self.user,
    ssh = { host_keys = "accept-new", known_hosts = cluster.vast.known_hosts } }
end

function Provider:terminate(_, ids)
  local api = self:_api()
  for _, id in ipairs(ids) do
    local ok, err = pcall(api.call, api, "DELETE", "/api/v0/instances/" .. id)
    if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
  end
end

function Provider:teardown(cluster)
  if not cluster.vast then return end
  local prefix = "skyhost-" .. hj.pool(cluster) .. "-"
  hj.wait_gone("vast", cluster, function()
    local left = {}
    for _, inst in ipairs(self:_api():call("GET", "/api/v1/instances").instances or {}) do
      if type(inst.label) == "string" and inst.label:sub(1, #prefix) == prefix then
        left[#left + 1] = tostring(math.tointeger(inst.id) or inst.id)
      end
    end
    if #left > 0 then self:terminate(cluster, left) end
    return left
  end, 600, self.opts.poll_interval)
  os.remove(cluster.vast.known_hosts)
  cluster.vast = nil
end

--- `skyhost down --sweep vast` (providers/rest_sweep.lua): instances labelled skyhost-<pool>-<i>
--- of pools not live in the journal.
function M.sweep(opts)
  local p = M.new { api = require("providers.rest_sweep").api("vast") }
  local api = p:_api()
  return require("providers.rest_sweep").sweep({ name = "vast",
    list = function()
      local out = {}
      for _, i in ipairs(api:call("GET", "/api/v1/instances").instances or {}) do
        out[#out + 1] = { id = tostring(math.tointeger(i.id) or i.id), name = i.label }
      end
      return out
    end,
    terminate = function(ids) p:terminate(nil, ids) end,
  }, opts)
end

return M
