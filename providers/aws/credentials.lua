-- AWS credentials, found where the AWS CLI and SDKs look (in their order):
--   1. a profile named by sky.aws{profile = ...}: only that profile, in the files below;
--   2. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) in the environment;
--   3. profile $AWS_PROFILE, else "default", in $AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials,
--      sections [name]) and $AWS_CONFIG_FILE (~/.aws/config, sections [profile name] or
--      [default]); a key in the credentials file wins over the same key in the config file.
-- The region comes from sky.aws{region = ...}, else $AWS_REGION, $AWS_DEFAULT_REGION, else the
-- profile's `region`. Secrets never appear in messages: `source` says where they were found.
local errors = require "sky.errors"

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

local function _from_profile(profile)
  local cred_path, conf_path = M.files()
  local creds, conf = _read(cred_path, false), _read(conf_path, true)
  local c = creds and creds[profile]
  local g = conf and conf[profile]
  if not c and not g then return nil end
  local function get(k) return (c and c[k] ~= "" and c[k]) or (g and g[k] ~= "" and g[k]) or nil end
  local id, secret = get("aws_access_key_id"), get("aws_secret_access_key")
  local where = (c and c.aws_access_key_id) and cred_path or conf_path
  return {
    access_key_id = id, secret_access_key = secret, session_token = get("aws_session_token"),
    region = get("region"), source = ("profile '%s' in %s"):format(profile, where),
  }, cred_path, conf_path
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
  local c, cred_path, conf_path = _from_profile(name)
  if not c then
    cred_path, conf_path = M.files()
    errors.raise("NoCredentials", ("sky.aws: no AWS credentials: %sprofile '%s' is in neither %s nor %s; %s")
      :format(profile and "" or "no AWS_ACCESS_KEY_ID in the environment, and ", name, cred_path, conf_path, FIX))
  end
  if not (c.access_key_id and c.secret_access_key) then
    errors.raise("NoCredentials", ("sky.aws: %s has no %s; %s"):format(c.source,
      c.access_key_id and "aws_secret_access_key" or "aws_access_key_id", FIX))
  end
  c.region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or c.region
  return c
end

--- For `skyhost check`: found, where (never the secret).
function M.describe(profile)
  local ok, c = pcall(M.resolve, profile)
  if ok then return true, c.source end
  return false, errors.is(c) and c.message or tostring(c)
end

return M
