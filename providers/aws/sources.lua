-- AWS credential sources beyond keys in the environment or the shared files (those are in
-- providers/aws/credentials.lua, which calls these in the AWS SDKs' order; docs/aws.md):
--   credential_process   a profile's command printing {"Version": 1, "AccessKeyId", ...}
--   assume_role          a profile's role_arn + source_profile: STS AssumeRole
--   web_identity         AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (or the profile's
--                        web_identity_token_file + role_arn): STS AssumeRoleWithWebIdentity
--   container            AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI (ECS, EKS Pod Identity)
--   imds                 the EC2 instance metadata service, IMDSv2 (a session token first)
-- Each returns {access_key_id, secret_access_key, session_token, expires, source} or raises
-- NoCredentials saying what failed; `source` never holds a secret.
local ec2 = require "providers.aws.ec2"
local encoding = require "skyhost.encoding"
local errors = require "sky.errors"
local http = require "sky.http"
local json = require "sky.json"

local M = {}

local function _env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

local function _fail(fmt, ...) errors.raise("NoCredentials", "sky.aws: " .. fmt:format(...)) end

local function _read(path, what)
  local f, err = io.open(path, "r")
  if not f then _fail("cannot read %s: %s", what, err) end
  local text = f:read("a")
  f:close()
  return text
end

-- The credentials in a JSON document the SDKs' way (AccessKeyId, SecretAccessKey, and Token or
-- SessionToken, Expiration).
local function _from_json(doc, source, what)
  if type(doc) ~= "table" or type(doc.AccessKeyId) ~= "string" or type(doc.SecretAccessKey) ~= "string" then
    _fail("%s did not give AccessKeyId and SecretAccessKey", what)
  end
  return { access_key_id = doc.AccessKeyId, secret_access_key = doc.SecretAccessKey,
    session_token = doc.SessionToken or doc.Token, expires = doc.Expiration, source = source }
end

--- credential_process: runs `cmd` with the shell; its standard output is the JSON document.
function M.credential_process(cmd, profile)
  local what = ("credential_process of profile '%s'"):format(profile)
  local p = io.popen(cmd .. " 2>/dev/null", "r")
  if not p then _fail("%s: cannot run %s", what, cmd) end
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then _fail("%s (%s) failed with status %s", what, cmd, tostring(code)) end
  local doc = json.try_decode(out)
  if type(doc) == "table" and doc.Version ~= 1 then
    _fail("%s: Version must be 1, got %s", what, tostring(doc.Version))
  end
  return _from_json(doc, what, what)
end

--- The STS endpoint: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the profile's endpoint_url, else
--- the regional one.
function M.sts_endpoint(region, profile_endpoint)
  return _env("AWS_ENDPOINT_URL_STS") or _env("AWS_ENDPOINT_URL") or profile_endpoint
    or ("https://sts.%s.amazonaws.com/"):format(region or "us-east-1")
end

--- One STS Query call (signed with `creds`, or unsigned): the <...Result> element.
function M.sts(action, params, creds, region, endpoint)
  local parts = { "Action=" .. action, "Version=2011-06-15" }
  local keys = {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = ec2.encode(k) .. "=" .. ec2.encode(params[k]) end
  local req = { method = "POST", url = endpoint, body = table.concat(parts, "&"), timeout = 15,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" } }
  if creds then
    req.aws = { access_key_id = creds.access_key_id, secret_access_key = creds.secret_access_key,
      session_token = creds.session_token, region = region or "us-east-1", service = "sts" }
  end
  local resp, herr = http.try(req)
  if not resp then _fail("STS %s at %s: no answer: %s", action, endpoint, herr.message) end
  local doc = encoding.xml_decode(resp.body)
  if not resp.ok then
    local e = doc and ec2.find(doc, "Error")
    _fail("STS %s at %s: %s: %s", action, endpoint, e and ec2.text(e, "Code") or ("HTTP " .. resp.status),
      e and ec2.text(e, "Message") or resp.body:sub(1, 200))
  end
  local result = doc and ec2.find(doc, action .. "Result", "Credentials")
  local id = result and ec2.text(result, "AccessKeyId")
  if not id then _fail("STS %s at %s: no credentials in the answer", action, endpoint) end
  return { access_key_id = id, secret_access_key = ec2.text(result, "SecretAccessKey"),
    session_token = ec2.text(result, "SessionToken"), expires = ec2.text(result, "Expiration") }
end

local function _session_name(given)
  return given or _env("AWS_ROLE_SESSION_NAME") or ("skyhost-%d"):format(os.time())
end

--- assume-role: `get` reads the profile's keys; `source_creds` resolves the source profile.
function M.assume_role(profile, get, source_creds)
  local role, src = get("role_arn"), get("source_profile")
  if get("mfa_serial") then
    -- The AWS CLI prompts for the code; a script's host cannot (it may run unattended).
    _fail("profile '%s' assumes %s with an MFA device (mfa_serial), and skyhost cannot ask for the code: "
      .. "put the role's temporary credentials in a profile of their own (aws sts assume-role --serial-number ... "
      .. "--token-code ...), or give the profile a credential_process that prompts", profile, role)
  end
  local base, via
  if src then
    base, via = source_creds(src), ("source profile '%s'"):format(src)
  elseif get("credential_source") == "Environment" then
    local id, secret = _env("AWS_ACCESS_KEY_ID"), _env("AWS_SECRET_ACCESS_KEY")
    if not (id and secret) then
      _fail("profile '%s': credential_source = Environment but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set",
        profile)
    end
    base = { access_key_id = id, secret_access_key = secret, session_token = _env("AWS_SESSION_TOKEN") }
    via = "the environment"
  elseif get("credential_source") then
    base, via = M.credential_source(get("credential_source"), profile), get("credential_source")
    if not base then _fail("profile '%s': credential_source %s found no credentials", profile, via) end
  else
    _fail("profile '%s' has role_arn but neither source_profile nor credential_source", profile)
  end
  local params = { RoleArn = role, RoleSessionName = _session_name(get("role_session_name")) }
  if get("external_id") then params.ExternalId = get("external_id") end
  if get("duration_seconds") then params.DurationSeconds = get("duration_seconds") end
  local region = get("region")
  local c = M.sts("AssumeRole", params, base, region, M.sts_endpoint(region, get("endpoint_url")))
  c.source = ("role %s assumed (STS AssumeRole) by profile '%s' with %s"):format(role, profile, via)
  return c
end

--- credential_source = EcsContainer | Ec2InstanceMetadata (a profile's base credentials).
function M.credential_source(kind, profile)
  if kind == "EcsContainer" then return M.container() end
  if kind == "Ec2InstanceMetadata" then return M.imds() end
  _fail("profile '%s': credential_source '%s' is not one of Environment, EcsContainer, Ec2InstanceMetadata",
    profile, kind)
end

--- Web identity: the token in `token_file` exchanged for role `role` (AssumeRoleWithWebIdentity,
--- unsigned). With no arguments, from AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (nil if unset).
function M.web_identity(token_file, role, region, endpoint, session)
  if not token_file then
    token_file, role = _env("AWS_WEB_IDENTITY_TOKEN_FILE"), _env("AWS_ROLE_ARN")
    if not token_file then return nil end
    if not role then _fail("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set both") end
  end
  local token = _read(token_file, "the web identity token file"):gsub("%s+$", "")
  region = region or _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
  local c = M.sts("AssumeRoleWithWebIdentity", { RoleArn = role, RoleSessionName = _session_name(session),
    WebIdentityToken = token }, nil, region, M.sts_endpoint(region, endpoint))
  c.source = ("role %s assumed (STS AssumeRoleWithWebIdentity) with the token in %s"):format(role, token_file)
  return c
end

-- Hosts a container credentials URL may use over plain http: loopback, ECS's and EKS's.
local function _local_host(url)
  local host = url:match("^http://%[([^%]]+)%]") or url:match("^http://([^/:]+)")
  if not host then return false end
  return host == "localhost" or host:find("^127%.") ~= nil or host == "::1" or host == "169.254.170.2"
    or host == "169.254.170.23" or host == "fd00:ec2::23"
end

--- Container credentials (nil if neither variable is set).
function M.container()
  local rel, full = _env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), _env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  local url, var
  if rel then
    url, var = "http://169.254.170.2" .. rel, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
  elseif full then
    url, var = full, "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    if not (url:find("^https://") or _local_host(url)) then
      _fail("%s must be https:// or a loopback/ECS/EKS address over http://, got %s", var, url)
    end
  else
    return nil
  end
  local headers = {}
  local token = _env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  local token_file = _env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if token_file then token = _read(token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):gsub("%s+$", "") end
  if token then headers.Authorization = token end
  local resp, herr = http.try { url = url, headers = headers, timeout = 5 }
  if not resp then _fail("container credentials (%s): no answer from %s: %s", var, url, herr.message) end
  if not resp.ok then _fail("container credentials (%s): HTTP %d from %s", var, resp.status, url) end
  return _from_json(json.try_decode(resp.body), ("container credentials (%s)"):format(var),
    "the container endpoint " .. url)
end

--- Is the instance metadata service off (AWS_EC2_METADATA_DISABLED=true)?
function M.imds_disabled() return (_env("AWS_EC2_METADATA_DISABLED") or ""):lower() == "true" end

--- IMDSv2: PUT a session token, then GET the role's credentials. nil if the service does not
--- give a token (not on EC2) or is disabled; raises if it gives one but no credentials.
function M.imds()
  if M.imds_disabled() then return nil end
  local base = (_env("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254"):gsub("/+$", "")
  local tok = http.try { method = "PUT", url = base .. "/latest/api/token", timeout = 1,
    headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = "21600" } }
  -- No answer, or one that is not a token (a proxy's refusal; IMDSv1 only): not on an EC2 machine
  -- whose metadata service gives credentials, so the search goes on as the SDKs' does.
  if not (tok and tok.ok and tok.body ~= "") then return nil end
  local h = { ["X-aws-ec2-metadata-token"] = tok.body }
  local path = base .. "/latest/meta-data/iam/security-credentials/"
  local roles = http.try { url = path, headers = h, timeout = 2 }
  local role = roles and roles.ok and roles.body:match("^%s*([^%s]+)")
  if not role then _fail("instance metadata at %s: the instance has no IAM role (instance profile)", base) end
  local r = http.try { url = path .. role, headers = h, timeout = 2 }
  if not (r and r.ok) then _fail("instance metadata at %s: no credentials for role '%s'", base, role) end
  local doc = json.try_decode(r.body)
  if type(doc) == "table" and doc.Code and doc.Code ~= "Success" then
    _fail("instance metadata at %s: role '%s': %s", base, role, tostring(doc.Code))
  end
  return _from_json(doc, ("instance metadata (IMDSv2) at %s, role '%s'"):format(base, role), "instance metadata")
end

return M
