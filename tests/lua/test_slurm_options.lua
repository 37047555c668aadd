-- sky.slurm{...} without a cluster: option checking and how Slurm commands are run. The provider
-- against a real Slurm cluster is tests/e2e/test_slurm.py. Run by skyhost.
local t = require "testlib"
local sky = require "sky"
local slurm = require "providers.slurm"

t.test("unknown option: an error naming it and the valid ones", function()
  t.raises(function() sky.slurm { partiton = "gpu" } end, "partiton")
  t.raises(function() sky.slurm { partiton = "gpu" } end, "partition")
end)

t.test("options of the wrong type are errors", function()
  t.raises(function() sky.slurm { partition = 3 } end, "partition")
  t.raises(function() sky.slurm { gpus_per_node = 1.5 } end, "gpus_per_node")
end)

t.test("gpus_per_node and gres together: an error saying to pick one", function()
  t.raises(function() sky.slurm { gpus_per_node = 2, gres = "gpu:a100:2" } end, "not both")
end)

t.test("sbatch_args must be strings", function()
  t.raises(function() sky.slurm { sbatch_args = { "--mem=4G", 7 } } end, "sbatch_args%[2%]")
end)

t.test("a valid provider has the protocol's methods as its own fields", function()
  local p = sky.slurm { partition = "gpu", time = 30, sbatch_args = { "--mem=4G" } }
  t.eq(p.name, "slurm")
  for _, m in ipairs({ "offers", "provision", "get_instance", "terminate" }) do
    t.eq(type(rawget(p, m)), "function", m)
  end
end)

t.test("run: output, exit status and stderr of a command", function()
  local ok, out, err = slurm.run({ "sh", "-c", "echo out; echo err >&2; exit 0" }, 5)
  t.eq(ok, true); t.eq(out, "out\n"); t.eq(err, "err")
  ok, out, err = slurm.run({ "sh", "-c", "echo 'it failed' >&2; exit 3" }, 5)
  t.eq(ok, false); t.eq(err, "it failed")
end)

t.test("run: arguments reach the command unchanged (quotes, spaces, $)", function()
  local ok, out = slurm.run({ "printf", "%s|", "a b", "it's", "$HOME" }, 5)
  t.eq(ok, true); t.eq(out, "a b|it's|$HOME|")
end)

t.test("run: a command that does not answer is stopped and says so", function()
  local t0 = os.time()
  local ok, _, err = slurm.run({ "sleep", "30" }, 1)
  t.eq(ok, false)
  t.ok(err:find("sleep did not answer within 1 s", 1, true), err)
  t.ok(os.time() - t0 < 10)
end)

t.done()
