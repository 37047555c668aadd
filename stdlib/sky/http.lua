-- sky.http: HTTP requests on the host's loop (libcurl multi, host/http/http.cpp). A request yields the
-- calling coroutine until the response is in, so requests made from sky.spawn'ed coroutines
-- overlap; outside a coroutine the call pumps the loop in place.
--
--   local r = sky.http.request { method = "POST", url = "http://127.0.0.1:8080/x",
--                                headers = { ["Content-Type"] = "text/plain" }, body = "hi",
--                                timeout = 5 }
--   r.status, r.body, r.headers["content-type"], r.headers[1].name, r.headers[1].value
--
-- Any HTTP status is a response (check r.ok or r.status); a request that gets no response
-- (refused, timed out, reset, bad TLS) raises an HttpError naming the URL and the reason.
local chttp = require "skyhost.http"
local errors = require "sky.errors"
local json = require "sky.json"
local options = require "sky.options"
local sched = require "sky.internal.sched"

local M = {}

---@class sky.http.request
---@field method? string            default "GET"
---@field url string                http:// or https://
---@field headers? table            name = value (or {values}), and/or a list of {name, value}
---@field body? string
---@field json? any                 sent as JSON with Content-Type application/json
---@field timeout? number           seconds for the whole exchange (default 30)
---@field follow? boolean           follow redirects (default true)
---@field aws? table                sign with AWS SigV4: {access_key_id, secret_access_key,
---                                 session_token?, region, service}

---@class sky.http.response
---@field status integer
---@field ok boolean                status is 2xx
---@field headers table             [i] = {name=, value=} as received; [lowercased name] = value
---@field body string
---@field url string                after redirects

--- Seconds a request may take, connecting included, when `timeout` is not given.
M.default_timeout = 30

local REQUEST = {
  method = "string",
  url = "string",
  headers = "table",
  body = "string",
  json = "table|string|number|boolean|userdata",
  timeout = "number",
  follow = "boolean",
  aws = "table",
}

-- Same as REQUEST without what the helper's arguments give.
local function _without(schema, ...)
  local out = {}
  for k, v in pairs(schema) do out[k] = v end
  for _, k in ipairs({ ... }) do out[k] = nil end
  return out
end
local GET = _without(REQUEST, "method", "url")
local POST = _without(REQUEST, "method", "url", "body", "json")

local function _bad(what, fmt, ...)
  errors.raise("BadOption", what .. ": " .. fmt:format(...))
end

local function _header_value(what, name, v)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then _bad(what, "header '%s' must be a string, got %s", name, type(v)) end
  return v
end

-- Headers as a list of {name, value}: list entries ({name, value} or {name=, value=}) in order,
-- then map entries (name = value, or name = {values...}) sorted by name.
local function _headers(what, h)
  local out, names = {}, {}
  for k, v in pairs(h) do
    if math.type(k) == "integer" then
      if type(v) ~= "table" then _bad(what, "headers[%d] must be {name, value}", k) end
    elseif type(k) == "string" then
      names[#names + 1] = k
    else
      _bad(what, "header names must be strings, got %s", type(k))
    end
  end
  for i, pair in ipairs(h) do
    local name, value = pair.name or pair[1], pair.value or pair[2]
    if type(name) ~= "string" then _bad(what, "headers[%d] has no name", i) end
    out[#out + 1] = { name, _header_value(what, name, value) }
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local v = h[name]
    if type(v) == "table" then
      for _, x in ipairs(v) do out[#out + 1] = { name, _header_value(what, name, x) } end
    else
      out[#out + 1] = { name, _header_value(what, name, v) }
    end
  end
  for _, pair in ipairs(out) do
    if not pair[1]:find("^[%w!#$%%&'*+.^_`|~-]+$") then
      _bad(what, "bad header name '%s'", pair[1])
    end
    if pair[2]:find("[\r\n%z]") then _bad(what, "header '%s' has a line break in its value", pair[1]) end
  end
  return out
end

local AWS = {
  access_key_id = "string",
  secret_access_key = "string",
  session_token = "string",
  region = "string",
  service = "string",
}

-- libcurl's CURLOPT_AWS_SIGV4 takes "provider1:provider2:region:service"; colons would split.
local function _sigv4(what, aws, headers)
  options.check(what .. " aws", aws, AWS)
  for _, k in ipairs({ "access_key_id", "secret_access_key", "region", "service" }) do
    if aws[k] == nil or aws[k] == "" then _bad(what, "aws.%s is required to sign a request", k) end
  end
  for _, k in ipairs({ "region", "service" }) do
    if not aws[k]:find("^[%w%-_.]+$") then _bad(what, "aws.%s '%s' is not a region or service name", k, aws[k]) end
  end
  if aws.access_key_id:find(":") then _bad(what, "aws.access_key_id must not contain ':'") end
  if aws.session_token then headers[#headers + 1] = { "X-Amz-Security-Token", aws.session_token } end
  return "aws:amz:" .. aws.region .. ":" .. aws.service
end

local function _has_header(list, name)
  name = name:lower()
  for _, pair in ipairs(list) do
    if pair[1]:lower() == name then return true end
  end
  return false
end

-- Checks a request table and turns it into what skyhost.http.start takes.
local function _prepare(what, req)
  if type(req) ~= "table" then
    errors.raise("BadOption", ("%s: expected a table, got %s"):format(what, type(req)))
  end
  options.check(what, req, REQUEST)
  local method = req.method or "GET"
  if not method:find("^[%w!#$%%&'*+.^_`|~-]+$") then _bad(what, "bad method '%s'", method) end
  local url = req.url
  if url == nil then _bad(what, "option 'url' is required") end
  if not (url:find("^[hH][tT][tT][pP]://.") or url:find("^[hH][tT][tT][pP][sS]://.")) then
    _bad(what, "url must start with http:// or https://, got '%s'", url)
  end
  local timeout = req.timeout or M.default_timeout
  if timeout <= 0 or timeout ~= timeout then _bad(what, "option 'timeout' must be > 0 seconds") end
  if req.body ~= nil and req.json ~= nil then _bad(what, "give 'body' or 'json', not both") end
  local headers = _headers(what, req.headers or {})
  local sigv4 = req.aws and _sigv4(what, req.aws, headers)
  local body = req.body
  if req.json ~= nil then
    body = json.encode(req.json)
    if not _has_header(headers, "Content-Type") then
      headers[#headers + 1] = { "Content-Type", "application/json" }
    end
  end
  return {
    method = method,
    url = url,
    headers = headers,
    body = body,
    timeout_ms = math.max(1, math.floor(timeout * 1000 + 0.5)),
    follow = req.follow,
    aws_sigv4 = sigv4 or nil,
    username = sigv4 and req.aws.access_key_id or nil,
    password = sigv4 and req.aws.secret_access_key or nil,
  }
end

-- The response as users see it: headers both as a list and by lowercased name.
local function _response(raw)
  local headers = {}
  for i, pair in ipairs(raw.headers) do
    local name, value = pair[1], pair[2]
    headers[i] = { name = name, value = value }
    local k = name:lower()
    -- Repeated headers join as HTTP defines (RFC 9110 5.3); the list keeps each one.
    headers[k] = headers[k] and (headers[k] .. ", " .. value) or value
  end
  return {
    status = raw.status,
    ok = raw.status >= 200 and raw.status < 300,
    headers = headers,
    body = raw.body,
    url = raw.url,
  }
end

-- Runs a prepared request: response, or nil and an HttpError.
local function _perform(r)
  local id = chttp.start(r)
  local settled = false
  -- Interrupted, or the coroutine closed while waiting: abort the transfer.
  local _guard <close> = setmetatable({}, {
    __close = function()
      if not settled then chttp.cancel(id) end
    end,
  })
  sched.await(id)
  settled = true
  local raw, err, kind = chttp.result(id)
  if not raw then
    return nil, errors.new("HttpError", err, { url = r.url, method = r.method, kind = kind })
  end
  return _response(raw)
end

--- Sends a request and waits for the response: {status, ok, headers, body, url}. Options:
--- method ("GET"), url, headers (name = value map and/or list of {name, value}), body (string)
--- or json (a value sent as JSON, with Content-Type application/json), timeout (seconds for
--- the whole exchange, default 30), follow (redirects, default true), aws (sign the request with
--- AWS Signature Version 4, by libcurl: {access_key_id, secret_access_key, session_token?,
--- region, service}; an X-Amz-Date header, when given, fixes the signing time).
--- Raises BadOption for a bad request and HttpError (fields url, method, kind: "timeout",
--- "connect", "resolve", "tls", "send", "receive", "redirect" or "other") when no response came.
---@param req sky.http.request
---@return sky.http.response
function M.request(req)
  local resp, err = _perform(_prepare("sky.http.request", req))
  if not resp then error(err, 0) end
  return resp
end

--- Like request, but a transport failure returns nil, err (the HttpError) instead of raising.
--- A bad request still raises.
---@param req sky.http.request
---@return sky.http.response|nil resp, table|nil err
function M.try(req)
  return _perform(_prepare("sky.http.try", req))
end

local function _with(opts, schema, what, fields)
  local req = {}
  for k, v in pairs(options.check(what, opts, schema)) do req[k] = v end
  for k, v in pairs(fields) do req[k] = v end
  return req
end

--- GET `url`; opts as for request (no method or url).
---@param url string
---@param opts? sky.http.request
---@return sky.http.response
function M.get(url, opts)
  return M.request(_with(opts, GET, "sky.http.get", { method = "GET", url = url }))
end

--- POST `body` to `url`: a string is sent as is, a table as JSON. opts as for request.
---@param url string
---@param body string|table
---@param opts? sky.http.request
---@return sky.http.response
function M.post(url, body, opts)
  local fields = { method = "POST", url = url }
  if type(body) == "table" then fields.json = body else fields.body = body end
  return M.request(_with(opts, POST, "sky.http.post", fields))
end

return M
