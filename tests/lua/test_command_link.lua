-- The command link (transport = "command"): a worker reached through the pipes of a command a
-- provider names, as the Slurm provider does with `srun ... skyworker`. Here the command is
-- env(1) with a variable set, so the link is exercised without a cluster. Run by skyhost.
local t = require "testlib"
local sky = require "sky"

local function provider(name, command, nodes)
  return sky.provider {
    name = name,
    offers = function() return { { instance_type = "cmd", price = 0 } } end,
    provision = function(_, cluster, n)
      local ids = {}
      for i = 1, n do ids[i] = cluster.name .. "-" .. i end
      return ids
    end,
    get_instance = function(_, _, id)
      return { id = id, state = "running", transport = "command", command = command, ip = "127.0.0.1" }
    end,
    terminate = function(_, _, ids) nodes.terminated = (nodes.terminated or 0) + #ids end,
  }
end

local marker = sky.fn(function() return os.getenv("SKYT_VIA_COMMAND"), sky.instance_info().node end)

t.test("workers behind a command's pipes run tasks, and the command's environment is theirs", function()
  local seen = {}
  local pool <close> = sky.compute { provider = provider("cmdlink", { "env", "SKYT_VIA_COMMAND=yes" }, seen), nodes = 2, display = "quiet" }
  local got = pool:broadcast(marker())
  t.eq(got[1], "yes")
  t.eq(got[2], "yes")
  local v, node = pool:run(marker())
  t.eq(v, "yes")
  t.ok(node == 0 or node == 1)
  pool:close()
  t.eq(seen.terminated, 2)
end)

t.test("an instance with transport = command but no command: a clear error, nothing left", function()
  local seen = {}
  local ok, err = pcall(sky.compute, { provider = provider("cmdbad", nil, seen), nodes = 1, display = "quiet" })
  t.eq(ok, false)
  t.ok(tostring(err):find("transport = \"command\" but no command = {argv...}", 1, true), tostring(err))
  t.eq(seen.terminated, 1)
end)

t.test("a command that does not exist: the node fails to start, the instance is terminated", function()
  local seen = {}
  local ok, err = pcall(sky.compute, { provider = provider("cmdmissing", { "/nonexistent/srun" }, seen), nodes = 1,
    display = "quiet" })
  t.eq(ok, false)
  t.ok(tostring(err):find("/nonexistent/srun", 1, true), tostring(err))
  t.eq(seen.terminated, 1)
end)

t.test("the image's env and workdir reach workers behind a command", function()
  local seen = {}
  local where = sky.fn(function() return os.getenv("SKYT_IMAGE_VAR"), io.popen("pwd"):read("l") end)
  local pool <close> = sky.compute { provider = provider("cmdimage", { "env" }, seen), nodes = 1, display = "quiet",
    image = { env = { SKYT_IMAGE_VAR = "from image" }, workdir = "/tmp" } }
  local v, dir = pool:run(where())
  t.eq(v, "from image")
  t.eq(dir, "/tmp")
end)

t.test("image install steps on command nodes: a clear error, nothing left", function()
  local seen = {}
  local ok, err = pcall(sky.compute, { provider = provider("cmdapt", { "env" }, seen), nodes = 1, display = "quiet",
    image = { apt = { "ffmpeg" } } })
  t.eq(ok, false)
  t.ok(tostring(err):find("image.apt runs over SSH", 1, true), tostring(err))
  t.eq(seen.terminated, 1)
end)

t.done()
