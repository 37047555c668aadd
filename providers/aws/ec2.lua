-- The EC2 Query API (version 2016-11-15): form-encoded POST bodies, XML answers, signed with
-- SigV4 by libcurl (sky.http's `aws` option). Errors come back as structured skyhost errors with
-- the codes the broker blocks on (docs/broker.md): capacity → NoCapacity, quota →
-- QuotaExceeded, credentials → AuthFailed; throttling and 5xx are retried with backoff and
-- jitter before they are errors.
local errors = require "sky.errors"
local http = require "sky.http"
local encoding = require "skyhost.encoding"

local M = {}

M.VERSION = "2016-11-15"

-- EC2 error code → skyhost code, and the scope the broker blocks (nil: the code's default).
M.ERROR_CODES = {
  InsufficientInstanceCapacity = "NoCapacity",
  InsufficientHostCapacity = "NoCapacity",
  InsufficientReservedInstanceCapacity = "NoCapacity",
  SpotMaxPriceTooLow = "NoCapacity",
  InsufficientCapacity = "NoCapacity",
  Unsupported = "NoCapacity",
  VcpuLimitExceeded = "QuotaExceeded",
  InstanceLimitExceeded = "QuotaExceeded",
  MaxSpotInstanceCountExceeded = "QuotaExceeded",
  AuthFailure = "AuthFailed",
  UnauthorizedOperation = "AuthFailed",
  InvalidClientTokenId = "AuthFailed",
  SignatureDoesNotMatch = "AuthFailed",
  OptInRequired = "AuthFailed",
  PendingVerification = "AuthFailed",
}

local RETRY = { RequestLimitExceeded = true, Throttling = true, ServiceUnavailable = true,
  InternalError = true, Unavailable = true }

--- RFC 3986 percent-encoding of everything but the unreserved characters, as AWS wants it.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function _flatten(prefix, v, out)
  if type(v) == "table" then
    if #v > 0 or next(v) == nil then
      for i, x in ipairs(v) do _flatten(prefix .. "." .. i, x, out) end
    else
      for k, x in pairs(v) do _flatten(prefix == "" and k or (prefix .. "." .. k), x, out) end
    end
  elseif type(v) == "boolean" then
    out[#out + 1] = { prefix, v and "true" or "false" }
  else
    out[#out + 1] = { prefix, tostring(v) }
  end
end

--- The form body of `action` with `params`: nested tables as the EC2 protocol serialises them
--- (lists as Name.1, Name.2; structures as Name.Member), keys sorted after Action and Version.
function M.body(action, params)
  local pairs_ = {}
  for k, v in pairs(params or {}) do _flatten(k, v, pairs_) end
  table.sort(pairs_, function(a, b) return a[1] < b[1] end)
  local parts = { "Action=" .. M.encode(action), "Version=" .. M.VERSION }
  for _, p in ipairs(pairs_) do parts[#parts + 1] = M.encode(p[1]) .. "=" .. M.encode(p[2]) end
  return table.concat(parts, "&")
end

--- The first child of `el` named `name` (nil if none).
function M.child(el, name)
  if not el then return nil end
  for _, c in ipairs(el) do
    if c.name == name then return c end
  end
  return nil
end

--- Follows a path of child names: M.find(doc, "instancesSet", "item") → element or nil.
function M.find(el, ...)
  for _, name in ipairs({ ... }) do el = M.child(el, name) end
  return el
end

--- Text of the child at the path, or nil.
function M.text(el, ...)
  local c = M.find(el, ...)
  return c and c.text or nil
end

--- The <item> children of the set at the path.
function M.items(el, ...)
  local set = M.find(el, ...)
  local out = {}
  for _, c in ipairs(set or {}) do
    if c.name == "item" then out[#out + 1] = c end
  end
  return out
end

local function _error(resp, action, region)
  local doc = encoding.xml_decode(resp.body)
  local e = doc and (M.find(doc, "Errors", "Error") or (doc.name == "ErrorResponse" and M.find(doc, "Error")))
  local code = e and M.text(e, "Code") or ("HTTP" .. resp.status)
  local message = e and M.text(e, "Message") or resp.body:sub(1, 200)
  local mapped = M.ERROR_CODES[code]
  local hint = ""
  if mapped == "AuthFailed" then
    hint = " (check the credentials `skyhost check` reports: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
      .. "~/.aws/credentials, or sky.aws{profile = ...}; the key needs EC2 permissions)"
  elseif mapped == "QuotaExceeded" then
    hint = (" (the quota '%s' of region %s: ask AWS to raise it in the Service Quotas console)"):format(code, region)
  end
  return errors.new(mapped or "AwsError", ("EC2 %s in %s: %s: %s%s"):format(action, region, code, message, hint),
    { aws_code = code, status = resp.status, retry = RETRY[code] or (resp.status >= 500 and not mapped) })
end

--- A client: {endpoint, region, credentials = {access_key_id, secret_access_key,
--- session_token}, retries (default 5), backoff (first delay in seconds, default 0.2),
--- timeout (seconds per request, default 30), sleep (function(seconds), default sky.sleep)}.
function M.client(opts)
  return setmetatable(opts, { __index = M })
end

--- Calls `action`: the response's root element, or raises (after retries for throttling and
--- 5xx, with exponential backoff and full jitter).
function M:call(action, params)
  local body = M.body(action, params)
  local attempts = (self.retries or 5) + 1
  local delay = self.backoff or 0.2
  local last
  for i = 1, attempts do
    local resp, herr = http.try {
      method = "POST", url = self.endpoint, body = body, timeout = self.timeout or 30,
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" },
      aws = { access_key_id = self.credentials.access_key_id, secret_access_key = self.credentials.secret_access_key,
        session_token = self.credentials.session_token, region = self.region, service = "ec2" },
    }
    if resp and resp.ok then
      local doc, err = encoding.xml_decode(resp.body)
      if not doc then
        errors.raise("AwsError", ("EC2 %s in %s: unreadable answer from %s: %s"):format(action, self.region, self.endpoint, err))
      end
      return doc
    end
    if resp then
      last = _error(resp, action, self.region)
      if not last.retry then error(last, 0) end
    else
      last = errors.new("AwsError", ("EC2 %s in %s: no answer from %s: %s"):format(action, self.region, self.endpoint,
        herr.message), { retry = true })
    end
    if i < attempts then
      local sleep = self.sleep or require("sky").sleep
      sleep(math.random() * delay)
      delay = math.min(delay * 2, 20)
    end
  end
  last.message = ("%s (gave up after %d attempts)"):format(last.message, attempts)
  error(last, 0)
end

return M
