-- The Compute Engine API (v1, JSON over HTTPS) as sky.gcp uses it: bearer-token requests with
-- retries, operations waited, and errors mapped to the codes the broker blocks on
-- (docs/broker.md): a zone out of resources → NoCapacity (zone), a quota → QuotaExceeded
-- (region), 401/403 → AuthFailed (provider, with how to fix it); 429 and 5xx are retried with
-- backoff and jitter, honouring Retry-After.
local errors = require "sky.errors"
local http = require "sky.http"
local json = require "sky.json"

local M = {}

M.ENDPOINT = "https://compute.googleapis.com/compute/v1"

-- Error reasons/codes (HTTP `errors[].reason` and operation `errors[].code`) → skyhost code and
-- the scope the broker blocks.
M.ERROR_CODES = {
  ZONE_RESOURCE_POOL_EXHAUSTED = { "NoCapacity", "zone" },
  ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS = { "NoCapacity", "zone" },
  RESOURCE_POOL_EXHAUSTED = { "NoCapacity", "zone" },
  resourceExhausted = { "NoCapacity", "zone" },
  UNSUPPORTED_OPERATION = { "NoCapacity", "zone" },
  QUOTA_EXCEEDED = { "QuotaExceeded", "region" },
  quotaExceeded = { "QuotaExceeded", "region" },
  REGION_QUOTA_EXCEEDED = { "QuotaExceeded", "region" },
}

local AUTH_FIX = "check the credentials `skyhost check` reports (GOOGLE_APPLICATION_CREDENTIALS, "
  .. "`gcloud auth application-default login`, or sky.gcp{credentials = ...}); the account needs the "
  .. "Compute Instance Admin role (roles/compute.instanceAdmin.v1) on the project, and the Compute "
  .. "Engine API must be enabled (`gcloud services enable compute.googleapis.com`)"

--- A mapped error from an `error` object ({code, message, errors = {{reason|code, message}}})
--- of an HTTP answer or of an operation; `what` says which call.
function M.error_from(e, status, what, zone)
  e = type(e) == "table" and e or {}
  local list = type(e.errors) == "table" and e.errors or {}
  local reason, message
  for _, x in ipairs(list) do
    local r = type(x) == "table" and (x.reason or x.code)
    if r and M.ERROR_CODES[r] then reason, message = r, x.message break end
    reason, message = reason or r, message or (type(x) == "table" and x.message)
  end
  message = message or e.message or "no message"
  local mapped = reason and M.ERROR_CODES[reason]
  local code, scope, hint = "GcpError", nil, ""
  if mapped then
    code, scope = mapped[1], mapped[2]
    if code == "QuotaExceeded" then
      hint = " (raise the quota in the console's IAM & Admin > Quotas page for this region)"
    end
  elseif status == 401 or status == 403 then
    code, scope, hint = "AuthFailed", "provider", " (" .. AUTH_FIX .. ")"
  end
  local retry = not mapped and (status == 429 or (status or 0) >= 500 or reason == "rateLimitExceeded"
    or reason == "userRateLimitExceeded")
  return errors.new(code, ("sky.gcp: %s%s: %s%s%s"):format(what, zone and (" in " .. zone) or "",
    reason and (reason .. ": ") or "", message, hint), { gcp_reason = reason, status = status, scope = scope, retry = retry })
end

--- A client: {endpoint (default M.ENDPOINT), project, tokens (an auth.source), retries (5),
--- backoff (first delay, seconds, 0.2), timeout (seconds per request, 30), sleep (sky.sleep)}.
function M.client(opts)
  return setmetatable(opts, { __index = M })
end

--- The URL of `path` under the project: c:url("zones/%s/instances", zone).
function M:url(fmt, ...)
  return ("%s/projects/%s/" .. fmt):format(self.endpoint or M.ENDPOINT, self.project, ...)
end

local function _retry_after(resp)
  local v = resp and tonumber(resp.headers["retry-after"] or "")
  return v and math.min(v, 60) or nil
end

--- Sends `method` to `url` (with `body`, a table sent as JSON): the decoded answer, or raises the
--- mapped error after retries. `what` names the call in messages; `zone` where it was aimed.
function M:call(method, url, body, what, zone)
  local attempts = (self.retries or 5) + 1
  local delay = self.backoff or 0.2
  local last
  for i = 1, attempts do
    -- A token endpoint that does not answer, or answers 429/5xx, is retried like the API.
    local got, token = pcall(self.tokens.token, self.tokens)
    if not got and not (type(token) == "table" and token.retry) then error(token, 0) end
    local resp, herr
    if got then
      resp, herr = http.try { method = method, url = url, json = body, timeout = self.timeout or 30,
        headers = { Authorization = "Bearer " .. token, Accept = "application/json" } }
    end
    local wait
    if not got then
      last = token
    elseif resp and resp.ok then
      if resp.body == "" then return {} end
      local doc, err = json.try_decode(resp.body)
      if type(doc) ~= "table" then
        errors.raise("GcpError", ("sky.gcp: %s: unreadable answer from %s: %s"):format(what, url, err or "not an object"))
      end
      return doc
    elseif resp then
      local doc = json.try_decode(resp.body)
      last = M.error_from(type(doc) == "table" and doc.error or { message = resp.body:sub(1, 200) }, resp.status, what, zone)
      if resp.status == 404 and method == "GET" then return nil, last end
      if resp.status == 401 and i == 1 then
        self.tokens:invalidate()  -- an expired token: one fresh try
        last.retry = true
      end
      if not last.retry then error(last, 0) end
      wait = _retry_after(resp)
    else
      last = errors.new("GcpError", ("sky.gcp: %s: no answer from %s: %s"):format(what, url, herr.message), { retry = true })
    end
    if i < attempts then
      local sleep = self.sleep or require("sky").sleep
      sleep(wait or (math.random() * delay))
      delay = math.min(delay * 2, 20)
    end
  end
  last.message = ("%s (gave up after %d attempts)"):format(last.message, attempts)
  error(last, 0)
end

--- Waits for zone operation `op` (an Operation answer) to be DONE, through operations.wait (which
--- answers when done or after about two minutes); raises the operation's mapped error, if any.
function M:wait_operation(op, zone, what, timeout)
  local deadline = os.time() + (timeout or 600)
  while op.status ~= "DONE" do
    if os.time() > deadline then
      errors.raise("GcpError", ("sky.gcp: %s in %s: operation %s not done after %d s"):format(what, zone, op.name, timeout or 600))
    end
    op = self:call("POST", self:url("zones/%s/operations/%s/wait", zone, op.name), nil, what, zone)
  end
  if op.error then error(M.error_from(op.error, tonumber(op.httpErrorStatusCode), what, zone), 0) end
  return op
end

return M
