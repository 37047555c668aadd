-- AWS credentials, found where the AWS CLI and SDKs look (in their order):
--   1. a profile named by sky.aws{profile = ...}: only that profile, in the files below;
--   2. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) in the environment;
--   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN;
--   4. profile $AWS_PROFILE, else "default", in $AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials,
--      sections [name]) and $AWS_CONFIG_FILE (~/.aws/config, sections [profile name] or
--      [default]); a key in the credentials file wins over the same key in the config file. In
--      a profile: role_arn (+ source_profile or credential_source, or web_identity_token_file),
--      then keys, SSO (providers/aws/sso.lua), then credential_process (providers/aws/sources.lua);
--   5. container credentials (AWS_CONTAINER_CREDENTIALS_*_URI), then the EC2 instance metadata
--      service (IMDSv2; not with AWS_EC2_METADATA_DISABLED=true).
-- The region comes from sky.aws{region = ...}, else $AWS_REGION, $AWS_DEFAULT_REGION, else the
-- profile's `region`. Secrets never appear in messages: `source` says where they were found.
local errors = require "sky.errors"
local sources = require "providers.aws.sources"
local sso = require "providers.aws.sso"

local M = {}

local function _home_path(p)
  if p:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. p:sub(2) end
  return p
end

local function _env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

--- Paths of the shared credentials and config files.
function M.files()
  return _home_path(_env("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"),
    _home_path(_env("AWS_CONFIG_FILE") or "~/.aws/config")
end

--- Sections of an INI file as the AWS tools read it: {[section] = {key = value}}, or nil if the
--- file cannot be read. `config` = true: "[profile x]" names section x.
function M.parse_ini(text, config)
  local sections, cur = {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local name = line:match("^%s*%[%s*(.-)%s*%]%s*$")
    if name then
      if config then name = name:match("^profile%s+(.+)$") or name end
      sections[name] = sections[name] or {}
      cur = sections[name]
    elseif cur and not line:find("^%s*[#;]") then
      local k, v = line:match("^%s*([%w_%.%-]+)%s*=%s*(.-)%s*$")
      if k then cur[k:lower()] = v end
    end
  end
  return sections
end

local function _read(path, config)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return M.parse_ini(text, config)
end

local _from_profile

-- A source profile's keys (role chains follow source_profile at most 5 deep).
local function _source(name, depth)
  if depth > 5 then
    errors.raise("NoCredentials", "sky.aws: source_profile chain longer than 5 (a loop?) at '" .. name .. "'")
  end
  local c, cred_path, conf_path = _from_profile(name, depth + 1)
  if not c then
    errors.raise("NoCredentials",
      ("sky.aws: source_profile '%s' is in neither %s nor %s"):format(name, cred_path, conf_path))
  end
  if not (c.access_key_id and c.secret_access_key) then
    errors.raise("NoCredentials", ("sky.aws: source_profile '%s' has no keys"):format(name))
  end
  return c
end

_from_profile = function(profile, depth)
  local cred_path, conf_path = M.files()
  local creds, conf = _read(cred_path, false), _read(conf_path, true)
  local c = creds and creds[profile]
  local g = conf and conf[profile]
  if not c and not g then return nil, cred_path, conf_path end
  local function get(k) return (c and c[k] ~= "" and c[k]) or (g and g[k] ~= "" and g[k]) or nil end
  local id, secret = get("aws_access_key_id"), get("aws_secret_access_key")
  local where = (c and c.aws_access_key_id) and cred_path or conf_path
  local out
  if get("role_arn") and get("web_identity_token_file") then
    out = sources.web_identity(get("web_identity_token_file"), get("role_arn"), get("region"), get("endpoint_url"),
      get("role_session_name"))
  elseif get("role_arn") then
    out = sources.assume_role(profile, get, function(src) return _source(src, depth or 0) end)
  elseif not id and not secret and sso.applies(get) then
    out = sso.credentials(profile, get, function(name) return conf and conf[name] end)
  elseif not id and not secret and get("credential_process") then
    out = sources.credential_process(get("credential_process"), profile)
  else
    out = { access_key_id = id, secret_access_key = secret, session_token = get("aws_session_token"),
      source = ("profile '%s' in %s"):format(profile, where) }
  end
  out.region = get("region")
  return out, cred_path, conf_path
end

local FIX = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`, or name a "
  .. "profile of ~/.aws/credentials with sky.aws{profile = \"name\"}"

--- Credentials for `profile` (nil: the default chain). Returns {access_key_id,
--- secret_access_key, session_token, region, source} or raises NoCredentials saying where it
--- looked and how to fix it.
function M.resolve(profile)
  if profile == nil then
    local id, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    if id or secret then
      if not (id and secret) then
        errors.raise("NoCredentials", ("sky.aws: %s is set but %s is not; set both"):format(
          id and "AWS_ACCESS_KEY_ID" or "AWS_SECRET_ACCESS_KEY", id and "AWS_SECRET_ACCESS_KEY" or "AWS_ACCESS_KEY_ID"))
      end
      local region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
      return { access_key_id = id, secret_access_key = secret, session_token = _env("AWS_SESSION_TOKEN"),
        region = region, source = "environment (AWS_ACCESS_KEY_ID)" }
    end
  end
  local name = profile or _env("AWS_PROFILE") or "default"
  local c, cred_path, conf_path
  if profile == nil then c = sources.web_identity() end
  if not c then c, cred_path, conf_path = _from_profile(name) end
  if not c and profile == nil and not _env("AWS_PROFILE") then
    -- no profile at all: the machine's own credentials (a container's, an EC2 instance's)
    c = sources.container() or sources.imds()
  end
  if not c then
    cred_path, conf_path = M.files()
    errors.raise("NoCredentials", ("sky.aws: no AWS credentials: %sprofile '%s' is in neither %s nor %s%s; %s")
      :format(profile and "" or "no AWS_ACCESS_KEY_ID in the environment, and ", name, cred_path, conf_path,
        profile and "" or (sources.imds_disabled() and ", no container credentials (instance metadata disabled)"
          or ", no container credentials, no instance metadata credentials"), FIX))
  end
  if not (c.access_key_id and c.secret_access_key) then
    errors.raise("NoCredentials", ("sky.aws: %s has no %s; %s"):format(c.source,
      c.access_key_id and "aws_secret_access_key" or "aws_access_key_id", FIX))
  end
  local region = c.region
  c.region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or region
  return c
end

-- Seconds since the epoch of an ISO 8601 UTC time ("2026-12-03T14:00:00Z", fractions and
-- "+00:00" allowed), or nil.
local function _epoch(iso)
  local y, mo, d, h, mi, sec = iso:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end -- days from civil (Howard Hinnant's algorithm)
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

--- When credentials `c` expire, in seconds since the epoch (nil: they do not). `expires` is an
--- ISO 8601 time (STS, container, instance metadata, credential_process) or milliseconds (SSO).
function M.expires_at(c)
  local e = c.expires
  if type(e) == "number" then return e // 1000 end
  if type(e) == "string" then return _epoch(e) end
  return nil
end

--- Do credentials `c` expire within `margin` seconds of `now` (default: the clock)?
function M.expiring(c, margin, now)
  local at = M.expires_at(c)
  return at ~= nil and at - (now or os.time()) < margin
end

--- For `skyhost check`: found, where (never the secret).
function M.describe(profile)
  local ok, c = pcall(M.resolve, profile)
  if ok then return true, c.source end
  return false, errors.is(c) and c.message or tostring(c)
end

return M
