-- The JSON/REST clouds (providers/http_json.lua, runpod.lua, lambda.lua, digitalocean.lua)
-- without a network: sky.http.try is replaced by a script of answers, so each test sees the
-- requests a provider sends (bodies, paths, auth) and how it reads the errors it gets. The same
-- providers against their APIs' official specs (Prism) are tests/e2e/test_clouds.py. Run by skyhost.
local t = require "testlib"
local sky = require "sky"
local http = require "sky.http"
local hj = require "providers.http_json"

-- Replaces http.try with one that answers from `answers` in order ({status, body, headers}) and
-- records every request; returns the record. Restored by the returned undo.
local function fake(answers)
  local sent, base, sleeps = {}, http.try, {}
  local sleep = sky.sleep
  http.try = function(req)
    sent[#sent + 1] = req
    local a = table.remove(answers, 1) or { 500, "{}" }
    if a == "noanswer" then return nil, { message = "connection refused" } end
    local h = { ["content-type"] = "application/json" }
    for k, v in pairs(a[3] or {}) do h[k] = v end
    return { status = a[1], ok = a[1] >= 200 and a[1] < 300, body = a[2] or "", headers = h }
  end
  sky.sleep = function(s) sleeps[#sleeps + 1] = s end
  return sent, sleeps, function() http.try, sky.sleep = base, sleep end
end

local CLUSTER = { uid = "p-abc123", ssh_public_key = "ssh-ed25519 AAAAC3NzaTEST skyhost" }

local function with_home(files, fn)
  local home = os.tmpname()
  os.remove(home)
  assert(os.execute("mkdir -p '" .. home .. "'"))
  for path, text in pairs(files) do
    assert(os.execute(("mkdir -p '%s/%s'"):format(home, path:match("^(.*)/") or ".")))
    local f = assert(io.open(home .. "/" .. path, "w"))
    f:write(text)
    f:close()
  end
  local ok, err = pcall(fn, home)
  os.execute("rm -rf '" .. home .. "'")
  if not ok then error(err, 0) end
end

t.test("API keys are read where each CLI keeps them", function()
  t.eq(hj.key_in('[default]\napikey = "rp_KEY1"\n', { "apikey" }), "rp_KEY1")
  t.eq(hj.key_in("api_key = secret_lambda\n", { "api_key" }), "secret_lambda")
  t.eq(hj.key_in("access-token: dop_v1_abc\ncontext: default\n", { "access-token" }), "dop_v1_abc")
  t.eq(hj.key_in("  vastkey123\n", {}), "vastkey123")
  t.eq(hj.key_in("nothing: here\n", { "apikey" }), nil)
end)

t.test("no key anywhere: NoCredentials naming every place and how to fix", function()
  local ok, err = pcall(hj.credentials, "lambda", { env = { "SKYHOST_TEST_NO_SUCH_VAR" },
    files = { { path = "/nonexistent/lambda_keys", keys = { "api_key" } } } }, "set LAMBDA_API_KEY")
  t.ok(not ok)
  t.eq(err.code, "NoCredentials")
  t.ok(err.message:find("$SKYHOST_TEST_NO_SUCH_VAR", 1, true) and err.message:find("/nonexistent/lambda_keys", 1, true)
    and err.message:find("set LAMBDA_API_KEY", 1, true), err.message)
end)

t.test("Retry-After: seconds and HTTP dates", function()
  t.eq(hj.retry_after("7"), 7)
  t.eq(hj.retry_after(nil), nil)
  t.eq(hj.retry_after(os.date("!%a, %d %b %Y %H:%M:%S GMT", 1000000), 999990), 10)
  t.eq(hj.retry_after("soon"), nil)
end)

local function lambda_err(code, msg)
  return sky.json.encode { error = { code = code, message = msg, suggestion = "try later" } }
end

local function client(answers, retries)
  local sent, sleeps, undo = fake(answers)
  local c = hj.client { cloud = "Lambda", base = "http://api.test/v1", key = "K", how = "set LAMBDA_API_KEY",
    classify = require("providers.lambda").classify, retries = retries or 3, backoff = 0.5 }
  return c, sent, sleeps, undo
end

t.test("bearer auth, JSON body, decoded answer", function()
  local c, sent, _, undo = client({ { 200, '{"data":{"id":"k1"}}' } })
  local doc = c:call("POST", "/ssh-keys", { name = "n" })
  undo()
  t.eq(doc.data.id, "k1")
  t.eq(sent[1].url, "http://api.test/v1/ssh-keys")
  t.eq(sent[1].headers.Authorization, "Bearer K")
  t.eq(sent[1].json, { name = "n" })
end)

t.test("429 waits Retry-After, 5xx and lost answers back off with jitter, then succeed", function()
  local c, sent, sleeps, undo = client({ { 429, "{}", { ["retry-after"] = "3" } }, { 503, "busy" }, "noanswer",
    { 200, '{"ok":true}' } })
  local doc = c:call("GET", "/instances")
  undo()
  t.eq(doc.ok, true)
  t.eq(#sent, 4)
  t.eq(sleeps[1], 3)
  t.ok(sleeps[2] >= 0 and sleeps[2] <= 1.0 and sleeps[3] >= 0 and sleeps[3] <= 2.0, table.concat(sleeps, ","))
end)

t.test("a 429 whose text reads like a quota is still retried", function()
  local sent, _, undo = fake({ { 429, lambda_err("global/quota-exceeded", "rate limit exceeded") }, { 200, "{}" } })
  local c = hj.client { cloud = "Lambda", base = "http://api.test/v1", key = "K", how = "h",
    classify = require("providers.lambda").classify, retries = 2 }
  local ok = pcall(c.call, c, "GET", "/instances")
  undo()
  t.ok(ok and #sent == 2)
end)

t.test("5xx every time: gives up after retries, saying so", function()
  local c, sent, _, undo = client({ { 500, "a" }, { 502, "b" }, { 500, "c" } }, 2)
  local ok, err = pcall(c.call, c, "GET", "/instances")
  undo()
  t.ok(not ok)
  t.eq(#sent, 3)
  t.ok(err.message:find("gave up after 3 attempts", 1, true), err.message)
end)

t.test("a call may ask for fewer retries (a lookup with a fallback)", function()
  local c, sent, _, undo = client({ { 503, "a" }, { 503, "b" }, { 200, "{}" } }, 3)
  local ok = pcall(c.call, c, "GET", "/instance-types", nil, { retries = 1, timeout = 10 })
  undo()
  t.ok(not ok)
  t.eq(#sent, 2)
  t.eq(sent[1].timeout, 10)
end)

t.test("a Retry-After longer than max_wait is an error at once", function()
  local c, sent, _, undo = client({ { 429, "{}", { ["retry-after"] = "3600" } } })
  local ok, err = pcall(c.call, c, "GET", "/instances")
  undo()
  t.ok(not ok and #sent == 1 and err.message:find("Retry-After 3600", 1, true), err and err.message)
end)

t.test("Lambda errors map to the broker's codes (scopes), with no retry", function()
  for _, case in ipairs({
    { 400, "instance-operations/launch/insufficient-capacity", "NoCapacity", "zone" },
    { 400, "global/quota-exceeded", "QuotaExceeded", "region" },
    { 401, "global/invalid-api-key", "AuthFailed", "provider" },
  }) do
    local c, sent, _, undo = client({ { case[1], lambda_err(case[2], "m") } })
    local ok, err = pcall(c.call, c, "POST", "/instance-operations/launch", {})
    undo()
    t.ok(not ok and err.code == case[3] and #sent == 1, case[2])
    t.eq(require("sky.broker.blocklist").scope_of(err, "zone"), case[4], case[2])
    if case[3] == "AuthFailed" then t.ok(err.message:find("LAMBDA_API_KEY", 1, true), err.message) end
  end
end)

t.test("RunPod and DigitalOcean error texts map too", function()
  local rp = require("providers.runpod").classify
  t.eq((rp(500, { error = "There are no longer any instances available with the requested specifications." })), "NoCapacity")
  t.eq((rp(401, nil, "Unauthorized")), "AuthFailed")
  local d = require("providers.digitalocean").classify
  t.eq((d(422, { id = "unprocessable_entity", message = "Size is not available in this region." })), "NoCapacity")
  t.eq((d(422, { id = "forbidden", message = "You have reached your droplet limit." })), "QuotaExceeded")
  t.eq((d(401, { id = "unauthorized", message = "Unable to authenticate you." })), "AuthFailed")
  t.eq((d(422, { id = "unprocessable_entity", message = "Name is invalid" })), nil)
  t.eq((d(429, { id = "too_many_requests", message = "API Rate limit exceeded." })), nil)
end)

t.test("RunPod: the pod's key in PUBLIC_KEY, port 22 mapped, named after the pool", function()
  local p = sky.runpod { image = "img:1" }
  local offer = { instance_type = "2x_H100-SXM_SECURE", accelerator = "H100", count = 2, region = "US", spot = false }
  local b = p:pod_body(CLUSTER, 1, offer)
  t.eq(b.name, "skyhost-p-abc123-1")
  t.eq(b.gpuTypeIds, { "NVIDIA H100 80GB HBM3" })
  t.eq(b.gpuCount, 2)
  t.eq(b.env.PUBLIC_KEY, CLUSTER.ssh_public_key)
  t.eq(b.ports, { "22/tcp" })
  t.eq(b.countryCodes, { "US" })
  t.eq(b.cloudType, "SECURE")
end)

t.test("Lambda: one instance per launch with the pool's registered key", function()
  local p = sky.lambda {}
  local b = p:launch_body({ uid = "p1", lambda = { key_name = "skyhost-p1" } }, 3,
    { instance_type = "gpu_1x_a10", region = "us-east-1" })
  t.eq(b, { region_name = "us-east-1", instance_type_name = "gpu_1x_a10", ssh_key_names = { "skyhost-p1" }, quantity = 1,
    name = "skyhost-p1-3" })
end)

t.test("Lambda: live prices and availability over the catalog's offers", function()
  local lambda = require "providers.lambda"
  local offers = { { instance_type = "gpu_1x_a10", region = "us-east-1", price = 1.29 },
    { instance_type = "gpu_1x_a10", region = "us-west-1", price = 1.29 },
    { instance_type = "gpu_8x_b200", region = "us-east-1", price = 40 } }
  lambda.merge_live(offers, { gpu_1x_a10 = { instance_type = { name = "gpu_1x_a10", price_cents_per_hour = 75 },
    regions_with_capacity_available = { { name = "us-east-1", description = "Virginia" } } } })
  t.eq({ offers[1].price, offers[1].available, offers[2].price, offers[2].available }, { 0.75, true, 0.75, false })
  t.eq({ offers[3].price, offers[3].available }, { 40, nil })
  t.eq(sky.lambda {}.offers_ttl, lambda.OFFERS_TTL)
  t.eq(sky.lambda { live = false }.offers_ttl, nil)
end)

t.test("DigitalOcean: live prices and availability from the sizes", function()
  local d = require "providers.digitalocean"
  local offers = { { instance_type = "gpu-h100x1-80gb", region = "tor1", price = 6.74 },
    { instance_type = "gpu-h100x1-80gb", region = "ams3", price = 6.74 }, { instance_type = "other", region = "tor1", price = 1 } }
  d.merge_live(offers, { { slug = "gpu-h100x1-80gb", price_hourly = 3.39, regions = { "tor1" }, available = true } })
  t.eq({ offers[1].price, offers[1].available, offers[2].available, offers[3].price, offers[3].available },
    { 3.39, true, false, 1, nil })
  d.merge_live(offers, { { slug = "gpu-h100x1-80gb", price_hourly = 3.39, regions = { "tor1" }, available = false } })
  t.eq(offers[1].available, false)
end)

t.test("DigitalOcean: all droplets in one request, tagged, the account key and user data", function()
  local p = sky.digitalocean {}
  local cl = { uid = "p2", ssh_public_key = CLUSTER.ssh_public_key, digitalocean = { key_id = 77, count = 0 } }
  local b = p:create_body(cl, 2, { instance_type = "gpu-h100x1-80gb", region = "tor1" })
  t.eq(b.names, { "skyhost-p2-1", "skyhost-p2-2" })
  t.eq(b.tags, { "skyhost:p2" })
  t.eq(b.ssh_keys, { 77 })
  t.ok(b.user_data:find(CLUSTER.ssh_public_key, 1, true) and b.user_data:find("skyhost pool p2", 1, true))
end)

t.test("Vast: asks of the offer's GPU and count, in its country, cheapest first; the key by on-start", function()
  local vast = require "providers.vast"
  local offer = { instance_type = "2x-H100_SXM-32-65536", region = "Texas, US, NA" }
  t.eq(vast.search_body(2, offer), { gpu_name = { ["in"] = { "H100_SXM" } }, num_gpus = { ["in"] = { 2 } },
    rentable = { eq = true }, verified = { eq = true }, type = "ondemand", limit = 16 })
  local picked = vast.pick({ { id = 1, geolocation = "Bavaria, DE", dph_total = 0.1 },
    { id = 2, geolocation = "Oregon, US", dph_total = 0.9 }, { id = 3, geolocation = "Texas, US", dph_total = 0.5 } }, offer)
  t.eq({ picked[1].id, picked[2].id, #picked }, { 3, 2, 2 })
  local b = sky.vast {}:create_body(CLUSTER, "skyhost-p-1")
  t.ok(b.onstart:find(CLUSTER.ssh_public_key, 1, true) and b.label == "skyhost-p-1" and b.runtype == "ssh_direct")
  t.eq((vast.classify(410, { error = "no_such_ask", msg = "no longer available" })), "NoCapacity")
  t.eq((vast.classify(401, { error = "auth_error", msg = "Invalid user key" })), "AuthFailed")
end)

t.test("Vast live offers: one search of every kind; each offer the cheapest ask in its country", function()
  local vast = require "providers.vast"
  local offers = { { instance_type = "1x-H100_SXM-32-65536", region = "Texas, US, NA", price = 1.87 },
    { instance_type = "2x-H100_SXM-32-65536", region = ", US, NA", price = 3.73 },
    { instance_type = "2x-H100_SXM-32-65536", region = "Thailand, TH, AS", price = 3.73 },
    { instance_type = "1x-A100_SXM4-32-65536", region = "Bavaria, DE, EU", price = 0.76 } }
  t.eq(vast.live_body(offers, 50), { gpu_name = { ["in"] = { "A100_SXM4", "H100_SXM" } }, num_gpus = { ["in"] = { 1, 2 } },
    rentable = { eq = true }, verified = { eq = true }, type = "ondemand", limit = 50 })
  local asks = { { gpu_name = "H100 SXM", num_gpus = 1, geolocation = "Oregon, US", dph_total = 1.2 },
    { gpu_name = "H100 SXM", num_gpus = 1, geolocation = "Texas, US", dph_total = 0.9 },
    { gpu_name = "H100 SXM", num_gpus = 2, geolocation = "Quebec, CA", dph_total = 0.1 },
    { gpu_name = "H100 SXM", num_gpus = 2, geolocation = "Ohio, US", dph_total = 2.5 } }
  vast.merge_live(offers, asks, 50)
  t.eq({ offers[1].price, offers[1].available, offers[1].source }, { 0.9, true, "live" })
  t.eq({ offers[2].price, offers[2].available }, { 2.5, true })
  t.eq({ offers[3].price, offers[3].available, offers[3].source }, { 3.73, false, "live" })
  t.eq({ offers[4].available, offers[4].source }, { false, "live" })
  -- An answer cut at the limit says nothing of the kinds it lacks: they keep the catalog's row.
  local cut = { { instance_type = "1x-A100_SXM4-32-65536", region = "Bavaria, DE, EU", price = 0.76 } }
  vast.merge_live(cut, asks, 4)
  t.eq({ cut[1].price, cut[1].available, cut[1].source }, { 0.76, nil, nil })
  t.eq(vast.live_body({ { instance_type = "odd" } }, 50), nil)
end)

t.test("RunPod live offers: API v2's price per cloud and GPU count; spot stays the catalog's", function()
  local runpod = require "providers.runpod"
  local offers = { { instance_type = "2x_H100_SECURE", accelerator = "H100", count = 2, price = 8.98 },
    { instance_type = "4x_H100-SXM_SECURE", accelerator = "H100", count = 4, price = 18.76 },
    { instance_type = "1x_RTX4090_COMMUNITY", accelerator = "RTX4090", count = 1, price = 0.74, spot_price = 0.49 },
    { instance_type = "1x_L4_SECURE", accelerator = "L4", count = 1, price = 0.44 },
    { instance_type = "1x_B9_SECURE", accelerator = "B9", count = 1, price = 9 } }
  local gpus = { { id = "NVIDIA H100 PCIe", secure = true, community = true, price = { secure = 2.39, community = 1.99 },
      maxCount = { secure = 8, community = 2 } },
    { id = "NVIDIA H100 80GB HBM3", secure = true, community = false, price = { secure = 2.69, community = 0 },
      maxCount = { secure = 2, community = 0 } },
    { id = "NVIDIA GeForce RTX 4090", secure = true, community = true, price = { secure = 0.59, community = 0.34 },
      maxCount = { secure = 8, community = 4 } } }
  runpod.merge_live(offers, gpus)
  t.eq({ offers[1].price, offers[1].available, offers[1].source }, { 4.78, true, "live" })
  t.eq({ offers[2].price, offers[2].available, offers[2].source }, { 18.76, false, "live" }) -- more than maxCount
  t.eq({ offers[3].price, offers[3].spot_price, offers[3].available }, { 0.34, 0.49, true })
  t.eq({ offers[4].price, offers[4].available, offers[4].source }, { 0.44, false, "live" }) -- no longer listed
  t.eq({ offers[5].price, offers[5].available, offers[5].source }, { 9, nil, nil }) -- no RunPod id known
  local community = { { instance_type = "1x_H100-SXM_COMMUNITY", accelerator = "H100", count = 1, price = 3 } }
  runpod.merge_live(community, gpus)
  t.eq(community[1].available, false) -- not sold in the community cloud
  t.eq(sky.runpod {}.offers_ttl, runpod.OFFERS_TTL)
  t.eq(sky.runpod { live = false }.offers_ttl, nil)
  t.raises(function() sky.runpod { catalog_api = "api.runpod.io" } end, "catalog_api")
end)

t.test("RunPod live offers: GET /v2/catalog/gpus with the key; no answer or no key is the catalog", function()
  local spec = { accelerator = "H100", count = 1, region = "US" }
  local catalog = sky.runpod { live = false }:offers(spec)
  t.ok(#catalog > 0 and catalog[1].source ~= "live", "the catalog has RunPod H100 offers in the US")
  local p = sky.runpod { catalog_api = "http://api.test/" }
  local answer = sky.json.encode { gpus = { { id = "NVIDIA H100 PCIe", secure = true, community = true,
    price = { secure = 2.39, community = 1.99 }, maxCount = { secure = 8, community = 2 } } } }
  p._catalog_client = hj.client { cloud = "RunPod", base = "http://api.test", key = "K", how = "set RUNPOD_API_KEY",
    classify = require("providers.runpod").classify, backoff = 0 }
  local sent, _, undo = fake({ { 200, answer } })
  local ok, live = pcall(p.offers, p, spec)
  undo()
  local failed, _, undo2 = fake({ { 500, "{}" }, "noanswer", "noanswer" })
  local ok2, after = pcall(p.offers, p, spec)
  local kp = sky.runpod {}
  local ok3, keyless = pcall(kp.offers, kp, spec)
  undo2()
  t.eq({ sent[1].method, sent[1].url, sent[1].headers.Authorization }, { "GET", "http://api.test/v2/catalog/gpus", "Bearer K" })
  local pcie = {}
  for _, o in ipairs(live) do
    if o.instance_type == "1x_H100_SECURE" then pcie[#pcie + 1] = o.price end
  end
  t.ok(#pcie > 0 and pcie[1] == 2.39, "H100 PCIe repriced")
  t.ok(#failed >= 1 and after[1].source ~= "live" and #after == #catalog, "a failed answer leaves the catalog")
  t.ok(#keyless == #catalog and keyless[1].source ~= "live", "no key: the catalog")
end)

t.test("bad options are errors naming the option", function()
  t.raises(function() sky.runpod { regoin = "US" } end, "regoin")
  t.raises(function() sky.lambda { api = "ftp://x" } end, "http")
  t.raises(function() sky.digitalocean { retries = -1 } end, "retries")
end)

t.test("a key in a CLI's file is found and said where", function()
  with_home({ ["lambda_keys"] = "api_key = secret_from_file\n" }, function(home)
    local key, where = hj.credentials("lambda", { env = { "SKYHOST_TEST_NO_SUCH_VAR" },
      files = { { path = home .. "/lambda_keys", keys = { "api_key" } } } }, "how")
    t.eq(key, "secret_from_file")
    t.eq(where, home .. "/lambda_keys")
  end)
end)

t.done()
