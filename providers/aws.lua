-- sky.aws{...}: EC2 instances, through the EC2 Query API (providers/aws/ec2.lua), SigV4-signed
-- by libcurl. Offers come from the shipped catalog (zone ids such as use1-az6, mapped to the
-- account's zone names with DescribeAvailabilityZones). Per pool: a key pair (the pool's
-- ephemeral public key), a security group that opens SSH to `ssh_cidr` only, instances tagged
-- skyhost-pool=<pool> that terminate themselves when they power off (the dead-man lease); at
-- teardown the instances are terminated, waited for, and the group and key pair deleted.
-- See docs/aws.md.
local catalog = require "providers.catalog"
local credentials = require "providers.aws.credentials"
local ec2 = require "providers.aws.ec2"
local errors = require "sky.errors"
local hostkeys = require "providers.aws.hostkeys"
local options = require "sky.options"
local prices = require "providers.aws.prices"
local orphans = require "providers.aws.orphans"

local M = {}

local SCHEMA = {
  region = "string|table", zone = "string|table", profile = "string", image = "string",
  subnet = "string|table", security_group = "string", disk_gb = "integer", instance_profile = "string",
  endpoint = "string", public_ip = "boolean", ssh_cidr = "string", user = "string",
  retries = "integer", poll_interval = "number", live_prices = "boolean",
  host_keys = "string", on_expiry = "string", spot_notice = "boolean",
}

-- Where a spot node's worker reads its interruption notice (IMDSv2; docs/aws.md).
M.METADATA_ADDRESS = "169.254.169.254"


-- What a node runs when its lease expires or its skyhost is gone: it powers off, and
-- InstanceInitiatedShutdownBehavior=terminate ends the instance (docs/aws.md).
M.DEFAULT_ON_EXPIRY = "sudo -n /sbin/poweroff || /sbin/poweroff"

-- Canonical's owner id and the name pattern of its Ubuntu server AMIs (the newest is used).
M.DEFAULT_IMAGE_OWNER = "099720109477"
M.DEFAULT_IMAGE_NAME = "ubuntu/images/hvm-ssd*/ubuntu-*-amd64-server-*"

local function _bad(fmt, ...) errors.raise("BadOption", "sky.aws: " .. fmt:format(...)) end

local function _list(v)
  if v == nil then return nil end
  if type(v) == "string" then return { v } end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then _bad("region and zone lists hold names; item %d is a %s", i, type(x)) end
  end
  return v
end

local Provider = {}
Provider.__index = Provider

-- The pool's name in AWS: unique per run (pool names such as "pool-1" repeat), in every resource
-- name and in the skyhost-pool tag.
local function _pool(cluster) return cluster.uid or cluster.id end

--- sky.aws{...} → a provider for sky.compute{provider = ...}. Credentials are looked up when the
--- pool is prepared, so a script can name sky.aws{} in a provider list on a machine without them.
function M.new(opts)
  opts = options.check("sky.aws", opts, SCHEMA)
  local self = setmetatable({ name = "aws", opts = opts, regions = _list(opts.region), zones = _list(opts.zone),
    user = opts.user or "ubuntu", public_ip = opts.public_ip ~= false }, Provider)
  if opts.endpoint and not opts.endpoint:find("^https?://[^/]") then
    _bad("endpoint must be an http:// or https:// URL, got '%s'", opts.endpoint)
  end
  if opts.disk_gb and (opts.disk_gb < 8 or opts.disk_gb > 65536) then
    _bad("disk_gb must be between 8 and 65536 GiB, got %d", opts.disk_gb)
  end
  if opts.image and not opts.image:find("^ami%-%x+$") then
    _bad("image must be an AMI id such as 'ami-0abcdef1234567890', got '%s'", opts.image)
  end
  if opts.ssh_cidr and not opts.ssh_cidr:find("^%d+%.%d+%.%d+%.%d+/%d+$") then
    _bad("ssh_cidr must be an IPv4 CIDR such as '203.0.113.7/32', got '%s'", opts.ssh_cidr)
  end
  self.subnets = _list(opts.subnet)
  if self.subnets and #self.subnets == 0 then _bad("subnet lists no subnet") end
  if self.subnets and self.regions and #self.regions > 1 then
    _bad("subnets belong to one region: give one region with subnet = ...")
  end
  if opts.public_ip == false and not opts.subnet then
    _bad("public_ip = false needs subnet = 'subnet-...' (a subnet this machine can reach)")
  end
  if opts.retries and opts.retries < 0 then _bad("retries must be >= 0") end
  if opts.host_keys and not hostkeys.MODES[opts.host_keys] then
    _bad("host_keys must be 'console', 'console-or-first-use' or 'first-use', got '%s'", opts.host_keys)
  end
  -- in the journal with each instance: what `skyhost down` needs to reach it without the script
  self.journal_info = { endpoint = opts.endpoint, profile = opts.profile }
  for k, v in pairs(Provider) do
    if type(v) == "function" then self[k] = v end
  end
  return self
end

-- `skyhost down --orphans` and `skyhost down --sweep aws` (providers/aws/orphans.lua).
M.end_orphans = orphans.end_orphans
M.sweep = orphans.sweep

-- The provider's credentials, resolved once, and again (in place: the clients hold the table)
-- when temporary ones are within 5 minutes of expiring, so that a long pool can still tear down.
function Provider:_credentials()
  local c = self._creds
  if not c then
    self._creds = credentials.resolve(self.opts.profile)
  elseif credentials.expiring(c, 300) then
    local new = credentials.resolve(self.opts.profile)
    for k in pairs(c) do c[k] = nil end
    for k, v in pairs(new) do c[k] = v end
  end
  return self._creds
end

-- The EC2 client of `region`.
function Provider:_client(region)
  self:_credentials()
  self._clients = self._clients or {}
  local c = self._clients[region]
  if not c then
    c = ec2.client { endpoint = self.opts.endpoint or ("https://ec2.%s.amazonaws.com/"):format(region),
      region = region, credentials = self._creds, retries = self.opts.retries }
    self._clients[region] = c
  end
  return c
end

-- The subnets' zones: {[zone name or zone id] = subnet id}, asked once. With subnets, the
-- subnet decides the zone of an instance, so offers are those of the subnets' zones.
function Provider:_subnet_zones()
  if self._subnet_by_zone then return self._subnet_by_zone, self._subnet_region end
  local region = self.regions and self.regions[1] or self:_client_region()
  local by_zone = {}
  local doc = self:_client(region):call("DescribeSubnets", { SubnetId = self.subnets })
  for _, sn in ipairs(ec2.items(doc, "subnetSet")) do
    local id = ec2.text(sn, "subnetId")
    for _, k in ipairs({ "availabilityZone", "availabilityZoneId" }) do
      local z = ec2.text(sn, k)
      if z and not by_zone[z] then by_zone[z] = id end
    end
    self._vpc = self._vpc or ec2.text(sn, "vpcId")
  end
  self._subnet_by_zone, self._subnet_region = by_zone, region
  return by_zone, region
end

function Provider:offers(spec)
  local q = {}
  for k, v in pairs(spec or {}) do q[k] = v end
  q.provider = "aws"
  q.region = q.region or self.regions
  q.zone = q.zone or self.zones
  local zones, region
  if self.subnets then zones, region = self:_subnet_zones() end
  local out = {}
  for _, o in ipairs(catalog.query(catalog.snapshot(), q)) do
    if not zones or (o.region == region and (o.zone == nil or zones[o.zone])) then
      local c = {}
      for k, v in pairs(o) do c[k] = v end
      out[#out + 1] = c
    end
  end
  -- Spot offers at the price AWS charges now (cached; the catalog's where it cannot be read).
  if self.opts.live_prices ~= false then
    prices.apply(out, function(r) return self:_client(r) end)
  end
  return out
end

-- Per region: zone id/name → zone name, the image, the key pair and the security group.
function Provider:_region(cluster, region)
  cluster.aws = cluster.aws or { regions = {} }
  local r = cluster.aws.regions[region]
  if r then return r end
  local c = self:_client(region)
  r = { zones = {} }
  for _, z in ipairs(ec2.items(c:call("DescribeAvailabilityZones", {}), "availabilityZoneInfo")) do
    local name = ec2.text(z, "zoneName")
    r.zones[name] = name
    if ec2.text(z, "zoneId") then r.zones[ec2.text(z, "zoneId")] = name end
  end
  cluster.aws.regions[region] = r
  local tags = { { ResourceType = "key-pair", Tag = { { Key = "skyhost-pool", Value = _pool(cluster) } } } }
  r.key_name = "skyhost-" .. _pool(cluster)
  if not cluster.ssh_public_key then errors.raise("BadProvider", "sky.aws: the pool has no SSH key") end
  -- Marked before the call: a call cut short (Ctrl-C) may still have made it; teardown deletes
  -- by name and takes "not found" as done.
  r.made_key = true
  c:call("ImportKeyPair", { KeyName = r.key_name, PublicKeyMaterial = require("skyhost.encoding").base64_encode(cluster.ssh_public_key),
    TagSpecification = tags })
  if self.opts.security_group then
    r.group = self.opts.security_group
  else
    local params = { GroupName = "skyhost-" .. _pool(cluster), GroupDescription = "skyhost pool " .. _pool(cluster) .. ": SSH in",
      TagSpecification = { { ResourceType = "security-group", Tag = { { Key = "skyhost-pool", Value = _pool(cluster) } } } } }
    if self.subnets then
      self:_subnet_zones()
      params.VpcId = self._vpc
    end
    r.group_name = params.GroupName  -- as the key pair: found by name if the answer was lost
    r.group = ec2.text(c:call("CreateSecurityGroup", params), "groupId")
    r.made_group = true
    c:call("AuthorizeSecurityGroupIngress", { GroupId = r.group, IpPermissions = { { IpProtocol = "tcp", FromPort = 22,
      ToPort = 22, IpRanges = { { CidrIp = self:_ssh_cidr() } } } } })
  end
  r.image = self.opts.image or self:_default_image(c)
  return r
end

-- Where SSH may come from: ssh_cidr, else this machine's public address as AWS sees it.
function Provider:_ssh_cidr()
  if self.opts.ssh_cidr then return self.opts.ssh_cidr end
  if self.opts.endpoint then
    _bad("with a custom endpoint, say where SSH comes from: ssh_cidr = 'a.b.c.d/32'")
  end
  local r = require("sky.http").request { url = "https://checkip.amazonaws.com/", timeout = 10 }
  local ip = r.ok and r.body:match("^%s*(%d+%.%d+%.%d+%.%d+)%s*$")
  if not ip then _bad("could not learn this machine's public address; set ssh_cidr = 'a.b.c.d/32'") end
  return ip .. "/32"
end

function Provider:_default_image(c)
  local doc = c:call("DescribeImages", { Owner = { M.DEFAULT_IMAGE_OWNER },
    Filter = { { Name = "name", Value = { M.DEFAULT_IMAGE_NAME } }, { Name = "architecture", Value = { "x86_64" } } } })
  local best, when
  for _, img in ipairs(ec2.items(doc, "imagesSet")) do
    local t = ec2.text(img, "creationDate") or ""
    if not best or t > when then best, when = ec2.text(img, "imageId"), t end
  end
  if not best then
    errors.raise("NoImage", "sky.aws: no Ubuntu image of Canonical found in this region; set image = 'ami-...'")
  end
  return best
end

function Provider:prepare(cluster)
  -- Host keys are trusted on first contact and pinned for the rest of the pool: a file of the
  -- pool's own, so that an address a later pool gets again is not checked against an old key.
  self._creds = self._creds or credentials.resolve(self.opts.profile)  -- none: the provider is blocked
  cluster.aws = { regions = {}, instances = {}, spot = {}, known_hosts = os.tmpname() }
end

--- The RunInstances parameters for `n` instances of `offer` in region state `r` (tests compare
--- their encoding with botocore's).
function Provider:run_params(cluster, n, offer, r)
  local zone = offer.zone and r.zones[offer.zone]
  local params = {
    ImageId = r.image, InstanceType = offer.instance_type, MinCount = n, MaxCount = n, KeyName = r.key_name,
    InstanceInitiatedShutdownBehavior = "terminate",
    TagSpecification = { { ResourceType = "instance", Tag = { { Key = "skyhost-pool", Value = _pool(cluster) },
      { Key = "Name", Value = "skyhost-" .. _pool(cluster) } } } },
  }
  local subnet = self.subnets and ((self._subnet_by_zone or {})[offer.zone] or self.subnets[1])
  -- With a subnet, the subnet places the instance (AWS refuses a Placement that disagrees).
  if zone and not subnet then params.Placement = { AvailabilityZone = zone } end
  if offer.spot then params.InstanceMarketOptions = { MarketType = "spot" } end
  if subnet then
    params.NetworkInterface = { { DeviceIndex = 0, SubnetId = subnet, SecurityGroupId = { r.group },
      AssociatePublicIpAddress = self.public_ip } }
  else
    params.SecurityGroupId = { r.group }
  end
  if self.opts.disk_gb then
    params.BlockDeviceMapping = { { DeviceName = "/dev/sda1", Ebs = { VolumeSize = self.opts.disk_gb,
      DeleteOnTermination = true } } }
  end
  if self.opts.instance_profile then params.IamInstanceProfile = { Name = self.opts.instance_profile } end
  return params
end

function Provider:provision(cluster, n, offer)
  local region = offer.region or (self.regions and self.regions[1]) or self:_client_region()
  local r = self:_region(cluster, region)
  local params = self:run_params(cluster, n, offer, r)
  -- Idempotent: a RunInstances retried after a lost answer does not launch twice.
  params.ClientToken = ("%s-%d-%d"):format(_pool(cluster), os.time(), math.random(1, 1 << 30))
  local doc = self:_client(region):call("RunInstances", params)
  local ids = {}
  for i, item in ipairs(ec2.items(doc, "instancesSet")) do
    ids[i] = ec2.text(item, "instanceId")
    cluster.aws.instances[ids[i]] = region
    if offer.spot then cluster.aws.spot[ids[i]] = true end
  end
  return ids
end

function Provider:_client_region()
  local c = self._creds or credentials.resolve(self.opts.profile)
  self._creds = c
  if not c.region then _bad("no region: set region = 'us-east-1' (or AWS_REGION)") end
  return c.region
end

local STATES = { pending = "pending", running = "running", ["shutting-down"] = "terminated",
  terminated = "terminated", stopping = "terminated", stopped = "terminated" }

function Provider:get_instance(cluster, id)
  local region = cluster.aws.instances[id]
  local doc = self:_client(region):call("DescribeInstances", { InstanceId = { id } })
  local item = ec2.items(doc, "reservationSet")[1]
  item = item and ec2.items(item, "instancesSet")[1]
  if not item then return { id = id, state = "terminated" } end
  local state = STATES[ec2.text(item, "instanceState", "name")] or "pending"
  local ip = self.public_ip and ec2.text(item, "ipAddress") or ec2.text(item, "privateIpAddress")
  if state == "running" and not ip then state = "pending" end
  local keys
  if state == "running" then
    keys = hostkeys.for_instance(self.opts.host_keys, self:_client(region), id, cluster.aws)
    if not keys then state = "pending" end -- host_keys = "console": not on the console yet
  end
  return { id = id, state = state, ip = ip, port = 22, user = self.user, host_keys = keys and #keys > 0 and keys or nil,
    on_expiry = self.opts.on_expiry or M.DEFAULT_ON_EXPIRY,
    spot_notice = cluster.aws.spot[id] and self.opts.spot_notice ~= false and M.METADATA_ADDRESS or nil,
    ssh = { host_keys = "accept-new", known_hosts = cluster.aws.known_hosts } }
end

function Provider:terminate(cluster, ids)
  local by_region = {}
  for _, id in ipairs(ids) do
    local region = cluster.aws.instances[id]
    by_region[region] = by_region[region] or {}
    table.insert(by_region[region], id)
  end
  for region, list in pairs(by_region) do self:_client(region):call("TerminateInstances", { InstanceId = list }) end
end

-- Waits until every instance of the pool in `region` is terminated (the group cannot be
-- deleted before), polling DescribeInstances by tag.
function Provider:_wait_terminated(cluster, region, timeout)
  local c = self:_client(region)
  local deadline = os.time() + timeout
  while true do
    local alive = {}
    local doc = c:call("DescribeInstances", { Filter = { { Name = "tag:skyhost-pool", Value = { _pool(cluster) } } } })
    for _, res in ipairs(ec2.items(doc, "reservationSet")) do
      for _, item in ipairs(ec2.items(res, "instancesSet")) do
        local st = ec2.text(item, "instanceState", "name")
        if st ~= "terminated" then alive[#alive + 1] = ec2.text(item, "instanceId") end
      end
    end
    if #alive == 0 then return end
    if os.time() > deadline then
      errors.raise("CleanupFailed", ("sky.aws: instances %s of pool %s in %s are not terminated after %d s")
        :format(table.concat(alive, ", "), _pool(cluster), region, timeout))
    end
    c:call("TerminateInstances", { InstanceId = alive })
    require("sky").sleep(self.opts.poll_interval or 2)
  end
end

function Provider:teardown(cluster)
  if not cluster.aws then return end
  for region, r in pairs(cluster.aws.regions) do
    local c = self:_client(region)
    self:_wait_terminated(cluster, region, 600)
    if not r.made_group and r.group_name then  -- CreateSecurityGroup cut short: maybe made
      local doc = c:call("DescribeSecurityGroups", { Filter = { { Name = "group-name", Value = { r.group_name } } } })
      local g = ec2.items(doc, "securityGroupInfo")[1]
      if g then r.group, r.made_group = ec2.text(g, "groupId"), true end
    end
    r.group_name = nil
    if r.made_group then c:call("DeleteSecurityGroup", { GroupId = r.group }) end
    r.made_group = nil
    if r.made_key then
      local ok, err = pcall(c.call, c, "DeleteKeyPair", { KeyName = r.key_name })
      if not ok and not (type(err) == "table" and tostring(err.aws_code):find("NotFound")) then error(err, 0) end
    end
    r.made_key = nil
  end
  if cluster.aws.known_hosts then os.remove(cluster.aws.known_hosts) end
end

return M
