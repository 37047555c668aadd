-- SSH host keys from an instance's console output: cloud-init prints the instance's public host
-- keys between "-----BEGIN SSH HOST KEY KEYS-----" and "-----END SSH HOST KEY KEYS-----" on the
-- serial console, which EC2 hands out with GetConsoleOutput (base64). Pinned for the first
-- connection, they make it verified instead of trusted on first use. See docs/aws.md.
local ec2 = require "providers.aws.ec2"

local M = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local VAL = {}
for i = 1, #B64 do VAL[B64:byte(i)] = i - 1 end

--- Standard base64 (padding optional) → bytes, or nil if `s` holds another character.
function M.base64_decode(s)
  s = s:gsub("=+$", "")
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = VAL[s:byte(i)]
    if not v then return nil end
    bits, n = ((bits << 6) | v) & 0xffffff, n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char((bits >> n) & 0xff)
    end
  end
  return table.concat(out)
end

local BEGIN, END = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"

--- The OpenSSH key lines ("type base64 [comment]") of the last host key block in `text`, or an
--- empty list. Lines of the block that are not keys (console noise) are skipped.
function M.parse(text)
  local keys
  local inside = false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    if line:find(BEGIN, 1, true) then
      inside, keys = true, {}
    elseif line:find(END, 1, true) then
      inside = false
    elseif inside then
      if line:find("^%s*ssh%-[%w%-]+%s+[A-Za-z0-9+/=]+") or line:find("^%s*ecdsa%-[%w%-]+%s+[A-Za-z0-9+/=]+") then
        keys[#keys + 1] = line:match("^%s*(.-)%s*$")
      end
    end
  end
  return keys or {}
end

--- The host keys of instance `id` through `client` (an ec2 client): a list, empty while the
--- console has none yet (it comes a while after boot on real EC2).
function M.fetch(client, id)
  local doc = client:call("GetConsoleOutput", { InstanceId = id })
  local out = ec2.text(doc, "output")
  if not out or out == "" then return {} end
  local text = M.base64_decode((out:gsub("%s+", "")))
  return M.parse(text or "")
end

--- host_keys option values: "console" (wait until the console shows the keys, then pin them),
--- "console-or-first-use" (the default: pin them if the console shows them when the instance is
--- running, else trust the first key seen), "first-use" (never ask the console).
M.MODES = { console = true, ["console-or-first-use"] = true, ["first-use"] = true }

--- The keys to pin for instance `id` under `mode`: a list (empty: trust on first use), or nil
--- while mode "console" waits for them. Found keys are kept in `state.host_keys`.
function M.for_instance(mode, client, id, state)
  mode = mode or "console-or-first-use"
  if mode == "first-use" then return {} end
  state.host_keys = state.host_keys or {}
  local keys = state.host_keys[id]
  if not keys then
    local ok, got = pcall(M.fetch, client, id)
    if mode == "console" and not ok then error(got, 0) end
    keys = ok and got or {}
    if #keys > 0 then state.host_keys[id] = keys end
  end
  if #keys == 0 and mode == "console" then return nil end
  return keys
end

return M
