-- sky.shard: this node's share of one or more lists. Shared by host and worker, so a function
-- tried with fn.local_call() shards exactly as it will remotely.
local M = {}

--- How a bad call fails: the host replaces it with a structured BadArgument (stdlib/sky/init.lua);
--- on a node a plain error, blamed on the caller of sky.shard, fails the task.
function M.fail(message) error(message, 4) end

local OPTION_KEYS = { shuffle = true, seed = true, node = true, total_nodes = true }

local function _is_options(t)
  if type(t) ~= "table" or rawlen(t) > 0 or next(t) == nil then return false end
  for k in pairs(t) do
    if not OPTION_KEYS[k] then return false end
  end
  return true
end

-- xorshift64*: the same sequence on every node for the same seed, independent of math.random.
local function _rng(seed)
  local s = seed ~ 0x2545F4914F6CDD1D
  if s == 0 then s = 0x9E3779B97F4A7C15 end
  return function(n)
    s = s ~ (s >> 12)
    s = s ~ (s << 25)
    s = s ~ (s >> 27)
    local r = (s * 0x2545F4914F6CDD1D) >> 11  -- 53 non-negative bits
    return r % n + 1
  end
end

--- Splits lists for this node: contiguous, balanced blocks, in node order; several lists are
--- split with the same indices. Options (last argument): shuffle (permute first, with `seed`,
--- default 0, identical on every node), node and total_nodes (default: this node's).
function M.shard(info, ...)
  local lists = table.pack(...)
  local opts = {}
  if lists.n >= 2 and _is_options(lists[lists.n]) then
    opts = lists[lists.n]
    lists.n = lists.n - 1
  end
  if lists.n == 0 then M.fail("sky.shard: expected at least one list") end
  local len
  for i = 1, lists.n do
    if type(lists[i]) ~= "table" then
      M.fail(("sky.shard: argument %d is a %s, expected a list"):format(i, type(lists[i])))
    end
    local l = #lists[i]
    if len and l ~= len then
      M.fail(("sky.shard: lists differ in length (%d and %d)"):format(len, l))
    end
    len = l
  end
  local node = opts.node or info.node
  local total = opts.total_nodes or info.total_nodes
  if math.type(node) ~= "integer" or math.type(total) ~= "integer" or total < 1
      or node < 0 or node >= total then
    M.fail(("sky.shard: node %s of %s is out of range"):format(node, total))
  end
  local order
  if opts.shuffle then
    order = {}
    for i = 1, len do order[i] = i end
    local rand = _rng(math.tointeger(opts.seed or 0) or 0)
    for i = len, 2, -1 do
      local j = rand(i)
      order[i], order[j] = order[j], order[i]
    end
  end
  local first = len * node // total + 1
  local last = len * (node + 1) // total
  local out = {}
  for li = 1, lists.n do
    local src, dst = lists[li], {}
    for i = first, last do
      dst[#dst + 1] = src[order and order[i] or i]
    end
    out[li] = dst
  end
  return table.unpack(out, 1, lists.n)
end

return M
