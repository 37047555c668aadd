-- torch_ddp.lua — a multi-node PyTorch job: run with  skyhost scripts/torch_ddp.lua [HOST...]
--
-- With no hosts: 2 nodes on this machine (the local provider); torch must be installed here.
-- With hosts ("user@host:port" or "host"): those machines over SSH, with torch installed on
-- each by the pool's image and the training script copied over.
-- TORCHRUN names another launcher, e.g. for Debian 12's python3-torch, whose torchrun fails
-- under Python 3.11:  TORCHRUN="/usr/bin/python3 tests/support/torchrun.py"
local sky = require "sky"

local hosts = { ... }
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local remote = #hosts > 0

do
  local pool <close> = sky.compute {
    provider = remote and sky.ssh { hosts = hosts } or "local",
    nodes = remote and #hosts or 2,
    image = remote and { pip = { "torch" } } or nil,
  }
  local script = here .. "/torch_ddp.py"
  if remote then
    pool:put(script, "torch_ddp.py")  -- into the remote user's home, where commands run
    script = "torch_ddp.py"
  end
  -- torchrun on every node: --nnodes, --node_rank, --master_addr and --master_port are set by
  -- the pool; one process per GPU (or one per node without GPUs). Every rank's output comes back
  -- as [node N] lines while it runs.
  local results = pool:torchrun(script, { args = { "--steps", 20 }, launcher = os.getenv("TORCHRUN") })
  for _, r in ipairs(results) do
    print(("node %d: %d process(es), exit status %d after %.1f s"):format(r.node, r.nproc_per_node,
      r.code, r.seconds))
  end
end
