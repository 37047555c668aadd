-- Providers: what can provision machines, found by name or given as objects.
--
--   built-in  providers/<name>.lua, Lua modules with the protocol below ("local")
--   defined   sky.provider{ name, offers, prepare, provision, get_instance, terminate, teardown }
--             in a script; usable wherever a built-in one is, by object or by name
--   known     the cloud providers of sky.clouds: the catalog has their offers, `skyhost check`
--             knows their credentials, but this build does not implement them. Naming one is
--             not an error: the broker never provisions through it and says why.
--
-- The protocol (every method may wait: it runs in a coroutine on the driver, with sky.http,
-- sky.json and sky.sleep available; an error it raises is a provisioning failure the broker
-- handles):
--   offers(self, spec)                  -> list of offers {instance_type, accelerator, count,
--                                          price, spot_price (when spot exists), region, zone, ...}
--   prepare(self, cluster)               cluster-wide setup (keys, networks); optional
--   provision(self, cluster, n, offer)  -> list of instance ids, possibly fewer than n;
--                                          offer.spot says which market to buy in
--   get_instance(self, cluster, id)     -> {id, state = "pending"|"running"|"terminated", ip,
--                                          port, user} or {id, state, transport = "local"}
--   terminate(self, cluster, ids)
--   teardown(self, cluster)              undoes prepare; optional
-- A provider may set offers_ttl (seconds): its offers are then cached in the state database
-- (sky.state) for that long, per request and per offers_origin (a string naming where the
-- offers come from, e.g. the API's URL).
local clouds = require "providers.clouds"
local errors = require "sky.errors"
local options = require "sky.options"
local suggest = require "sky.internal.suggest"

local M = {}

M.METHODS = { "offers", "prepare", "provision", "get_instance", "terminate", "teardown" }
M.BUILTIN = { ["local"] = "providers.local", slurm = "providers.slurm" }
-- Built-in providers made from options (sky.aws{...}); by name alone, with default options.
M.FACTORY = { aws = "providers.aws", gcp = "providers.gcp", runpod = "providers.runpod",
  lambda = "providers.lambda", digitalocean = "providers.digitalocean", vast = "providers.vast" }

local _optional = { prepare = true, teardown = true }

local Provider = { __name = "sky.provider" }
Provider.__index = Provider
function Provider.__tostring(p) return ("sky.provider(%s)"):format(p.name) end

-- A known cloud named in a script (sky.aws{...} or "aws"): carries its name and options only.
local Ref = { __name = "sky.provider_ref" }
Ref.__index = Ref
function Ref.__tostring(r) return ("sky.%s{} (not implemented yet)"):format(r.name) end

local _defined = {}  -- name -> provider from sky.provider{...}
local _builtin = {}  -- name -> provider object wrapping providers/<name>.lua
local _wrapped = setmetatable({}, { __mode = "k" })  -- plain table given as a provider -> object

function M.is_provider(v) return getmetatable(v) == Provider end
function M.is_ref(v) return getmetatable(v) == Ref end

local DEFINE_SCHEMA = {
  name = "string", offers = "callable", prepare = "callable", provision = "callable",
  get_instance = "callable", terminate = "callable", teardown = "callable",
  offers_ttl = "number", offers_origin = "string", description = "string",
}

local function _noop() end

local function _make(def, what)
  local p = setmetatable({}, Provider)
  for k, v in pairs(def) do p[k] = v end
  for _, m in ipairs(M.METHODS) do
    if p[m] == nil and _optional[m] then p[m] = _noop end
    if p[m] == nil then
      errors.raise("BadProvider", ("%s: provider '%s' has no method '%s' (a provider needs %s; prepare and teardown may be left out)")
        :format(what, p.name, m, table.concat(M.METHODS, ", ")))
    end
  end
  return p
end

--- sky.provider{...}: a provider defined in Lua. Registered under its name (later definitions
--- of the same name replace earlier ones), so `provider = "name"` finds it too.
function M.define(def)
  def = options.check("sky.provider", def, DEFINE_SCHEMA)
  if type(def.name) ~= "string" or def.name == "" then
    errors.raise("BadProvider", "sky.provider: 'name' is required (a string such as \"mycloud\")")
  end
  if M.BUILTIN[def.name] then
    errors.raise("BadProvider", ("sky.provider: '%s' is a built-in provider; wrap its methods with sky.override(\"providers.%s.<method>\", fn) instead")
      :format(def.name, def.name))
  end
  local p = _make(def, "sky.provider")
  _defined[def.name] = p
  return p
end

--- Forgets a provider defined by sky.provider (tests).
function M.undefine(name) _defined[name] = nil end

--- A reference to a known but unimplemented cloud, as sky.<name>{...} makes it.
function M.ref(name, opts)
  return setmetatable({ name = name, options = opts or {} }, Ref)
end

--- The built-in provider `name`, loaded once.
local function _load_builtin(name)
  local p = _builtin[name]
  if not p then
    p = _make(require(M.BUILTIN[name]), "providers/" .. name .. ".lua")
    _builtin[name] = p
  end
  return p
end

--- Every name a script may use, sorted: built-in, defined, then known clouds.
function M.names()
  local out, seen = {}, {}
  local function add(n) if not seen[n] then seen[n] = true; out[#out + 1] = n end end
  local b, d = {}, {}
  for n in pairs(M.BUILTIN) do b[#b + 1] = n end
  for n in pairs(_defined) do d[#d + 1] = n end
  table.sort(b); table.sort(d)
  for _, n in ipairs(b) do add(n) end
  for _, n in ipairs(d) do add(n) end
  for _, c in ipairs(clouds.list) do add(c.name) end
  return out
end

--- True when `name` can provision in this build (built-in or defined in the script).
function M.implemented(name)
  return M.BUILTIN[name] ~= nil or M.FACTORY[name] ~= nil or _defined[name] ~= nil
end

local _by_name = {}  -- name -> provider made by M.FACTORY[name].new{}

--- A provider object for `p`: a name, a sky.provider object, a sky.<cloud>{} reference, or a
--- plain table with the protocol's methods. Known clouds that are not implemented come back as
--- references (M.is_ref); unknown names raise with a suggestion. `what` names the caller.
function M.resolve(p, what)
  what = what or "sky.compute"
  if type(p) == "string" then
    if _defined[p] then return _defined[p] end
    if M.BUILTIN[p] then return _load_builtin(p) end
    if M.FACTORY[p] then
      _by_name[p] = _by_name[p] or M.resolve(require(M.FACTORY[p]).new {}, what)
      return _by_name[p]
    end
    if clouds.by_name[p] then return M.ref(p) end
    local cands = {}
    for _, n in ipairs(M.names()) do cands[#cands + 1] = { key = n, name = n } end
    errors.raise("BadOption", ("%s: unknown provider '%s'%s (providers: %s; define your own with sky.provider{...})")
      :format(what, p, suggest.did_you_mean(suggest.suggest(p, cands)), table.concat(M.names(), ", ")))
  end
  if M.is_provider(p) or M.is_ref(p) then return p end
  if type(p) == "table" and type(p.name) == "string" then
    -- One object per table, so a provider given twice is one provider to the broker.
    local obj = _wrapped[p] or _make(p, what)
    _wrapped[p] = obj
    return obj
  end
  errors.raise("BadOption", ("%s: a provider must be a name, sky.provider{...} or a table with name and methods, got %s")
    :format(what, type(p)))
end

--- Wraps method `method` of provider `name` (built-in or defined): later calls run
--- fn(base, self, ...). Returns a function that undoes it (undo in reverse order).
function M.override(name, method, fn)
  local p
  if _defined[name] then
    p = _defined[name]
  elseif M.BUILTIN[name] then
    p = _load_builtin(name)
  elseif clouds.by_name[name] then
    errors.raise("NotImplemented", ("sky.override: provider '%s' is not implemented in this build, so it has no methods to wrap; define it with sky.provider{name = \"%s\", ...}")
      :format(name, name))
  else
    M.resolve(name, "sky.override") -- raises with a suggestion
  end
  local valid = false
  for _, m in ipairs(M.METHODS) do valid = valid or m == method end
  if not valid then
    errors.raise("BadOption", ("sky.override: provider method '%s' does not exist (methods: %s)")
      :format(tostring(method), table.concat(M.METHODS, ", ")))
  end
  local base = p[method]
  p[method] = function(...) return fn(base, ...) end
  local wrapped = p[method]
  return function()
    if p[method] == wrapped then p[method] = base end
  end
end

-- Offer cache ---------------------------------------------------------------------------------

local _cache_store -- nil: the default store of sky.state; false: caching off

--- Uses `store` (from sky.state.open) for the offers cache; false turns caching off.
function M.set_cache(store) _cache_store = store end

local function _store()
  if _cache_store ~= nil then return _cache_store or nil end
  local ok, state = pcall(require, "sky.state")
  if not ok then return nil end
  local ok2, store = pcall(state.default)
  return ok2 and store or nil
end

-- The parts of a request that change which offers a provider lists, and where they come from
-- (prov.offers_origin: the API's URL, so offers cached from one endpoint never answer another).
local function _cache_key(prov, spec)
  local parts = {}
  if prov.offers_origin then parts[1] = "origin=" .. tostring(prov.offers_origin) end
  for _, k in ipairs({ "accelerator", "count", "memory", "region", "zone" }) do
    local v = spec[k]
    if type(v) == "table" then
      local items = {}
      for i, x in ipairs(v) do items[i] = tostring(x) end
      v = table.concat(items, ",")
    end
    if v ~= nil then parts[#parts + 1] = k .. "=" .. tostring(v) end
  end
  return "offers?" .. table.concat(parts, "&")
end

--- prov:offers(spec), through the cache when the provider sets offers_ttl. A cache that cannot
--- be read or written is skipped: live offers are always a correct answer.
function M.offers(prov, spec)
  local ttl = prov.offers_ttl
  local store = ttl and ttl > 0 and _store()
  if not store then return prov:offers(spec) end
  local key = _cache_key(prov, spec)
  local ok, cached = pcall(store.cache_get, store, prov.name, key, ttl)
  if ok and type(cached) == "table" then return cached, true end
  local list = prov:offers(spec)
  if type(list) == "table" then pcall(store.cache_put, store, prov.name, key, list) end
  return list, false
end

return M
