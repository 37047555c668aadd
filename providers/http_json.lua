-- The shared part of a cloud with a JSON/REST API (providers/runpod.lua, lambda.lua,
-- digitalocean.lua): the API key from where the cloud's own CLI keeps it, bearer-authenticated
-- JSON requests, 429 answered by waiting as long as Retry-After says, 5xx and lost answers
-- retried with exponential backoff and full jitter, and errors mapped to the codes whose scope
-- the broker blocks (docs/broker.md): capacity → NoCapacity (the zone, or the region of an offer
-- without zones), quota → QuotaExceeded (the region), credentials → AuthFailed (the provider,
-- with how to fix it). Also what every such provider does the same way: the pool's name, the
-- pool's known_hosts file, and waiting until a list of instances is gone. See docs/clouds.md.
local errors = require "sky.errors"
local http = require "sky.http"
local json = require "sky.json"

local M = {}

local function _expand(path)
  if path:sub(1, 2) ~= "~/" then return path end
  local home = os.getenv("HOME")
  return home and home ~= "" and (home .. path:sub(2)) or nil
end

local function _read(path)
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- The API key in the text of a CLI's file: the value of the first of `keys` written as
--- `key = "value"`, `key = value` or `key: value` (TOML, INI, YAML), else the whole text when it
--- is one word (a file that holds only the key).
function M.key_in(text, keys)
  for _, k in ipairs(keys or {}) do
    for line in text:gmatch("[^\r\n]+") do
      local v = line:match("^%s*" .. k:gsub("%-", "%%-") .. "%s*[:=]%s*(.-)%s*$")
      if v then
        v = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
        if v ~= "" then return v end
      end
    end
  end
  local word = text:match("^%s*(%S+)%s*$")
  if word and not word:find("[=:]") then return word end
  return nil
end

--- The API key in `places` (as for credentials): key, where, or nil, nil, every place looked at.
function M.find(places)
  local looked = {}
  for _, var in ipairs(places.env or {}) do
    looked[#looked + 1] = "$" .. var
    local v = os.getenv(var)
    if v and v ~= "" then return v, "$" .. var, looked end
  end
  for _, f in ipairs(places.files or {}) do
    looked[#looked + 1] = f.path
    local text = _read(_expand(f.path))
    local key = text and M.key_in(text, f.keys)
    if key then return key, f.path, looked end
  end
  return nil, nil, looked
end

--- The API key of a cloud: {env = {variables}, files = {{path =, keys = {...}}}}, looked for in
--- that order (as `skyhost check` lists them). Returns key, where; or raises NoCredentials naming
--- every place looked at and `how` (how to get one).
function M.credentials(cloud, places, how)
  local key, where, looked = M.find(places)
  if key then return key, where end
  errors.raise("NoCredentials", ("sky.%s: no API key (looked at %s); %s"):format(cloud, table.concat(looked, ", "), how))
end

--- Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), nil if none.
function M.retry_after(value, now)
  if not value then return nil end
  local s = tonumber(value:match("^%s*(%d+)%s*$"))
  if s then return s end
  local d, mon, y, h, mi, sec = value:match("%a+, (%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT")
  if not d then return nil end
  local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
  if not months[mon] then return nil end
  -- os.time reads a local time; the offset of "!*t" turns the GMT fields into an epoch.
  local t = { year = tonumber(y), month = months[mon], day = tonumber(d), hour = tonumber(h), min = tonumber(mi),
    sec = tonumber(sec), isdst = false }
  local epoch = os.time(t) + (os.time() - os.time(os.date("!*t")))
  return math.max(0, epoch - (now or os.time()))
end

local Client = {}
Client.__index = Client

--- A client: {cloud (name in messages), base (URL the paths go under), key (the API key),
--- classify = function(status, doc, text) -> code, message (the cloud's error body read: a
--- skyhost code such as NoCapacity or nil), how (how to fix credentials), retries (default 5),
--- backoff (first delay, seconds, default 0.5), max_wait (longest Retry-After honoured, default
--- 60), timeout (seconds per request, default 30), sleep (default sky.sleep)}.
function M.client(opts)
  return setmetatable(opts, Client)
end

local function _sleep(self, s)
  local sleep = self.sleep or require("sky").sleep
  sleep(s)
end

--- The error of an answer that is not 2xx: code, message and whether to retry.
function Client:error(method, path, resp)
  local doc = json.try_decode(resp.body)
  local code, message = self.classify(resp.status, type(doc) == "table" and doc or nil, resp.body)
  message = message or resp.body:sub(1, 300)
  -- Too many requests is never a quota or a capacity answer, whatever its text says: wait, retry.
  if resp.status == 429 then code = nil end
  local what = ("%s %s %s: HTTP %d: %s"):format(self.cloud, method, path, resp.status, message)
  if not code and (resp.status == 401 or resp.status == 403) then code = "AuthFailed" end
  if code == "AuthFailed" then
    what = what .. " (" .. self.how .. ")"
  elseif code == "QuotaExceeded" then
    what = what .. " (a quota of the account: ask " .. self.cloud .. " to raise it, or use another region)"
  end
  local retry = not code and (resp.status == 429 or resp.status >= 500)
  return errors.new(code or "CloudError", what, { status = resp.status, retry = retry, cloud = self.cloud })
end

--- `method` `path` (under base) with `body` (a table sent as JSON, or nil): the decoded answer
--- (nil for an empty one), or raises. 429 waits Retry-After (else backoff); 5xx and no answer
--- are retried with backoff and full jitter, `retries` times. `opts` may override retries and
--- timeout for this call (a lookup that has a fallback need not wait).
function Client:call(method, path, body, opts)
  opts = opts or {}
  local attempts = (opts.retries or self.retries or 5) + 1
  local delay = self.backoff or 0.5
  local last
  for i = 1, attempts do
    local resp, herr = http.try { method = method, url = self.base .. path, json = body, timeout = opts.timeout or self.timeout or 30,
      headers = { Authorization = "Bearer " .. self.key, Accept = "application/json" } }
    if resp and resp.ok then
      if resp.body:find("^%s*$") then return nil end
      local doc, err = json.try_decode(resp.body)
      if err then
        errors.raise("CloudError", ("%s %s %s: unreadable answer: %s"):format(self.cloud, method, path, err))
      end
      return doc
    end
    local wait
    if resp then
      last = self:error(method, path, resp)
      if not last.retry then error(last, 0) end
      wait = resp.status == 429 and M.retry_after(resp.headers["retry-after"])
      if wait and wait > (self.max_wait or 60) then
        last.message = last.message .. (" (Retry-After %d s is longer than %d s)"):format(wait, self.max_wait or 60)
        error(last, 0)
      end
    else
      last = errors.new("CloudError", ("%s %s %s: no answer: %s"):format(self.cloud, method, path, herr.message),
        { retry = true, cloud = self.cloud })
    end
    if i < attempts then
      _sleep(self, wait or math.random() * delay)
      delay = math.min(delay * 2, 20)
    end
  end
  last.message = ("%s (gave up after %d attempts)"):format(last.message, attempts)
  error(last, 0)
end

--- The pool's name in a cloud: unique per run, in every resource's name or tag.
function M.pool(cluster) return cluster.uid or cluster.id end

--- Polls `alive()` (→ list of ids not yet gone; it may also re-send the termination) until it
--- is empty, or raises CleanupFailed after `timeout` seconds.
function M.wait_gone(cloud, cluster, alive, timeout, interval)
  local deadline = os.time() + timeout
  while true do
    local left = alive()
    if #left == 0 then return end
    if os.time() > deadline then
      errors.raise("CleanupFailed", ("sky.%s: instances %s of pool %s still exist after %d s")
        :format(cloud, table.concat(left, ", "), M.pool(cluster), timeout))
    end
    require("sky").sleep(interval or 2)
  end
end

--- Offers of `cloud` from the shipped catalog for request `spec`, restricted to `regions`.
function M.catalog_offers(cloud, spec, regions)
  local catalog = require "providers.catalog"
  local q = {}
  for k, v in pairs(spec or {}) do q[k] = v end
  q.provider = cloud
  q.region = q.region or regions
  local out = {}
  for _, o in ipairs(catalog.query(catalog.snapshot(), q)) do
    local c = {}
    for k, v in pairs(o) do c[k] = v end
    out[#out + 1] = c
  end
  return out
end

--- Copies the fields of the provider class `class` onto `self` (providers are plain tables to
--- the broker) and returns self.
function M.install(self, class)
  for k, v in pairs(class) do
    if type(v) == "function" then self[k] = v end
  end
  return self
end

return M
