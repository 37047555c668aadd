-- What a skyhost killed between a create call and its answer leaves behind, made through each
-- provider's own calls (tests/e2e/clouds_sweep.py): for each cloud of CLOUDS, prepare and provision
-- one instance of pool crashed-<cloud> on the fakes (FAKE, GCP as for clouds_pool.lua), then exit
-- without a teardown and without the journal ever hearing of the pool. Prints `planted CLOUD ID`.
local fake = sky.json.decode((assert(os.getenv("FAKE"), "FAKE is not set")))
local make = {
  runpod = function() return sky.runpod { api = fake.runpod, catalog_api = fake.runpod_v2, region = "US" } end,
  lambda = function() return sky.lambda { api = fake.lambda, region = "us-east-1" } end,
  digitalocean = function() return sky.digitalocean { api = fake.digitalocean } end,
  vast = function() return sky.vast { api = fake.vast } end,
  gcp = function()
    local g = sky.json.decode((assert(os.getenv("GCP"), "GCP is not set")))
    return sky.gcp { project = "skyhost-test", zone = g.zones, endpoint = g.endpoint, user = "root" }
  end,
}
local KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5LW9mLWEtY3Jhc2hlZC1za3lob3N0 crashed"
for name in (assert(os.getenv("CLOUDS"), "CLOUDS is not set")):gmatch("[^,]+") do
  local p = make[name]()
  local offers = {}
  for _, o in ipairs(p:offers { accelerator = "H100", count = 1 }) do
    if o.available ~= false and o.price then offers[#offers + 1] = o end
  end
  table.sort(offers, function(a, b) return a.price < b.price end)
  local cluster = { uid = "crashed-" .. name, id = "crashed-" .. name, ssh_public_key = KEY }
  p:prepare(cluster)
  for _, id in ipairs(p:provision(cluster, 1, assert(offers[1], "no offer for " .. name))) do
    print("planted", name, id)
  end
end
os.exit(0)
