-- Google credentials and OAuth 2.0 access tokens, found where the Google tools look:
--   1. a key file named by sky.gcp{credentials = "path"};
--   2. $GOOGLE_APPLICATION_CREDENTIALS;
--   3. the application-default credentials of `gcloud auth application-default login`:
--      $CLOUDSDK_CONFIG/application_default_credentials.json (~/.config/gcloud/...).
-- A file is either a service-account key ("type": "service_account": a JWT signed RS256 with its
-- private key is exchanged for a token at its token_uri, RFC 7523 §2.1) or an authorized user
-- ("type": "authorized_user": its refresh token is exchanged, RFC 6749 §6). Tokens are cached
-- until a minute before they expire. Secrets never appear in messages: `source` says where the
-- credentials were found.
local crypto = require "skyhost.crypto"
local encoding = require "skyhost.encoding"
local errors = require "sky.errors"
local http = require "sky.http"
local json = require "sky.json"

local M = {}

M.TOKEN_URI = "https://oauth2.googleapis.com/token"
M.SCOPE = "https://www.googleapis.com/auth/compute"
M.JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
M.LIFETIME = 3600  -- seconds a signed assertion is valid (Google's maximum)

local FIX = "create a service-account key (`gcloud iam service-accounts keys create key.json "
  .. "--iam-account NAME@PROJECT.iam.gserviceaccount.com`) and set GOOGLE_APPLICATION_CREDENTIALS "
  .. "to its path, or run `gcloud auth application-default login`, or pass sky.gcp{credentials = \"key.json\"}"

local function _env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

local function _fail(fmt, ...) errors.raise("NoCredentials", "sky.gcp: " .. fmt:format(...)) end

--- Path of the application-default credentials file gcloud writes.
function M.adc_path()
  local dir = _env("CLOUDSDK_CONFIG") or ((os.getenv("HOME") or "") .. "/.config/gcloud")
  return dir .. "/application_default_credentials.json"
end

--- base64url without padding (RFC 7515 §2).
function M.b64url(bytes)
  return (encoding.base64_encode(bytes):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" }))
end

local REQUIRED = {
  service_account = { "client_email", "private_key" },
  authorized_user = { "client_id", "client_secret", "refresh_token" },
}

--- Credentials from the JSON text of a key file: {type, source, token_uri, and the type's fields}.
--- Raises NoCredentials naming `source` and what is wrong.
function M.parse(text, source)
  local doc, err = json.try_decode(text)
  if type(doc) ~= "table" then _fail("%s is not a JSON credentials file (%s); %s", source, err or "not an object", FIX) end
  local kind = doc.type
  if not REQUIRED[kind] then
    _fail("%s has type '%s'; skyhost reads 'service_account' keys and 'authorized_user' credentials; %s",
      source, tostring(kind), FIX)
  end
  local c = { type = kind, source = source, token_uri = doc.token_uri or M.TOKEN_URI }
  for _, k in ipairs(REQUIRED[kind]) do
    if type(doc[k]) ~= "string" or doc[k] == "" then _fail("%s (%s) has no %s; %s", source, kind, k, FIX) end
    c[k] = doc[k]
  end
  if not c.token_uri:find("^https?://[^/]") then _fail("%s: token_uri '%s' is not an http(s) URL", source, c.token_uri) end
  c.private_key_id, c.project_id, c.quota_project_id = doc.private_key_id, doc.project_id, doc.quota_project_id
  return c
end

local function _read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- Credentials from the first place that has them (see the top of this file), or raises
--- NoCredentials saying where it looked and how to fix it.
function M.resolve(path)
  if path then
    local text = _read(path)
    if not text then _fail("cannot read the credentials file %s (sky.gcp{credentials = ...}); %s", path, FIX) end
    return M.parse(text, path)
  end
  local env = _env("GOOGLE_APPLICATION_CREDENTIALS")
  if env then
    local text = _read(env)
    if not text then _fail("GOOGLE_APPLICATION_CREDENTIALS names %s, which cannot be read; %s", env, FIX) end
    return M.parse(text, env .. " (GOOGLE_APPLICATION_CREDENTIALS)")
  end
  local adc = M.adc_path()
  local text = _read(adc)
  if not text then
    _fail("no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set and %s does not exist; %s", adc, FIX)
  end
  return M.parse(text, adc)
end

--- The signed JWT a service account sends for a token (RFC 7523 §2.1), issued at `now`.
function M.assertion(creds, now, scope)
  local header = { alg = "RS256", typ = "JWT", kid = creds.private_key_id }
  local claims = { iss = creds.client_email, scope = scope or M.SCOPE, aud = creds.token_uri, iat = now,
    exp = now + M.LIFETIME }
  local input = M.b64url(json.encode(header)) .. "." .. M.b64url(json.encode(claims))
  local sig, err = crypto.sign_rs256(creds.private_key, input)
  if not sig then _fail("cannot sign with the private key of %s: %s", creds.source, err) end
  return input .. "." .. M.b64url(sig)
end

local function _form(fields)
  local parts = {}
  for _, kv in ipairs(fields) do
    parts[#parts + 1] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(ch)
      return ("%%%02X"):format(ch:byte())
    end)
  end
  return table.concat(parts, "&")
end

--- The token request for `creds` at `now`: {url, body} (form-encoded POST).
function M.token_request(creds, now, scope)
  if creds.type == "service_account" then
    return { url = creds.token_uri, body = _form { { "grant_type", M.JWT_GRANT }, { "assertion", M.assertion(creds, now, scope) } } }
  end
  return { url = creds.token_uri, body = _form { { "grant_type", "refresh_token" }, { "client_id", creds.client_id },
    { "client_secret", creds.client_secret }, { "refresh_token", creds.refresh_token } } }
end

--- A token source for `creds`: source:token() → access token (cached until 60 s before expiry),
--- source:invalidate() drops the cached one. A refused exchange raises AuthFailed with the
--- server's reason and how to fix it; no answer raises GcpError with retry = true.
function M.source(creds, opts)
  opts = opts or {}
  local src = { creds = creds }
  function src:token()
    local now = os.time()
    if self._token and now < self._expires - 60 then return self._token end
    local req = M.token_request(creds, now, opts.scope)
    local resp, herr = http.try { method = "POST", url = req.url, body = req.body, timeout = opts.timeout or 30,
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }
    if not resp then
      errors.raise("GcpError", ("sky.gcp: no answer from the token endpoint %s: %s"):format(req.url, herr.message),
        { retry = true })
    end
    local doc = json.try_decode(resp.body)
    if not resp.ok or type(doc) ~= "table" or type(doc.access_token) ~= "string" then
      local why = type(doc) == "table" and (tostring(doc.error or "") .. ": " .. tostring(doc.error_description or ""))
        or resp.body:sub(1, 200)
      if resp.status >= 500 or resp.status == 429 then
        errors.raise("GcpError", ("sky.gcp: the token endpoint %s answered HTTP %d (%s)"):format(req.url, resp.status,
          why), { retry = true, status = resp.status })
      end
      errors.raise("AuthFailed", ("sky.gcp: the token endpoint %s refused the credentials of %s (HTTP %d %s); %s")
        :format(req.url, creds.source, resp.status, why, FIX), { status = resp.status })
    end
    self._token = doc.access_token
    self._expires = now + (tonumber(doc.expires_in) or 3600)
    return self._token
  end
  function src:invalidate() self._token = nil end
  return src
end

--- For `skyhost check`: found, where (never the secret).
function M.describe(path)
  local ok, c = pcall(M.resolve, path)
  if ok then return true, c.source .. " (" .. c.type .. ")" end
  return false, errors.is(c) and c.message or tostring(c)
end

return M
