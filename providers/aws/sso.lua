-- AWS IAM Identity Center (SSO) credentials from the token `aws sso login` cached in
-- ~/.aws/sso/cache: the profile's sso_account_id and sso_role_name, with sso_session (a
-- [sso-session NAME] section) or the legacy sso_start_url + sso_region in the profile. The
-- cache file is named by the SHA-1 of the session name (or of the start URL, legacy); the token
-- buys the role's credentials from the SSO portal (GetRoleCredentials). See docs/aws.md.
local errors = require "sky.errors"
local http = require "sky.http"
local json = require "sky.json"

local M = {}

local function _fail(fmt, ...) errors.raise("NoCredentials", "sky.aws: " .. fmt:format(...)) end

local function _rol(x, n) return ((x << n) | (x >> (32 - n))) & 0xffffffff end

--- SHA-1 of `s` as 40 hex digits (FIPS 180-4), for the cache file's name.
function M.sha1(s)
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  local len = #s
  s = s .. "\128" .. string.rep("\0", (55 - len) % 64) .. string.pack(">I8", len * 8)
  local w = {}
  for chunk = 1, #s, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", s, chunk + i * 4) end
    for i = 16, 79 do w[i] = _rol(w[i - 3] ~ w[i - 8] ~ w[i - 14] ~ w[i - 16], 1) end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then
        f, k = (b & c) | ((~b) & d), 0x5A827999
      elseif i < 40 then
        f, k = b ~ c ~ d, 0x6ED9EBA1
      elseif i < 60 then
        f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
      else
        f, k = b ~ c ~ d, 0xCA62C1D6
      end
      local t = (_rol(a, 5) + (f & 0xffffffff) + e + k + w[i]) & 0xffffffff
      a, b, c, d, e = t, a, _rol(b, 30), c, d
    end
    h0, h1, h2, h3, h4 = (h0 + a) & 0xffffffff, (h1 + b) & 0xffffffff, (h2 + c) & 0xffffffff,
      (h3 + d) & 0xffffffff, (h4 + e) & 0xffffffff
  end
  return ("%08x%08x%08x%08x%08x"):format(h0, h1, h2, h3, h4)
end

local function _env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- Does the profile (its `get`) use SSO?
function M.applies(get) return get("sso_session") ~= nil or get("sso_start_url") ~= nil end

--- The role credentials of profile `profile`; `get` reads its keys, `section(name)` a section of
--- the config file.
function M.credentials(profile, get, section)
  local session, key, start, region = get("sso_session"), nil, get("sso_start_url"), get("sso_region")
  if session then
    local s = section("sso-session " .. session)
    if not s then _fail("profile '%s': sso_session '%s' has no [sso-session %s] section", profile, session, session) end
    start, region, key = s.sso_start_url, s.sso_region, session
  else
    key = start
  end
  local account, role = get("sso_account_id"), get("sso_role_name")
  if not (account and role and region) then
    _fail("profile '%s' uses SSO but lacks %s", profile,
      not account and "sso_account_id" or not role and "sso_role_name" or "sso_region")
  end
  local login = ("run `aws sso login --profile %s`"):format(profile)
  local path = (os.getenv("HOME") or "") .. "/.aws/sso/cache/" .. M.sha1(key) .. ".json"
  local f = io.open(path, "r")
  if not f then _fail("profile '%s': no SSO token cached for %s (%s): %s", profile, start or key, path, login) end
  local cache = json.try_decode(f:read("a"))
  f:close()
  if type(cache) ~= "table" or type(cache.accessToken) ~= "string" then
    _fail("profile '%s': %s holds no accessToken: %s", profile, path, login)
  end
  local expires = type(cache.expiresAt) == "string" and cache.expiresAt:sub(1, 19) or ""
  if expires <= os.date("!%Y-%m-%dT%H:%M:%S") then
    _fail("profile '%s': the SSO token in %s has expired: %s", profile, path, login)
  end
  local base = _env("AWS_ENDPOINT_URL_SSO") or _env("AWS_ENDPOINT_URL")
    or ("https://portal.sso.%s.amazonaws.com"):format(region)
  base = base:gsub("/+$", "")
  local url = ("%s/federation/credentials?account_id=%s&role_name=%s"):format(base, account, role:gsub("[^%w%-%._~]",
    function(c) return ("%%%02X"):format(c:byte()) end))
  local resp, herr = http.try { url = url, headers = { ["x-amz-sso_bearer_token"] = cache.accessToken }, timeout = 15 }
  if not resp then _fail("profile '%s': SSO portal %s: no answer: %s", profile, base, herr.message) end
  if resp.status == 401 or resp.status == 403 then
    _fail("profile '%s': the SSO portal refused the token: %s", profile, login)
  end
  if not resp.ok then _fail("profile '%s': SSO portal %s: HTTP %d", profile, base, resp.status) end
  local doc = json.try_decode(resp.body)
  local rc = type(doc) == "table" and doc.roleCredentials
  if type(rc) ~= "table" or type(rc.accessKeyId) ~= "string" then
    _fail("profile '%s': SSO portal gave no credentials", profile)
  end
  return { access_key_id = rc.accessKeyId, secret_access_key = rc.secretAccessKey, session_token = rc.sessionToken,
    expires = rc.expiration, source = ("SSO role %s of account %s (profile '%s', token of %s)"):format(role, account,
      profile, start or key) }
end

return M
