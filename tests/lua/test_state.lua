-- sky.state: the journal's Lua API on a real SQLite file in a temporary directory.
local t = require "testlib"
local state = require "sky.state"

local dir = os.tmpname()
os.remove(dir)
local path = dir .. "/nested/state.db"

t.test("one call per transition, info kept as JSON", function()
  local st <close> = state.open(path)
  t.eq(st:path(), path)
  local id = st:record_pool { name = "train", provider = "aws", info = { region = "eu-west-1" } }
  t.ok(id:find("^sky%-%x+$"), id)
  local key = st:record_instance_intent(id, "aws", { node = 0 })
  st:mark_instance(key, "launched", { instance_id = "i-0abc" })
  st:mark_pool(id, "ready")
  local pools = st:live_pools()
  t.eq(#pools, 1)
  t.eq(pools[1].state, "ready")
  t.eq(pools[1].info, { region = "eu-west-1" })
  t.eq(pools[1].live_instances, 1)
  local inst = st:instances(id)[1]
  t.eq(inst.instance_id, "i-0abc")
  t.eq(inst.info, { node = 0 })
  t.eq(inst.terminated, nil)
  st:mark_instance(key, "terminated")
  t.eq(st:finish_pool(id), {})
  t.eq(st:live_pools(), {})
  t.eq(st:pool(id).state, "destroyed")
  st:forget_pool(id)
  t.eq(st:pool(id), nil)
end)

t.test("orphans stay listed and errors are StateError", function()
  local st <close> = state.open(path)
  local id = st:record_pool { id = "p-orphan", name = "job", provider = "ssh" }
  local key = st:record_instance_intent(id, "ssh")
  local left = st:finish_pool(id)
  t.eq(#left, 1)
  t.eq(left[1].key, key)
  t.eq(#st:live_pools(), 1)
  local err = t.raises(function() st:forget_pool(id) end, "not confirmed terminated")
  t.eq(err.code, "StateError")
  t.raises(function() st:record_pool { id = "p-orphan", name = "x", provider = "y" } end, "UNIQUE")
  t.raises(function() st:record_instance_intent("nope", "ssh") end, "FOREIGN KEY")
  st:mark_instance(key, "terminated")
  t.raises(function() st:mark_instance(key, "running") end, "already terminated")
  st:forget_pool(id)
end)

t.test("atomically keeps all or nothing", function()
  local st <close> = state.open(path)
  t.raises(function()
    st:atomically(function(s)
      local id = s:record_pool { id = "p-half", name = "multi", provider = "local" }
      s:record_instance_intent(id, "local")
      error("provider went away")
    end)
  end, "provider went away")
  t.eq(st:pool("p-half"), nil)
  local id = st:atomically(function(s)
    local id = s:record_pool { name = "multi", provider = "local" }
    for n = 1, 3 do s:record_instance_intent(id, "local", { node = n }) end
    return id
  end)
  t.eq(#st:instances(id), 3)
  local other <close> = state.open(path) -- a second connection sees it committed
  t.eq(other:pool(id).live_instances, 3)
end)

t.test("offers cache round-trips values and honours the TTL", function()
  local st <close> = state.open(path)
  t.eq(st:cache_get("aws", "H100", 60), nil)
  st:cache_put("aws", "H100", { { type = "p5.48xlarge", price = 98.32 } })
  t.eq(st:cache_get("aws", "H100", 60), { { type = "p5.48xlarge", price = 98.32 } })
  t.eq(st:cache_get("aws", "H100", -1), nil) -- older than a negative TTL: always stale
  t.eq(st:cache_prune(3600), 0)
end)

t.test("a closed store says so", function()
  local st = state.open(path)
  st:close()
  st:close()
  t.eq(t.raises(function() st:live_pools() end, "closed").code, "StateClosed")
end)

os.execute("rm -rf '" .. dir .. "'")
t.done()
