-- Driven by test_sync.py and bench/run-files.sh: pool:put(SRC, DEST) of a directory on one SSH
-- host, printing what the sync did and how long it took.
-- Environment: SKYT_STATE (test hosts' client files), HOST, SRC, DEST. With IMAGE_SYNC set, the
-- pool syncs SRC into its workdir DEST itself (image.sync) and a task prints what it reads there.
-- With GET set, the other way: pool:get(DEST .. "/", SRC).
local st = os.getenv("SKYT_STATE")
local core = require "skyhost.core"
local pool <close> = sky.compute {
  provider = sky.ssh { hosts = { os.getenv("HOST") }, identity = st .. "/id_ed25519",
    known_hosts = st .. "/known_hosts", connect_timeout = 3 },
  display = "quiet",
  image = os.getenv("IMAGE_SYNC") and { workdir = os.getenv("DEST"), sync = os.getenv("SRC") },
}
if os.getenv("IMAGE_SYNC") then
  print("READ " .. (sky.fn(function(name)
    local f <close> = assert(io.open(name))
    return f:read("a")
  end)(os.getenv("IMAGE_SYNC")) >> pool))
  return
end
local t0 = core.now()
local ok, r = pcall(function()
  if os.getenv("GET") then  -- the other way: DEST on the node into the local SRC
    local _, reports = pool:get(os.getenv("DEST") .. "/", os.getenv("SRC"), { node = 0 })
    return reports[1]
  end
  return pool:put(os.getenv("SRC"), os.getenv("DEST"))[1]
end)
if not ok then
  print("ERROR " .. tostring(r))
  os.exit(1)
end
print(("SYNC sent=%d sent_bytes=%d copied=%d removed=%d entries=%d hashed=%d hashed_bytes=%d seconds=%.3f")
  :format(r.sent, r.sent_bytes, r.copied, r.removed, r.entries, r.hashed, r.hashed_bytes, core.now() - t0))
