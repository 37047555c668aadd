-- Cloud providers skyhost knows of: the ones the shipped catalog has offers for, and where each
-- one's credentials are usually found. None of them is implemented in this build (no cloud is
-- reachable from where skyhost is developed); they are listed so that `skyhost check` can say
-- what it finds, `skyhost offers` can show their prices, and a script naming one gets a clear
-- "not implemented yet" instead of an unknown-name error. `sky.provider{name = "aws", ...}` in a
-- script implements one in Lua, and then it provisions like any other provider.
--
-- Each entry: env = variables, any of which is a credential; files = paths (~ is $HOME), any of
-- which holds one. Values are never read or printed, only whether they exist.
local M = {}

M.list = {
  { name = "aws", env = { "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE" },
    files = { "~/.aws/credentials", "~/.aws/config" } },
  { name = "gcp", env = { "GOOGLE_APPLICATION_CREDENTIALS" },
    files = { "~/.config/gcloud/application_default_credentials.json", "~/.config/gcloud/credentials.db" } },
  { name = "lambda", env = { "LAMBDA_API_KEY" }, files = { "~/.lambda_cloud/lambda_keys" } },
  { name = "runpod", env = { "RUNPOD_API_KEY" }, files = { "~/.runpod/config.toml" } },
  { name = "vast", env = { "VAST_API_KEY", "VASTAI_API_KEY" },
    files = { "~/.vast_api_key", "~/.config/vastai/vast_api_key" } },
  { name = "nebius", env = { "NEBIUS_IAM_TOKEN" }, files = { "~/.nebius/credentials.json", "~/.nebius/config.yaml" } },
  { name = "oci", env = { "OCI_CLI_CONFIG_FILE" }, files = { "~/.oci/config" } },
  { name = "cudo", env = { "CUDO_API_KEY" }, files = { "~/.config/cudo/cudo.yml" } },
  { name = "verda", env = { "VERDA_CLIENT_ID", "DATACRUNCH_CLIENT_ID" }, files = { "~/.verda/credentials" } },
  { name = "shadeform", env = { "SHADEFORM_API_KEY" }, files = { "~/.shadeform/api_key" } },
  { name = "primeintellect", env = { "PRIME_API_KEY" }, files = { "~/.prime/config.json" } },
  { name = "hyperstack", env = { "HYPERSTACK_API_KEY" }, files = { "~/.hyperstack/api_key" } },
  { name = "hyperbolic", env = { "HYPERBOLIC_API_KEY" }, files = { "~/.hyperbolic/api_key" } },
  { name = "lium", env = { "LIUM_API_KEY" }, files = { "~/.lium/config.ini" } },
  { name = "daytona", env = { "DAYTONA_API_KEY" }, files = { "~/.config/daytona/config.json" } },
  { name = "jarvislabs", env = { "JL_API_KEY", "JARVISLABS_API_KEY" }, files = { "~/.jarvislabs/api_key" } },
  { name = "seeweb", env = { "SEEWEB_API_KEY" }, files = { "~/.seeweb_cloud/seeweb_keys" } },
  { name = "mithril", env = { "MITHRIL_API_KEY" }, files = { "~/.flow/config.yaml" } },
  { name = "fluidstack", env = { "FLUIDSTACK_API_KEY" }, files = { "~/.fluidstack/api_key" } },
  { name = "paperspace", env = { "PAPERSPACE_API_KEY" }, files = { "~/.paperspace/config.json" } },
  { name = "yotta", env = { "YOTTA_API_KEY" }, files = { "~/.yotta/api_key" } },
  { name = "digitalocean", env = { "DIGITALOCEAN_ACCESS_TOKEN" }, files = { "~/.config/doctl/config.yaml" } },
}

M.by_name = {}
for _, c in ipairs(M.list) do M.by_name[c.name] = c end

local function _expand(path)
  local home = os.getenv("HOME")
  if path:sub(1, 2) == "~/" then
    if not home or home == "" then return nil end
    return home .. path:sub(2)
  end
  return path
end

local function _exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Where the credentials of `cloud` (an entry of M.list) are: found (boolean), the place they
--- were found ("env AWS_ACCESS_KEY_ID" or a path as written, "~/.aws/credentials"), and every
--- place looked at, in order. Reads only whether variables are set and files exist.
function M.credentials(cloud)
  local looked = {}
  for _, var in ipairs(cloud.env) do
    looked[#looked + 1] = "$" .. var
    local v = os.getenv(var)
    if v and v ~= "" then return true, "$" .. var, looked end
  end
  for _, path in ipairs(cloud.files) do
    looked[#looked + 1] = path
    local full = _expand(path)
    if full and _exists(full) then return true, path, looked end
  end
  return false, nil, looked
end

return M
