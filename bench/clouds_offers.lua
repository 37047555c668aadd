-- Offers across the JSON/REST clouds with Lambda's live refresh, on the fake clouds behind Prism:
--
--   FAKE=<the JSON line tests/support/cloud_fake/cloud_fake.py --token T prints>
--   RUNPOD_API_KEY=T LAMBDA_API_KEY=T DIGITALOCEAN_ACCESS_TOKEN=T VAST_API_KEY=T skyhost bench/clouds_offers.lua [RUNS]
--
-- Measured (2 shared cores, load ~2.5, Prism 5.14.2): live 48.5 ms, plan 60.0 ms (79 attempts,
-- two live requests), select 0.87 ms. Prism's validation is most of `live`; the choice stays
-- under 1 ms.
--
-- Wall times (median of RUNS, default 20; the offers cache is off, so every run asks again):
--   live      sky.lambda's offers(): GET /instance-types through Prism, merged with the catalog
--   plan      broker.plan for H100 over runpod, lambda (live), digitalocean (live), vast (live) and aws: every
--             provider's offers, filtered, ordered, expanded into attempts (what sky.compute does
--             before its first attempt)
--   select    the same plan with every offer from the catalog (no request): the choice
--             itself, target <= 5 ms
local broker = require "sky.broker"
local core = require "skyhost.core"
local providers = require "providers"

local fake = sky.json.decode((assert(os.getenv("FAKE"), "FAKE is not set: see the header")))
local RUNS = tonumber(arg and arg[1]) or 20
providers.set_cache(false)

local function median(fn)
  local ts = {}
  for i = 1, RUNS do
    local t0 = core.now()
    fn()
    ts[i] = core.now() - t0
  end
  table.sort(ts)
  return ts[(RUNS + 1) // 2]
end

local function list(live)
  return { sky.runpod { api = fake.runpod, catalog_api = fake.runpod_v2, live = live }, sky.lambda { api = fake.lambda, live = live },
    sky.digitalocean { api = fake.digitalocean, live = live }, sky.vast { api = fake.vast, live = live }, "aws" }
end

local n_offers
local lambda = sky.lambda { api = fake.lambda }
local live = median(function() n_offers = #lambda:offers { accelerator = "H100" } end)
local attempts
local plan = median(function() attempts = #broker.plan { provider = list(true), accelerator = "H100" } end)
local select = median(function() broker.plan { provider = list(false), accelerator = "H100" } end)
print(("live    %7.2f ms  (lambda: %d H100 offers)"):format(live * 1000, n_offers))
print(("plan    %7.2f ms  (%d attempts over 5 providers)"):format(plan * 1000, attempts))
print(("select  %7.2f ms  (the same, all from the catalog)"):format(select * 1000))
