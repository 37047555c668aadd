-- pool:put of a directory on a local node (issue 15): the destination becomes a copy of the
-- tree (files, directories, symbolic links, permission bits), and a second sync moves only what
-- differs. Over SSH the same is checked by tests/e2e/test_sync.py.
local t = require "testlib"
local sky = require "sky"

local function sh(cmd)
  local ok = os.execute(cmd)
  assert(ok, "command failed: " .. cmd)
end

local function capture(cmd)
  local p <close> = assert(io.popen(cmd))
  return p:read("a")
end

-- Type, mode, size, path and link target of every entry, sorted, then the contents.
local function describe(dir)
  return capture("cd '" .. dir .. "' && find . -mindepth 1 -printf '%y %m %s %P %l\\n' | sort"
    .. " && find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
end

local root = capture("mktemp -d /tmp/skyhost-sync-XXXXXX"):gsub("%s+$", "")
local src, dst = root .. "/src", root .. "/dst"
sh(("mkdir -p %s/sub/deeper %s/empty-dir && cd %s && printf abc > a.txt && printf 'x%%.0s' $(seq 1 70000) > sub/big"
  .. " && printf '#!/bin/sh\\n' > sub/run.sh && chmod 755 sub/run.sh && chmod 600 a.txt"
  .. " && printf old > sub/deeper/old && ln -s a.txt link && ln -s sub dirlink && printf 'q' > 'with space'")
  :format(src, src, src))

local pool <close> = sky.compute { nodes = 1, display = "quiet" }

t.test("a first sync copies the whole tree", function()
  local r = pool:put(src, dst)[1]
  t.eq(describe(dst), describe(src))
  t.eq(r.sent, 5)
  t.eq(r.removed, 0)
end)

t.test("a second sync of an unchanged tree moves nothing", function()
  local r = pool:put(src, dst)[1]
  t.eq(r.sent, 0)
  t.eq(r.removed, 0)
  t.eq(describe(dst), describe(src))
end)

t.test("a second sync of an unchanged tree reads no file again; a rewrite is still seen", function()
  sky.sleep(2.1)  -- files changed less than 2 s before a scan are not cached (racy)
  pool:put(src, dst)
  local r = pool:put(src, dst)[1]
  t.eq(r.hashed, 0)
  t.eq(r.sent, 0)
  -- New content, same size and mtime: the ctime in the cache's key changed.
  sh(("cd %s && m=$(stat -c %%y a.txt) && printf abx > a.txt && touch -d \"$m\" a.txt"):format(src))
  r = pool:put(src, dst)[1]
  t.eq(r.sent, 1)
  t.eq(describe(dst), describe(src))
end)

t.test("added, changed, removed and renamed files, links and modes are synced", function()
  sh(("cd %s && printf abd > a.txt && printf new > added && rm sub/deeper/old && mv sub/big big-renamed"
    .. " && chmod 700 sub/run.sh && rm link && ln -s added link && rm -r empty-dir && printf f > empty-dir"):format(src))
  local r = pool:put(src .. "/", dst)[1]
  t.eq(describe(dst), describe(src))
  -- a.txt, added, empty-dir have new content; big-renamed is already there (by content)
  t.eq(r.sent + r.copied, 4)
  t.ok(r.removed >= 3, "removed " .. r.removed)
end)

t.test("pool:get of a directory (a trailing /) copies the node's tree back, then only changes", function()
  local back = root .. "/back"
  local paths, reports = pool:get(dst .. "/", back, { node = 0 })
  t.eq(paths[1], back)
  t.eq(describe(back), describe(src))
  t.ok(reports[1].sent >= 5, "sent " .. reports[1].sent)
  sh(("printf changed > %s/added"):format(dst))
  local _, again = pool:get(dst .. "/", back, { node = 0 })
  t.eq(again[1].sent, 1)
  t.eq(describe(back), describe(dst))
  t.raises(function() pool:get(root .. "/missing/", back, { node = 0 }) end, "missing")
  t.eq(describe(back), describe(dst))  -- a missing source leaves the copy as it was
end)

t.test("bad input is refused with a clear error", function()
  t.raises(function() pool:put(root .. "/missing", dst) end, "cannot read")
  t.raises(function() pool:put(src, "/") end, "other than /")
  t.raises(function() pool:get("/", root .. "/x", { node = 0 }) end, "other than /")
  -- lanes (SSH sessions for one large file) is checked whatever the provider
  t.raises(function() pool:get(src .. "/a.txt", root .. "/x", { node = 0, lanes = 0 }) end,
    "pool:get: option 'lanes' must be 1 to 16, got 0")
  t.raises(function() pool:put(src .. "/a.txt", root .. "/x", { lanes = 17 }) end,
    "pool:put: option 'lanes' must be 1 to 16, got 17")
  t.raises(function() pool:put(src .. "/a.txt", root .. "/x", { lanes = "4" }) end,
    "option 'lanes' must be integer")
end)

t.test("lanes on a local node: a plain copy", function()
  pool:get(src .. "/big-renamed", root .. "/big", { node = 0, lanes = 4 })
  t.eq(#capture("cat '" .. root .. "/big'"), 70000)
end)

t.test("image.sync fills the workdir before sky.compute returns; it needs a workdir", function()
  local work = root .. "/work"
  do
    local p <close> = sky.compute { nodes = 1, display = "quiet", image = { workdir = work, sync = src } }
    t.eq(describe(work), describe(src))
  end
  t.raises(function() sky.compute { nodes = 1, display = "quiet", image = { sync = src } } end,
    "needs image.workdir")
end)

sh("rm -rf '" .. root .. "'")
t.done()
