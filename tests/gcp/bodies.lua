-- Prints, as one JSON document, what tests/gcp/test_bodies.py checks: instances.insert bodies of
-- sky.gcp for a few option sets, and how Compute Engine errors map to broker codes and scopes.
local gcp = require "providers.gcp"
local compute = require "providers.gcp.compute"
local cluster = { uid = "Pool_1.ab12cd", ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 skyhost\n" }
local offer = { instance_type = "a3-highgpu-1g", zone = "us-central1-a", region = "us-central1" }
local spot = { instance_type = "a3-highgpu-1g", zone = "us-central1-b", region = "us-central1", spot = true }
local out = {
  default = gcp.new({ project = "p-1" }):insert_body(cluster, "skyhost-x-1", offer),
  private_spot = gcp.new({ project = "p-1", public_ip = false, user = "root", disk_gb = 200,
    subnetwork = "regions/us-central1/subnetworks/s1", service_account = "sa@p-1.iam.gserviceaccount.com" })
    :insert_body(cluster, "skyhost-x-2", spot),
  errors = {},
}
local cases = {
  exhausted = { { code = "ZONE_RESOURCE_POOL_EXHAUSTED", message = "no room" } }, nil,
  quota = { { code = "QUOTA_EXCEEDED", message = "Quota 'NVIDIA_H100_GPUS' exceeded." } }, nil,
}
local function err(errs, status)
  local e = compute.error_from({ errors = errs, message = "m" }, status, "instances.insert", "us-central1-a")
  return { code = e.code, scope = e.scope or sky.json.null, retry = e.retry or false, message = e.message }
end
out.errors.exhausted = err(cases.exhausted)
out.errors.quota = err(cases.quota)
out.errors.forbidden = err({ { reason = "forbidden", message = "Required 'compute.instances.create' permission" } }, 403)
out.errors.unauthenticated = err({ { reason = "authError", message = "Invalid Credentials" } }, 401)
out.errors.rate = err({ { reason = "rateLimitExceeded", message = "Rate Limit Exceeded" } }, 429)
out.errors.server = err({ { reason = "backendError", message = "Internal error" } }, 503)
out.errors.http_quota = err({ { reason = "quotaExceeded", message = "Quota exceeded" } }, 403)
local ok, e = pcall(gcp.new, { project = "Bad_Project" })
out.bad_project = tostring(e)
ok, e = pcall(gcp.new, { zone = 3 })
out.bad_zone = tostring(e)
ok, e = pcall(gcp.new, { endpoint = "ftp://x" })
out.bad_endpoint = tostring(e)
local long = { uid = ("Very_Long.Pool-Name"):rep(5) .. "-ab12cd" }
out.long_names = { gcp.instance_name(long, 7), gcp.instance_name(long, 12345) }
-- The instance table of a running instance (instances.get answered by a stub): the node's
-- on_expiry, by default powering off (which stops a VM's billing), "" for none.
local function running(opts)
  local p = gcp.new(opts)
  p._client = function()
    return { url = function() return "u" end,
      call = function() return { status = "RUNNING", networkInterfaces = { { accessConfigs = { { natIP = "192.0.2.7" } } } } } end }
  end
  local info = p:get_instance({ gcp = { instances = { i1 = "us-central1-a" }, known_hosts = "/dev/null" } }, "i1")
  return { ip = info.ip, state = info.state, on_expiry = info.on_expiry or sky.json.null }
end
out.expiry = { default = running({ project = "p-1" }), custom = running({ project = "p-1", on_expiry = "shutdown -h now" }),
  none = running({ project = "p-1", on_expiry = "" }) }
print(sky.json.encode(out))
