-- sky.gcp's client against the GCP fake behind Prism (tests/e2e/test_gcp.py sets ENDPOINT and
-- FAKE, the fake's own address): an expired token (401) is refreshed once, past a token endpoint
-- that first answers 503, and the call goes through; a 403 is AuthFailed, blocking the provider, with how to fix it. Prints, tab-separated:
-- listed, revoked, relisted, forbidden.
local endpoint, fake = assert(os.getenv("ENDPOINT")), assert(os.getenv("FAKE"))
local function config(t) return sky.json.decode(sky.http.post(fake .. "/_fake/config", t).body) end
local p = sky.gcp { project = "skyhost-test", endpoint = endpoint, retries = 2 }
local cluster = { uid = "calls-1" }
local n = 0
for _ in pairs(p:listed(cluster, "us-east4-a")) do n = n + 1 end
print("listed", n, config({}).issued)
config { revoke_tokens = true, token_flaky = 1 }
print("revoked")
for _ in pairs(p:listed(cluster, "us-east4-a")) do n = n + 1 end
print("relisted", n, config({}).issued)
config { forbid = true }
local ok, err = pcall(p.listed, p, cluster, "us-east4-a")
config { forbid = false }
print("forbidden", ok, err.code, err.scope, err.message)
