-- providers/aws/hostkeys.lua: host keys from the console output (cloud-init's block), the
-- base64 of GetConsoleOutput, and the host_keys modes. The local cloud checks it end to end
-- (tests/e2e/test_aws.py pins the real hosts' keys with host_keys = "console").
local t = require "testlib"
local encoding = require "skyhost.encoding"
local hostkeys = require "providers.aws.hostkeys"

local ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk3bXlrZXlteWtleW15a2V5bXlrZXlteWtleW15a2V5 root@ip-10-0-0-5"
local EC = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= root@ip-10-0-0-5"
local CONSOLE = table.concat({
  "[   12.3] cloud-init[812]: Generating public/private ed25519 key pair.",
  "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
  "256 SHA256:abc root@ip-10-0-0-5 (ED25519)",
  "-----END SSH HOST KEY FINGERPRINTS-----",
  "-----BEGIN SSH HOST KEY KEYS-----",
  EC .. "\r",
  "[   13.0] random kernel noise in the middle",
  ED,
  "-----END SSH HOST KEY KEYS-----",
  "ci-info: done",
}, "\n")

t.test("the keys of the SSH HOST KEY KEYS block, noise and fingerprints left out", function()
  t.eq(hostkeys.parse(CONSOLE), { EC, ED })
  t.eq(hostkeys.parse("Linux version 2.6.16-xenU\nno keys here\n"), {})
  t.eq(hostkeys.parse(""), {})
  -- a reboot prints the block again: the last one counts
  t.eq(hostkeys.parse(CONSOLE .. "\n-----BEGIN SSH HOST KEY KEYS-----\n" .. ED .. "\n-----END SSH HOST KEY KEYS-----\n"),
    { ED })
end)

t.test("base64 decoding is the inverse of the encoder, padding or not", function()
  for _, s in ipairs({ "", "a", "ab", "abc", "abcd", CONSOLE, string.rep("\0\255\128", 100) }) do
    local b = encoding.base64_encode(s)
    t.eq(hostkeys.base64_decode(b), s)
    t.eq(hostkeys.base64_decode((b:gsub("=", ""))), s)
  end
  t.eq(hostkeys.base64_decode("ab$c"), nil, "a foreign character")
end)

local function client(text, fail)
  local c = { calls = 0 }
  function c:call(action, params)
    self.calls = self.calls + 1
    assert(action == "GetConsoleOutput" and params.InstanceId == "i-1")
    if fail then require("sky.errors").raise("AwsError", fail) end
    return (encoding.xml_decode(("<GetConsoleOutputResponse><instanceId>i-1</instanceId><output>%s</output>"
      .. "</GetConsoleOutputResponse>"):format(text and encoding.base64_encode(text) or "")))
  end
  return c
end

t.test("modes: console waits for the keys, the default falls back to first use", function()
  local state = {}
  t.eq(hostkeys.for_instance("console", client("booting..."), "i-1", state), nil, "console: wait")
  t.eq(hostkeys.for_instance(nil, client("booting..."), "i-1", state), {}, "default: first use")
  t.eq(hostkeys.for_instance(nil, client(nil), "i-1", state), {}, "no output yet")
  local c = client(CONSOLE)
  t.eq(hostkeys.for_instance("console", c, "i-1", state), { EC, ED })
  t.eq(hostkeys.for_instance("console", c, "i-1", state), { EC, ED })
  t.eq(c.calls, 1, "found keys are kept")
  t.eq(hostkeys.for_instance("first-use", client(CONSOLE), "i-1", {}), {})
  t.eq(hostkeys.for_instance(nil, client(nil, "AccessDenied"), "i-1", {}), {}, "default: a failing call is first use")
  t.raises(function() hostkeys.for_instance("console", client(nil, "AccessDenied"), "i-1", {}) end, "AccessDenied")
end)

t.done()
