-- sky.digitalocean{...}: DigitalOcean droplets (GPU droplets included) through the API v2
-- (api.digitalocean.com/v2, bearer token). The pool's ephemeral public key is added to the
-- account (skyhost-<pool>) and named at create; the droplets' user data also installs it for
-- root and records the pool. One request creates all the pool's droplets (`names`), each named
-- skyhost-<pool>-<i> and tagged skyhost:<pool>. Teardown deletes by that tag, waits until the
-- API lists none, then deletes the key. Offers come from the shipped catalog. See
-- docs/clouds.md.
local errors = require "sky.errors"
local hj = require "providers.http_json"
local options = require "sky.options"

local M = {}

M.API = "https://api.digitalocean.com"
M.IMAGE = "gpu-h100x1-base"
M.CREDENTIALS = { env = { "DIGITALOCEAN_ACCESS_TOKEN" },
  files = { { path = "~/.config/doctl/config.yaml", keys = { "access-token" } } } }
M.HOW = "set DIGITALOCEAN_ACCESS_TOKEN or run `doctl auth init` (~/.config/doctl/config.yaml); `skyhost check` shows what is found"

local SCHEMA = { region = "string|table", api = "string", image = "string", user = "string", retries = "integer",
  poll_interval = "number", live = "boolean" }

--- Seconds the broker keeps live offers (sky.state's cache) before asking again.
M.OFFERS_TTL = 300

local function _bad(fmt, ...) errors.raise("BadOption", "sky.digitalocean: " .. fmt:format(...)) end

--- DigitalOcean's error body {id, message} → skyhost code, message.
function M.classify(status, doc, text)
  local id = doc and doc.id
  local msg = doc and type(doc.message) == "string" and (tostring(id) .. ": " .. doc.message) or text
  local low = msg:lower()
  if status == 401 or id == "unauthorized" or id == "Unauthorized" then return "AuthFailed", msg end
  if status == 429 or id == "too_many_requests" then return nil, msg end -- rate limit: retried, not a quota
  if low:find("droplet limit") or low:find("quota") then return "QuotaExceeded", msg end
  if low:find("not available") or low:find("capacity") or low:find("out of stock") then return "NoCapacity", msg end
  return nil, msg
end

local Provider = {}

function M.new(opts)
  opts = options.check("sky.digitalocean", opts, SCHEMA)
  if opts.api and not opts.api:find("^https?://[^/]") then _bad("api must be an http:// or https:// URL, got '%s'", opts.api) end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  local self = { name = "digitalocean", opts = opts,
    regions = type(opts.region) == "string" and { opts.region } or opts.region, user = opts.user or "root",
    offers_ttl = opts.live ~= false and M.OFFERS_TTL or nil, offers_origin = opts.api or M.API }
  return hj.install(self, Provider)
end

function Provider:_api()
  if not self._client then
    self._client = hj.client { cloud = "DigitalOcean", base = (self.opts.api or M.API):gsub("/$", ""),
      key = (hj.credentials("digitalocean", M.CREDENTIALS, M.HOW)), classify = M.classify, how = M.HOW,
      retries = self.opts.retries }
  end
  return self._client
end

--- The catalog's offers with what GET /v2/sizes says now: price_hourly, and `available` (the
--- size is available and sold in the offer's region). Sizes the catalog does not know are left
--- out; offers of a size the API does not list are kept as they are.
function M.merge_live(offers, sizes)
  local by_slug = {}
  for _, sz in ipairs(sizes or {}) do
    if type(sz) == "table" and sz.slug then by_slug[sz.slug] = sz end
  end
  for _, o in ipairs(offers) do
    local sz = by_slug[o.instance_type]
    if sz then
      o.price = tonumber(sz.price_hourly) or o.price
      o.available = false
      for _, r in ipairs(sz.available and sz.regions or {}) do
        if r == o.region then o.available = true end
      end
      o.source = "live"
    end
  end
  return offers
end

function Provider:offers(spec)
  local offers = hj.catalog_offers("digitalocean", spec, self.regions)
  if self.opts.live == false then return offers end
  local ok, doc = pcall(function()
    return self:_api():call("GET", "/v2/sizes?per_page=200", nil, { retries = 1, timeout = 10 })
  end)
  if not ok or type(doc) ~= "table" or type(doc.sizes) ~= "table" then return offers end
  return M.merge_live(offers, doc.sizes)
end

local function _tag(cluster) return "skyhost:" .. hj.pool(cluster) end

function Provider:prepare(cluster)
  local api = self:_api()
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.digitalocean: the pool has no SSH key") end
  cluster.digitalocean = { known_hosts = os.tmpname(), count = 0 }
  local doc = api:call("POST", "/v2/account/keys", { name = "skyhost-" .. hj.pool(cluster), public_key = cluster.ssh_public_key })
  cluster.digitalocean.key_id = doc.ssh_key.id
end

--- The user data of the pool's droplets: the key for root (as the account key is), the pool.
function M.user_data(cluster)
  return ("#!/bin/sh\n# skyhost pool %s\nmkdir -p /root/.ssh && chmod 700 /root/.ssh\n"
    .. "grep -qF '%s' /root/.ssh/authorized_keys 2>/dev/null || echo '%s' >> /root/.ssh/authorized_keys\n")
    :format(hj.pool(cluster), cluster.ssh_public_key, cluster.ssh_public_key)
end

--- The POST /v2/droplets body for `n` droplets of `offer` (tests check it against the spec).
function Provider:create_body(cluster, n, offer)
  if not offer.region then _bad("offer %s has no region", tostring(offer.instance_type)) end
  local names = {}
  for i = 1, n do
    cluster.digitalocean.count = cluster.digitalocean.count + 1
    names[i] = ("skyhost-%s-%d"):format(hj.pool(cluster), cluster.digitalocean.count)
  end
  return { names = names, region = offer.region, size = offer.instance_type, image = self.opts.image or M.IMAGE,
    ssh_keys = { cluster.digitalocean.key_id }, tags = { _tag(cluster) }, user_data = M.user_data(cluster) }
end

function Provider:provision(cluster, n, offer)
  local doc = self:_api():call("POST", "/v2/droplets", self:create_body(cluster, n, offer))
  local ids = {}
  for i, d in ipairs(doc.droplets or { doc.droplet }) do ids[i] = tostring(math.tointeger(d.id) or d.id) end
  return ids
end

local STATES = { new = "pending", active = "running", off = "terminated", archive = "terminated" }

function Provider:get_instance(cluster, id)
  local api = self:_api()
  local ok, doc = pcall(api.call, api, "GET", "/v2/droplets/" .. id)
  if not ok then
    if type(doc) == "table" and doc.status == 404 then return { id = id, state = "terminated" } end
    error(doc, 0)
  end
  local d = doc.droplet
  local state, ip = STATES[d.status] or "pending", nil
  for _, net in ipairs(d.networks and d.networks.v4 or {}) do
    if net.type == "public" then ip = net.ip_address end
  end
  if state == "running" and not ip then state = "pending" end
  return { id = id, state = state, ip = ip, port = 22, user = self.user,
    ssh = { host_keys = "accept-new", known_hosts = cluster.digitalocean.known_hosts } }
end

function Provider:terminate(_, ids)
  local api = self:_api()
  for _, id in ipairs(ids) do
    local ok, err = pcall(api.call, api, "DELETE", "/v2/droplets/" .. id)
    if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
  end
end

function Provider:teardown(cluster)
  if not cluster.digitalocean then return end
  local api, tag = self:_api(), _tag(cluster)
  local query = "/v2/droplets?tag_name=" .. tag:gsub(":", "%%3A")
  hj.wait_gone("digitalocean", cluster, function()
    local left = {}
    for _, d in ipairs(api:call("GET", query).droplets or {}) do left[#left + 1] = tostring(math.tointeger(d.id) or d.id) end
    if #left > 0 then api:call("DELETE", query) end
    return left
  end, 600, self.opts.poll_interval)
  if cluster.digitalocean.key_id then api:call("DELETE", "/v2/account/keys/" .. math.tointeger(cluster.digitalocean.key_id)) end
  os.remove(cluster.digitalocean.known_hosts)
  cluster.digitalocean = nil
end

--- `skyhost down --sweep digitalocean` (providers/rest_sweep.lua): droplets tagged
--- skyhost:<pool> (or named skyhost-<pool>-<i>) and SSH keys skyhost-<pool> of pools not live
--- in the journal.
function M.sweep(opts)
  local p = M.new { api = require("providers.rest_sweep").api("digitalocean") }
  local api = p:_api()
  -- Every page of a list (200 a page, the API's most).
  local function all(path, field)
    local out, page = {}, 1
    while true do
      local doc = api:call("GET", ("%s?per_page=200&page=%d"):format(path, page))
      for _, x in ipairs(doc[field] or {}) do out[#out + 1] = x end
      local total = type(doc.meta) == "table" and tonumber(doc.meta.total) or #out
      if #(doc[field] or {}) == 0 or #out >= total then return out end
      page = page + 1
    end
  end
  return require("providers.rest_sweep").sweep({ name = "digitalocean",
    list = function()
      local out = {}
      for _, d in ipairs(all("/v2/droplets", "droplets")) do
        local pool
        for _, t in ipairs(d.tags or {}) do pool = pool or (type(t) == "string" and t:match("^skyhost:(.+)$")) end
        out[#out + 1] = { id = tostring(math.tointeger(d.id) or d.id), name = d.name, pool = pool }
      end
      return out
    end,
    terminate = function(ids) p:terminate(nil, ids) end,
    keys = function()
      local out = {}
      for _, k in ipairs(all("/v2/account/keys", "ssh_keys")) do
        out[#out + 1] = { id = tostring(math.tointeger(k.id) or k.id), name = k.name }
      end
      return out
    end,
    delete_key = function(id) api:call("DELETE", "/v2/account/keys/" .. id) end,
  }, opts)
end

return M
