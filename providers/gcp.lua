-- sky.gcp{project = ..., zone = ...}: Compute Engine instances through the Compute API v1
-- (providers/gcp/compute.lua), authenticated with a service-account key or the user's
-- application-default credentials (providers/gcp/auth.lua). Offers come from the shipped
-- catalog. Each instance gets the pool's ephemeral public key in its `ssh-keys` metadata and the
-- label skyhost-pool=<pool>; spot instances delete themselves when preempted or stopped; at
-- teardown the pool's instances are deleted, the operations waited and the absence confirmed by
-- listing the label. See docs/gcp.md.
local auth = require "providers.gcp.auth"
local catalog = require "providers.catalog"
local compute = require "providers.gcp.compute"
local errors = require "sky.errors"
local options = require "sky.options"

local M = {}

local SCHEMA = {
  project = "string", zone = "string|table", region = "string|table", credentials = "string",
  image = "string", disk_gb = "integer", network = "string", subnetwork = "string", public_ip = "boolean",
  endpoint = "string", user = "string", retries = "integer", poll_interval = "number",
  service_account = "string", on_expiry = "string",
}

--- What a node runs when its lease expires or its host is gone: powered off, a VM stops billing
--- (it is TERMINATED; its disk bills until the host's teardown or `skyhost down` deletes it).
M.DEFAULT_ON_EXPIRY = "sudo -n /sbin/poweroff || /sbin/poweroff"

M.DEFAULT_IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"

local function _bad(fmt, ...) errors.raise("BadOption", "sky.gcp: " .. fmt:format(...)) end

local function _list(v, what)
  if v == nil then return nil end
  if type(v) == "string" then v = { v } end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then _bad("%s lists hold names; item %d is a %s", what, i, type(x)) end
  end
  return v
end

local Provider = {}
Provider.__index = Provider

--- A label value or name part from the pool's uid: lowercase letters, digits and dashes.
function M.slug(s)
  return (s:lower():gsub("[^a-z0-9%-]", "-"))
end

--- A random UUID (version 4), as Compute Engine wants a requestId.
function M.uuid()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local h = ("%02x"):rep(16):format(table.unpack(b))
  return ("%s-%s-%s-%s-%s"):format(h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
end

-- The pool's label value (at most 63 characters, as labels allow).
local function _pool(cluster) return M.slug(cluster.uid or cluster.id):sub(1, 63) end

--- Name of the pool's `seq`th instance: skyhost-<pool>-<seq>, at most 63 characters (the pool
--- part shortened, never the number, so names stay unique within the pool).
function M.instance_name(cluster, seq)
  local tail = "-" .. seq
  local pool = _pool(cluster):sub(1, 63 - #"skyhost-" - #tail):gsub("%-+$", "")
  return "skyhost-" .. pool .. tail
end

function M.new(opts)
  opts = options.check("sky.gcp", opts, SCHEMA)
  local self = setmetatable({ name = "gcp", opts = opts, zones = _list(opts.zone, "zone"),
    regions = _list(opts.region, "region"), user = opts.user or "skyhost", public_ip = opts.public_ip ~= false }, Provider)
  if opts.project and not opts.project:find("^[a-z][a-z0-9%-]*[a-z0-9]$") then
    _bad("project must be a project id such as 'my-project-123', got '%s'", opts.project)
  end
  if opts.endpoint and not opts.endpoint:find("^https?://[^/]") then
    _bad("endpoint must be an http:// or https:// URL, got '%s'", opts.endpoint)
  end
  if opts.disk_gb and (opts.disk_gb < 10 or opts.disk_gb > 65536) then
    _bad("disk_gb must be between 10 and 65536 GB, got %d", opts.disk_gb)
  end
  if not self.user:find("^[a-z_][a-z0-9_%-]*$") then _bad("user must be a Linux user name, got '%s'", self.user) end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  for k, v in pairs(Provider) do
    if type(v) == "function" then self[k] = v end
  end
  return self
end

-- The API client, with credentials resolved once (project from the key file when not given).
function Provider:_client()
  if self._client_ then return self._client_ end
  local creds = auth.resolve(self.opts.credentials)
  local project = self.opts.project or creds.project_id or os.getenv("CLOUDSDK_CORE_PROJECT")
    or os.getenv("GOOGLE_CLOUD_PROJECT")
  if not project then
    _bad("no project: set sky.gcp{project = 'my-project'} (or GOOGLE_CLOUD_PROJECT); %s names none", creds.source)
  end
  self._client_ = compute.client { endpoint = self.opts.endpoint, project = project, retries = self.opts.retries,
    tokens = auth.source(creds) }
  return self._client_
end

function Provider:offers(spec)
  local q = {}
  for k, v in pairs(spec or {}) do q[k] = v end
  q.provider = "gcp"
  q.region = q.region or self.regions
  q.zone = q.zone or self.zones
  local out = {}
  for _, o in ipairs(catalog.query(catalog.snapshot(), q)) do
    local c = {}
    for k, v in pairs(o) do c[k] = v end
    out[#out + 1] = c
  end
  return out
end

function Provider:prepare(cluster)
  self:_client()  -- no credentials: the provider is blocked, with the reason
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.gcp: the pool has no SSH key") end
  cluster.gcp = { instances = {}, deleting = {}, zones = {}, known_hosts = os.tmpname(), seq = 0 }
end

--- The instances.insert body for instance `name` of `offer` (tests check it against the
--- discovery document's Instance schema).
function Provider:insert_body(cluster, name, offer)
  local key = cluster.ssh_public_key:gsub("%s+$", "")
  local nic = { network = self.opts.network or "global/networks/default", subnetwork = self.opts.subnetwork }
  if self.public_ip then nic.accessConfigs = { { type = "ONE_TO_ONE_NAT", name = "External NAT" } } end
  local scheduling = { onHostMaintenance = "TERMINATE", automaticRestart = false }
  if offer.spot then
    scheduling.provisioningModel = "SPOT"
    scheduling.instanceTerminationAction = "DELETE"
  end
  local body = {
    name = name,
    machineType = ("zones/%s/machineTypes/%s"):format(offer.zone, offer.instance_type),
    labels = { ["skyhost-pool"] = _pool(cluster) },
    metadata = { items = { { key = "ssh-keys", value = ("%s:%s %s"):format(self.user, key, self.user) } } },
    disks = { { boot = true, autoDelete = true, initializeParams = { sourceImage = self.opts.image or M.DEFAULT_IMAGE,
      diskSizeGb = tostring(self.opts.disk_gb or 100) } } },
    networkInterfaces = { nic },
    scheduling = scheduling,
  }
  if self.opts.service_account then
    body.serviceAccounts = { { email = self.opts.service_account, scopes = { "https://www.googleapis.com/auth/cloud-platform" } } }
  end
  return body
end

function Provider:provision(cluster, n, offer)
  if not offer.zone then _bad("offer %s has no zone", offer.instance_type) end
  local c = self:_client()
  local g = cluster.gcp
  local ops, ids = {}, {}
  for i = 1, n do
    g.seq = g.seq + 1
    local name = M.instance_name(cluster, g.seq)
    -- requestId: an insert retried after a lost answer does not create a second instance.
    local url = c:url("zones/%s/instances", offer.zone) .. "?requestId=" .. M.uuid()
    local op = c:call("POST", url, self:insert_body(cluster, name, offer),
      "instances.insert " .. offer.instance_type, offer.zone)
    g.instances[name] = offer.zone
    g.zones[offer.zone] = true
    ops[i], ids[i] = op, name
  end
  -- A failed insert (capacity, quota) surfaces from its operation; the others are cleaned up by
  -- the caller's terminate.
  for _, op in ipairs(ops) do c:wait_operation(op, offer.zone, "instances.insert " .. offer.instance_type) end
  return ids
end

local STATES = { PROVISIONING = "pending", STAGING = "pending", RUNNING = "running", REPAIRING = "pending",
  STOPPING = "terminated", STOPPED = "terminated", SUSPENDING = "terminated", SUSPENDED = "terminated",
  TERMINATED = "terminated" }

function Provider:get_instance(cluster, id)
  local c = self:_client()
  local zone = cluster.gcp.instances[id]
  local inst = c:call("GET", c:url("zones/%s/instances/%s", zone, id), nil, "instances.get", zone)
  if not inst then return { id = id, state = "terminated" } end
  local state = STATES[inst.status] or "pending"
  local nic = inst.networkInterfaces and inst.networkInterfaces[1] or {}
  local ac = nic.accessConfigs and nic.accessConfigs[1]
  local ip = self.public_ip and ac and ac.natIP or (not self.public_ip and nic.networkIP) or nil
  if state == "running" and not ip then state = "pending" end
  return { id = id, state = state, ip = ip, port = 22, user = self.user,
    on_expiry = self.opts.on_expiry ~= "" and (self.opts.on_expiry or M.DEFAULT_ON_EXPIRY) or nil,
    ssh = { host_keys = "accept-new", known_hosts = cluster.gcp.known_hosts } }
end

function Provider:terminate(cluster, ids)
  local c = self:_client()
  for _, id in ipairs(ids) do
    local zone = cluster.gcp.instances[id]
    cluster.gcp.deleting[id] = true
    local ok, err = pcall(c.call, c, "DELETE", c:url("zones/%s/instances/%s", zone, id), nil, "instances.delete", zone)
    if not ok and not (type(err) == "table" and err.status == 404) then error(err, 0) end
  end
end

--- The pool's instances still listed in `zone` (label filter), as {name = status}.
function Provider:listed(cluster, zone)
  local c = self:_client()
  local url = c:url("zones/%s/instances", zone) .. "?filter=" .. ("labels.skyhost-pool%3D" .. _pool(cluster))
  local doc = c:call("GET", url, nil, "instances.list", zone) or {}
  local out = {}
  for _, inst in ipairs(doc.items or {}) do out[inst.name] = inst.status end
  return out
end

function Provider:teardown(cluster)
  if not cluster.gcp then return end
  local deadline = os.time() + 600
  for zone in pairs(cluster.gcp.zones) do
    while true do
      local left = {}
      local listed = self:listed(cluster, zone)
      for name in pairs(listed) do left[#left + 1] = name end
      if #left == 0 then break end
      if os.time() > deadline then
        errors.raise("CleanupFailed", ("sky.gcp: instances %s of pool %s in %s are not deleted after 600 s")
          :format(table.concat(left, ", "), _pool(cluster), zone))
      end
      local by = {}
      for _, name in ipairs(left) do
        cluster.gcp.instances[name] = zone
        -- Deleting already (STOPPING): asking again is refused as resourceNotReady.
        if not cluster.gcp.deleting[name] or listed[name] == "RUNNING" then by[#by + 1] = name end
      end
      if #by > 0 then self:terminate(cluster, by) end
      require("sky").sleep(self.opts.poll_interval or 2)
    end
  end
  if cluster.gcp.known_hosts then os.remove(cluster.gcp.known_hosts) end
end

--- `skyhost down --sweep gcp`: providers/gcp/sweep.lua.
function M.sweep(opts) return require("providers.gcp.sweep").sweep(opts) end

return M
