-- The broker: from a pool's options to running instances. Resolves the provider, asks it for
-- offers, picks one, provisions, and reads each instance back. Whatever fails on the way, the
-- instances created so far are terminated before the error propagates.
local errors = require "sky.errors"
local providers = require "sky.providers"

local M = {}

--- Provisions `pool.nodes` instances. Sets pool.provider, pool.offer, pool.cluster and
--- pool.instances ({id =, info = instance table}). `emit(type, fields)` reports progress.
function M.provision(pool, emit)
  local opts = pool.opts
  local prov = providers.resolve(opts.provider or "local")
  pool.provider = prov
  pool.cluster = { id = pool.name, nodes = pool.nodes, spec = opts }
  prov:prepare(pool.cluster)
  local offers = prov:offers(opts)
  local offer = offers[1]
  if not offer then
    errors.raise("NoOffers", ("provider '%s' has no offer for this pool"):format(prov.name))
  end
  pool.offer = offer
  emit("OffersSelected", { offers = #offers, provider = prov.name,
    instance_type = offer.instance_type })
  local ids = prov:provision(pool.cluster, pool.nodes, offer) or {}
  for _, id in ipairs(ids) do
    pool.instances[#pool.instances + 1] = { id = id }
    emit("InstanceLaunched", { instance = id, provider = prov.name })
  end
  if #ids < pool.nodes then
    errors.raise("ProvisionFailed", ("provider '%s' provisioned %d of %d nodes")
      :format(prov.name, #ids, pool.nodes))
  end
  for node, inst in ipairs(pool.instances) do
    inst.info = prov:get_instance(pool.cluster, inst.id)
    emit("InstanceRunning", { instance = inst.id, node = node - 1 })
  end
end

--- Terminates the pool's instances and releases what the provider prepared. Raises the first
--- failure after trying everything.
function M.release(pool)
  local prov = pool.provider
  if not prov then return end
  local first_err
  local ids = {}
  for _, inst in ipairs(pool.instances) do ids[#ids + 1] = inst.id end
  if #ids > 0 then
    local ok, e = pcall(prov.terminate, prov, pool.cluster, ids)
    if not ok then first_err = e end
  end
  local ok, e = pcall(prov.teardown, prov, pool.cluster)
  if not ok and first_err == nil then first_err = e end
  if first_err ~= nil then error(first_err, 0) end
end

return M
