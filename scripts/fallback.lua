-- Two providers defined in Lua: the first has no capacity, so the broker blocks its zone for
-- spot, tries on-demand of the same offer, blocks that too, and moves on to the second. The
-- second's instances are local workers. At the end, the cost summary.
--
--   skyhost scripts/fallback.lua
local flaky = sky.provider {
  name = "flaky",
  offers = function(_, spec)
    return { { instance_type = "gpu-small", accelerator = spec.accelerator, count = spec.count,
      price = 2.5, spot_price = 0.9, region = "eu", zone = "eu-1" } }
  end,
  provision = function(_, _, _, offer)
    error({ code = "NoCapacity", message = ("no %s capacity in eu-1"):format(offer.spot and "spot" or "on-demand") })
  end,
  get_instance = function() end,
  terminate = function() end,
}

local steady = sky.provider {
  name = "steady",
  offers = function(_, spec)
    return { { instance_type = "box", accelerator = spec.accelerator, count = spec.count, price = 3.6 } }
  end,
  provision = function(_, cluster, n)
    local ids = {}
    for i = 1, n do ids[i] = ("%s-box-%d"):format(cluster.name, i) end
    return ids
  end,
  get_instance = function(_, _, id) return { id = id, state = "running", transport = "local" } end,
  terminate = function(_, _, ids) print("steady: terminating " .. table.concat(ids, ", ")) end,
}

do
  local pool <close> = sky.compute {
    name = "demo", provider = { flaky, steady }, accelerator = "H100", nodes = 2, budget = 5,
  }
  local where = sky.fn(function() return sky.instance_info().provider end)
  print("running on " .. (where() >> pool))
end
