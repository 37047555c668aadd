-- sky.runpod{...}: RunPod GPU pods through the REST API v1 (rest.runpod.io/v1, bearer API key).
-- A pod is a container: its SSH server takes the public key from the PUBLIC_KEY environment
-- variable (RunPod's images do this at start), and port 22 is published as "22/tcp", reached at
-- the pod's public address and the port RunPod maps it to (portMappings["22"]). Every pod is named
-- skyhost-<pool>-<i> and carries SKYHOST_POOL=<pool> in its environment; teardown deletes them
-- and waits until the API lists none. Offers are the shipped catalog's (RunPod's regions are
-- country codes), repriced from API v2's GPU price list (api.runpod.io, GET /v2/catalog/gpus;
-- M.merge_live). See docs/clouds.md.
local errors = require "sky.errors"
local hj = require "providers.http_json"
local options = require "sky.options"

local M = {}

M.API = "https://rest.runpod.io/v1"
M.CATALOG_API = "https://api.runpod.io"
M.IMAGE = "runpod/pytorch:2.1.0-py3.10-cuda11.8.0-devel-ubuntu22.04"
M.CREDENTIALS = { env = { "RUNPOD_API_KEY" }, files = { { path = "~/.runpod/config.toml", keys = { "apikey", "api_key" } } } }
M.HOW = "set RUNPOD_API_KEY or run `runpodctl config --apiKey KEY` (~/.runpod/config.toml); `skyhost check` shows what is found"

-- The catalog's accelerator names → RunPod's GPU type ids (the spec's enum); SXM variants by
-- instance type.
M.GPU_TYPES = {
  ["A100-80GB"] = "NVIDIA A100 80GB PCIe", ["A100-80GB-SXM"] = "NVIDIA A100-SXM4-80GB", A40 = "NVIDIA A40",
  A4000 = "NVIDIA RTX A4000", A4500 = "NVIDIA RTX A4500", A5000 = "NVIDIA RTX A5000", A6000 = "NVIDIA RTX A6000",
  H100 = "NVIDIA H100 PCIe", ["H100-SXM"] = "NVIDIA H100 80GB HBM3", L4 = "NVIDIA L4", L40 = "NVIDIA L40",
  RTX3090 = "NVIDIA GeForce RTX 3090", ["RTX4000-Ada"] = "NVIDIA RTX 4000 Ada Generation",
  RTX4090 = "NVIDIA GeForce RTX 4090", ["RTX6000-Ada"] = "NVIDIA RTX 6000 Ada Generation",
}

local SCHEMA = { region = "string|table", api = "string", image = "string", user = "string", disk_gb = "integer",
  retries = "integer", poll_interval = "number", live = "boolean", catalog_api = "string" }

--- Seconds the broker keeps live offers (sky.state's cache) before asking again.
M.OFFERS_TTL = 300

local function _bad(fmt, ...) errors.raise("BadOption", "sky.runpod: " .. fmt:format(...)) end

--- RunPod's error body ({error = "..."} or a plain text) → skyhost code, message.
function M.classify(status, doc, text)
  local msg = doc and (type(doc.error) == "string" and doc.error or doc.message) or text
  msg = type(msg) == "string" and msg or text
  local low = msg:lower()
  if low:find("no longer any instances available") or low:find("not enough") or low:find("no available")
    or low:find("out of stock") then
    return "NoCapacity", msg
  end
  if low:find("quota") or low:find("spend limit") or low:find("insufficient balance") or low:find("max pods") then
    return "QuotaExceeded", msg
  end
  if status == 401 or status == 403 then return "AuthFailed", msg end
  return nil, msg
end

local Provider = {}

function M.new(opts)
  opts = options.check("sky.runpod", opts, SCHEMA)
  for _, k in ipairs { "api", "catalog_api" } do
    if opts[k] and not opts[k]:find("^https?://[^/]") then _bad("%s must be an http:// or https:// URL, got '%s'", k, opts[k]) end
  end
  if opts.disk_gb and (opts.disk_gb < 1 or opts.disk_gb > 10000) then _bad("disk_gb must be 1..10000 GiB") end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  local self = { name = "runpod", opts = opts, regions = type(opts.region) == "string" and { opts.region } or opts.region,
    user = opts.user or "root", offers_ttl = opts.live ~= false and M.OFFERS_TTL or nil,
    offers_origin = opts.catalog_api or M.CATALOG_API }
  return hj.install(self, Provider)
end

function Provider:_api()
  if not self._client then
    self._client = hj.client { cloud = "RunPod", base = (self.opts.api or M.API):gsub("/$", ""),
      key = (hj.credentials("runpod", M.CREDENTIALS, M.HOW)), classify = M.classify, how = M.HOW,
      retries = self.opts.retries }
  end
  return self._client
end

--- The RunPod GPU type id of a catalog offer: by its instance type <n>x_<GPU>_<CLOUD> first (the
--- SXM variants), else by its accelerator; nil when RunPod has none known.
function M.gpu_type(offer)
  local gpu = offer.instance_type and offer.instance_type:match("^%d+x_(.-)_") or offer.accelerator
  return M.GPU_TYPES[gpu] or M.GPU_TYPES[offer.accelerator]
end

local function _cloud(offer) return (offer.instance_type or ""):find("COMMUNITY") and "community" or "secure" end

--- The catalog's offers with API v2's price list (`gpus` of GET /v2/catalog/gpus): the on-demand
--- price of the offer's cloud (per GPU, times its count), and `available = false` where the type
--- is not sold in that cloud, not with that many GPUs (maxCount), or no longer listed at all. The
--- list has no interruptible price, so the catalog's spot_price stays as it is.
function M.merge_live(offers, gpus)
  local by_id = {}
  for _, g in ipairs(gpus) do
    if type(g) == "table" and type(g.id) == "string" then by_id[g.id] = g end
  end
  for _, o in ipairs(offers) do
    local id = M.gpu_type(o)
    if id then
      local g, cloud = by_id[id], _cloud(o)
      local price = g and type(g.price) == "table" and tonumber(g.price[cloud])
      local max = g and type(g.maxCount) == "table" and tonumber(g.maxCount[cloud])
      if not g or g[cloud] == false or (max and (o.count or 1) > max) then
        o.available, o.source = false, "live"
      elseif price and price > 0 then
        o.price, o.available, o.source = price * (o.count or 1), true, "live"
      end
    end
  end
  return offers
end

function Provider:_catalog()
  if not self._catalog_client then
    self._catalog_client = hj.client { cloud = "RunPod", base = (self.opts.catalog_api or M.CATALOG_API):gsub("/$", ""),
      key = (hj.credentials("runpod", M.CREDENTIALS, M.HOW)), classify = M.classify, how = M.HOW,
      retries = self.opts.retries }
  end
  return self._catalog_client
end

function Provider:offers(spec)
  local offers = hj.catalog_offers("runpod", spec, self.regions)
  if self.opts.live == false or #offers == 0 then return offers end
  local ok, doc = pcall(function() return self:_catalog():call("GET", "/v2/catalog/gpus", nil, { retries = 1, timeout = 10 }) end)
  if not ok or type(doc) ~= "table" or type(doc.gpus) ~= "table" then return offers end
  return M.merge_live(offers, doc.gpus)
end

function Provider:prepare(cluster)
  self:_api() -- no key: the provider is blocked, with where to put one
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.runpod: the pool has no SSH key") end
  cluster.runpod = { pods = {}, known_hosts = os.tmpname() }
end

--- The POST /pods body of pod `i` of `offer` (tests check it against the spec).
function Provider:pod_body(cluster, i, offer)
  local gpu_type = M.gpu_type(offer)
  if not gpu_type then _bad("no RunPod GPU type for accelerator '%s'", tostring(offer.accelerator)) end
  local pool = hj.pool(cluster)
  return {
    name = ("skyhost-%s-%d"):format(pool, i), imageName = self.opts.image or M.IMAGE, gpuTypeIds = { gpu_type },
    gpuCount = offer.count or 1, cloudType = (offer.instance_type or ""):find("COMMUNITY") and "COMMUNITY" or "SECURE",
    countryCodes = offer.region and { offer.region } or nil, ports = { "22/tcp" }, supportPublicIp = true,
    interruptible = offer.spot and true or false, containerDiskInGb = self.opts.disk_gb or 50,
    env = { PUBLIC_KEY = cluster.ssh_public_key, SKYHOST_POOL = pool },
  }
end

function Provider:provision(cluster, n, offer)
  local ids = {}
  for i = 1, n do
    local ok, pod = pcall(self:_api().call, self:_api(), "POST", "/pods", self:pod_body(cluster, #cluster.runpod.pods + 1, offer))
    if not ok then
      if type(pod) == "table" then pod.ids = ids end
      error(pod, 0)
    end
    ids[i] = pod.id
    table.insert(cluster.runpod.pods, pod.id)
  end
  return ids
end

function Provider:get_instance(cluster, id)
  local ok, pod = pcall(self:_api().call, self:_api(), "GET", "/pods/" .. id)
  if not ok then
    if type(pod) == "table" and pod.status == 404 then return { id = id, state = "terminated" } end
    error(pod, 0)
  end
  local st = pod.desiredStatus
  if st == "EXITED" or st == "TERMINATED" then return { id = id, state = "terminated" } end
  local port = type(pod.portMappings) == "table" and tonumber(pod.portMappings["22"])
  local ip = type(pod.publicIp) == "string" and pod.publicIp ~= "" and pod.publicIp or nil
  if st ~= "RUNNING" or not ip or not port then return { id = id, state = "pending" } end
  return { id = id, state = "running", ip = ip, port = port, user = self.user,
    ssh = { host_keys = "accept-new", known_hosts = cluster.runpod.known_hosts } }
end

function Provider:terminate(_, ids)
  for _, id in ipairs(ids) do
    local ok, err = pcall(self:_api().call, self:_api(), "DELETE", "/pods/" .. id)
    if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
  end
end

-- The pool's pods the API still lists (by name).
function Provider:_alive(cluster)
  local prefix = "skyhost-" .. hj.pool(cluster) .. "-"
  local left = {}
  for _, pod in ipairs(self:_api():call("GET", "/pods") or {}) do
    if type(pod.name) == "string" and pod.name:sub(1, #prefix) == prefix and pod.desiredStatus ~= "TERMINATED" then
      left[#left + 1] = pod.id
    end
  end
  return left
end

function Provider:teardown(cluster)
  if not cluster.runpod then return end
  hj.wait_gone("runpod", cluster, function()
    local left = self:_alive(cluster)
    if #left > 0 then self:terminate(cluster, left) end
    return left
  end, 600, self.opts.poll_interval)
  os.remove(cluster.runpod.known_hosts)
  cluster.runpod = nil
end

--- `skyhost down --sweep runpod` (providers/rest_sweep.lua): pods named skyhost-<pool>-<i> of
--- pools not live in the journal.
function M.sweep(opts)
  local p = M.new { api = require("providers.rest_sweep").api("runpod") }
  local api = p:_api()
  return require("providers.rest_sweep").sweep({ name = "runpod",
    list = function()
      local out = {}
      for _, pod in ipairs(api:call("GET", "/pods") or {}) do
        if pod.desiredStatus ~= "TERMINATED" then out[#out + 1] = { id = pod.id, name = pod.name } end
      end
      return out
    end,
    terminate = function(ids) p:terminate(nil, ids) end,
  }, opts)
end

return M
