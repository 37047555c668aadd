-- sky.ssh{hosts = {...}}: machines the user already has, reached over SSH. Nothing is created or
-- destroyed: provisioning picks hosts from the list and terminating leaves them as they were
-- (the worker and its scratch directory go when the pool closes).
local errors = require "sky.errors"
local options = require "sky.options"

local M = {}

local SCHEMA = {
  hosts = "table",
  user = "string",
  port = "integer",
  identity = "string",
  known_hosts = "string",
  host_keys = "string",
  connect_timeout = "number",
}

local function _expand(path)
  if path:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. path:sub(2) end
  return path
end

local function _readable(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function _bad(i, entry, why)
  errors.raise("BadOption", ("sky.ssh: hosts[%d] = %q: %s"):format(i, entry, why))
end

--- "user@host:port", "host:port", "[v6addr]:port", "host" → {user, host, port}.
function M.parse_host(i, entry, user, port)
  if type(entry) ~= "string" or entry == "" then
    _bad(i, tostring(entry), "expected a host such as \"root@10.0.0.2\" or \"10.0.0.3:2222\"")
  end
  local rest = entry
  local u, h = rest:match("^([^@]+)@(.*)$")
  if u then rest = h else u = user end
  local host, p
  if rest:sub(1, 1) == "[" then
    host, p = rest:match("^%[([%x:%.]+)%]:?(%d*)$")
    if not host then _bad(i, entry, "an IPv6 address goes in brackets: [fd00::1]:22") end
  elseif select(2, rest:gsub(":", "")) > 1 then
    host, p = rest, ""  -- a bare IPv6 address
  else
    host, p = rest:match("^([^:]+):?(.*)$")
  end
  if not host or host == "" or host:find("[%s/]") then _bad(i, entry, "not a host name or address") end
  if p ~= "" then
    if not p:match("^%d+$") then _bad(i, entry, "port must be a number") end
    port = tonumber(p)
  end
  if port < 1 or port > 65535 then _bad(i, entry, "port must be between 1 and 65535") end
  return { user = u, host = host, port = port }
end

local Provider = {}
Provider.__index = Provider

--- sky.ssh{...} → a provider usable as sky.compute{provider = ...}.
function M.new(opts)
  opts = options.check("sky.ssh", opts, SCHEMA)
  if opts.hosts == nil or #opts.hosts == 0 then
    errors.raise("BadOption", "sky.ssh: 'hosts' must list at least one host, e.g. hosts = {\"10.0.0.2\"}")
  end
  local self = setmetatable({
    name = "ssh",
    ends_by_lease = true,  -- the hosts are yours; a worker ends when its lease runs out
    hosts = {},
    user = opts.user or "root",
    known_hosts = _expand(opts.known_hosts or "~/.ssh/known_hosts"),
    host_keys = opts.host_keys or "strict",
    connect_timeout = opts.connect_timeout,
  }, Provider)
  options.one_of("sky.ssh", "host_keys", self.host_keys, { "strict", "accept-new" })
  local seen = {}
  for i, entry in ipairs(opts.hosts) do
    local h = M.parse_host(i, entry, self.user, opts.port or 22)
    h.id = ("%s@%s:%d"):format(h.user, h.host, h.port)
    if seen[h.id] then _bad(i, entry, "listed twice") end
    seen[h.id] = true
    self.hosts[i] = h
  end
  if opts.identity then
    self.identity = _expand(opts.identity)
    if not _readable(self.identity) then
      errors.raise("BadOption", ("sky.ssh: identity %q: no such readable key file"):format(opts.identity))
    end
  else
    for _, name in ipairs({ "id_ed25519", "id_ecdsa", "id_rsa" }) do
      local p = _expand("~/.ssh/" .. name)
      if _readable(p) then self.identity = p break end
    end
    if not self.identity then
      errors.raise("BadOption", "sky.ssh: no identity given and none in ~/.ssh (id_ed25519, id_ecdsa, id_rsa); "
        .. "set identity = \"path/to/key\"")
    end
  end
  self.default_nodes = #self.hosts
  -- Methods as own fields: a provider is a plain table of fields and methods.
  for k, v in pairs(Provider) do
    if type(v) == "function" then self[k] = v end
  end
  return self
end

function Provider:offers(_spec)
  return { { provider = "ssh", instance_type = "host", count = 0, price = 0, hosts = #self.hosts } }
end

function Provider:prepare(_cluster) end

function Provider:provision(_cluster, n, _offer)
  if n > #self.hosts then
    errors.raise("ProvisionFailed", ("sky.ssh has %d hosts, the pool asks for %d nodes"):format(#self.hosts, n))
  end
  local ids = {}
  for i = 1, n do ids[i] = self.hosts[i].id end
  return ids
end

function Provider:get_instance(_cluster, id)
  for _, h in ipairs(self.hosts) do
    if h.id == id then
      return {
        id = id, state = "running", ip = h.host, port = h.port, user = h.user,
        ssh = {
          identity_file = self.identity,
          known_hosts = self.known_hosts,
          host_keys = self.host_keys,
          connect_timeout = self.connect_timeout,
        },
      }
    end
  end
  errors.raise("NoInstance", ("sky.ssh: no host %s"):format(id))
end

-- The machines are the user's: nothing to destroy.
function Provider:terminate(_cluster, _ids) end

function Provider:teardown(_cluster) end

return M
