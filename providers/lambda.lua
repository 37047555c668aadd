-- sky.lambda{...}: Lambda Cloud instances through its API v1 (cloud.lambdalabs.com/api/v1,
-- bearer API key). The pool's ephemeral public key is registered as the SSH key
-- skyhost-<pool> and named at launch; instances are launched one per request (the API launches
-- at most one at a time) and named skyhost-<pool>-<i>. Teardown terminates them, waits until
-- the API lists none of the pool's, then deletes the key. Offers come from the shipped catalog.
-- See docs/clouds.md.
local errors = require "sky.errors"
local hj = require "providers.http_json"
local options = require "sky.options"

local M = {}

M.API = "https://cloud.lambdalabs.com/api/v1"
M.CREDENTIALS = { env = { "LAMBDA_API_KEY" }, files = { { path = "~/.lambda_cloud/lambda_keys", keys = { "api_key" } } } }
M.HOW = "set LAMBDA_API_KEY or write `api_key = KEY` in ~/.lambda_cloud/lambda_keys; `skyhost check` shows what is found"

-- Lambda's error codes (the spec's errorCode enum) → skyhost codes.
M.ERROR_CODES = {
  ["instance-operations/launch/insufficient-capacity"] = "NoCapacity",
  ["global/quota-exceeded"] = "QuotaExceeded",
  ["global/invalid-api-key"] = "AuthFailed",
  ["global/account-inactive"] = "AuthFailed",
}

local SCHEMA = { region = "string|table", api = "string", user = "string", retries = "integer", poll_interval = "number",
  live = "boolean" }

--- Seconds the broker keeps live offers (sky.state's cache) before asking again.
M.OFFERS_TTL = 300

local function _bad(fmt, ...) errors.raise("BadOption", "sky.lambda: " .. fmt:format(...)) end

--- Lambda's error body {error = {code, message, suggestion}} → skyhost code, message.
function M.classify(status, doc, text)
  local e = doc and type(doc.error) == "table" and doc.error
  if not e then return (status == 401 or status == 403) and "AuthFailed" or nil, text end
  local msg = ("%s: %s"):format(tostring(e.code), tostring(e.message))
  if type(e.suggestion) == "string" then msg = msg .. " (" .. e.suggestion .. ")" end
  return M.ERROR_CODES[e.code], msg
end

local Provider = {}

function M.new(opts)
  opts = options.check("sky.lambda", opts, SCHEMA)
  if opts.api and not opts.api:find("^https?://[^/]") then _bad("api must be an http:// or https:// URL, got '%s'", opts.api) end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  local self = { name = "lambda", opts = opts, regions = type(opts.region) == "string" and { opts.region } or opts.region,
    user = opts.user or "ubuntu", offers_ttl = opts.live ~= false and M.OFFERS_TTL or nil,
    offers_origin = opts.api or M.API }
  return hj.install(self, Provider)
end

function Provider:_api()
  if not self._client then
    self._client = hj.client { cloud = "Lambda", base = (self.opts.api or M.API):gsub("/$", ""),
      key = (hj.credentials("lambda", M.CREDENTIALS, M.HOW)), classify = M.classify, how = M.HOW,
      retries = self.opts.retries }
  end
  return self._client
end

--- The catalog's offers with what GET /instance-types says now: the price, and `available`
--- (the region is among the type's regions_with_capacity_available). Types the catalog does not
--- know are left out (their accelerator is not known); offers of a type the API no longer lists
--- are kept as they are. No key or no answer (one retry, 10 s each): the catalog alone.
function M.merge_live(offers, types)
  for _, o in ipairs(offers) do
    local live = types[o.instance_type]
    if type(live) == "table" and type(live.instance_type) == "table" then
      local cents = tonumber(live.instance_type.price_cents_per_hour)
      if cents then o.price = cents / 100 end
      o.available = false
      for _, r in ipairs(live.regions_with_capacity_available or {}) do
        if r.name == o.region then o.available = true end
      end
      o.source = "live"
    end
  end
  return offers
end

function Provider:offers(spec)
  local offers = hj.catalog_offers("lambda", spec, self.regions)
  if self.opts.live == false then return offers end
  local ok, doc = pcall(function() return self:_api():call("GET", "/instance-types", nil, { retries = 1, timeout = 10 }) end)
  if not ok or type(doc) ~= "table" or type(doc.data) ~= "table" then return offers end
  return M.merge_live(offers, doc.data)
end

function Provider:prepare(cluster)
  local api = self:_api()
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.lambda: the pool has no SSH key") end
  cluster.lambda = { known_hosts = os.tmpname(), count = 0, key_name = "skyhost-" .. hj.pool(cluster) }
  local doc = api:call("POST", "/ssh-keys", { name = cluster.lambda.key_name, public_key = cluster.ssh_public_key })
  cluster.lambda.key_id = doc.data.id
end

--- The launch body of instance `i` of `offer` (tests check it against the spec).
function Provider:launch_body(cluster, i, offer)
  if not offer.region then _bad("offer %s has no region", tostring(offer.instance_type)) end
  return { region_name = offer.region, instance_type_name = offer.instance_type, ssh_key_names = { cluster.lambda.key_name },
    quantity = 1, name = ("skyhost-%s-%d"):format(hj.pool(cluster), i) }
end

function Provider:provision(cluster, n, offer)
  local api, ids = self:_api(), {}
  for _ = 1, n do
    cluster.lambda.count = cluster.lambda.count + 1
    local ok, doc = pcall(api.call, api, "POST", "/instance-operations/launch", self:launch_body(cluster, cluster.lambda.count, offer))
    if not ok then
      if type(doc) == "table" then doc.ids = ids end
      error(doc, 0)
    end
    for _, id in ipairs(doc.data.instance_ids) do ids[#ids + 1] = id end
  end
  return ids
end

local STATES = { active = "running", booting = "pending", unhealthy = "pending", terminating = "terminated",
  terminated = "terminated" }

function Provider:get_instance(cluster, id)
  local api = self:_api()
  local ok, doc = pcall(api.call, api, "GET", "/instances/" .. id)
  if not ok then
    if type(doc) == "table" and doc.status == 404 then return { id = id, state = "terminated" } end
    error(doc, 0)
  end
  local inst = doc.data
  local state = STATES[inst.status] or "pending"
  local ip = type(inst.ip) == "string" and inst.ip or nil
  if state == "running" and not ip then state = "pending" end
  return { id = id, state = state, ip = ip, port = 22, user = self.user,
    ssh = { host_keys = "accept-new", known_hosts = cluster.lambda.known_hosts } }
end

function Provider:terminate(_, ids)
  if #ids == 0 then return end
  self:_api():call("POST", "/instance-operations/terminate", { instance_ids = ids })
end

-- The pool's instances the API still lists (by name), not yet terminated.
function Provider:_alive(cluster)
  local prefix = "skyhost-" .. hj.pool(cluster) .. "-"
  local left = {}
  for _, inst in ipairs(self:_api():call("GET", "/instances").data or {}) do
    if type(inst.name) == "string" and inst.name:sub(1, #prefix) == prefix and inst.status ~= "terminated" then
      left[#left + 1] = inst.id
    end
  end
  return left
end

function Provider:teardown(cluster)
  if not cluster.lambda then return end
  hj.wait_gone("lambda", cluster, function()
    local left = self:_alive(cluster)
    if #left > 0 then self:terminate(cluster, left) end
    return left
  end, 600, self.opts.poll_interval)
  if cluster.lambda.key_id then self:_api():call("DELETE", "/ssh-keys/" .. cluster.lambda.key_id) end
  os.remove(cluster.lambda.known_hosts)
  cluster.lambda = nil
end

--- `skyhost down --sweep lambda` (providers/rest_sweep.lua): instances named skyhost-<pool>-<i>
--- and SSH keys skyhost-<pool> of pools not live in the journal.
function M.sweep(opts)
  local p = M.new { api = require("providers.rest_sweep").api("lambda") }
  local api = p:_api()
  return require("providers.rest_sweep").sweep({ name = "lambda",
    list = function()
      local out = {}
      for _, i in ipairs(api:call("GET", "/instances").data or {}) do
        if i.status ~= "terminated" then out[#out + 1] = { id = i.id, name = i.name } end
      end
      return out
    end,
    terminate = function(ids) p:terminate(nil, ids) end,
    keys = function() return api:call("GET", "/ssh-keys").data or {} end,
    delete_key = function(id) api:call("DELETE", "/ssh-keys/" .. id) end,
  }, opts)
end

return M
