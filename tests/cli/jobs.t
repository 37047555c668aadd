# What tasks, their children and their commands print, as a user sees it; node facts and metrics
# with a stand-in NVML (tests/support/fake_nvml.cpp: our side of the interface, not a GPU test);
# the spinner (on a terminal, through script(1)) with the nodes' load beside a map's progress.

$ skyhost -e 'local p <close> = sky.compute{display = "quiet"}; local _ = sky.fn(function() print("a\nb"); io.stderr:write("e\n"); os.execute("echo child; echo child-err >&2"); io.write("partial") end)() >> p'

$ skyhost -e 'local p <close> = sky.compute{}; local _ = sky.fn(function() print("a\nb"); io.stderr:write("e\n"); os.execute("echo child; echo child-err >&2"); io.write("partial") end)() >> p' 2>&1 | sort
[node 0] a
[node 0] b
[node 0] child
[node 0] child-err
[node 0] e
[node 0] partial

$ skyhost -e 'local p <close> = sky.compute{}; local _ = sky.fn(function() sky.sh("echo out; echo err >&2") end)() >> p' 2>/dev/null
[node 0] out

$ skyhost -e 'local p <close> = sky.compute{}; local _ = sky.fn(function() sky.sh("echo looking; ls /nonexistent") end)() >> p'
[node 0] looking
[node 0] ls: cannot access '/nonexistent': No such file or directory
(command line):1: task failed on node 0: (command line):1: sky.sh: command failed on node 0 (exit status 2): echo looking; ls /nonexistent
ls: cannot access '/nonexistent': No such file or directory
[exit 1]

$ skyhost -e 'local p <close> = sky.compute{nodes = 2}; p:sh("[ $SKYHOST_NODE = 0 ] || exit 5")'
(command line):1: pool:sh: '[ $SKYHOST_NODE = 0 ] || exit 5' failed on 1 of 2 nodes
node 1: exit status 5
[exit 1]

$ skyhost -e 'local i = sky.fn(function() return sky.instance_info() end)() >> sky.compute{display = "quiet"}; print(i.gpu_count, i.gpu_model, i.gpu_memory_gb, i.cpu_count > 0, i.memory_gb > 0)'
0	nil	0.0	true	true

$ LD_LIBRARY_PATH=$(dirname $(command -v skyhost))/fake-nvml skyhost -e 'local p <close> = sky.compute{display = "quiet"}; local i = sky.fn(function() return sky.instance_info() end)() >> p; print(i.gpu_count, i.gpu_model, ("%.2f"):format(i.gpu_memory_gb))'
2	NVIDIA H100 80GB HBM3	79.65

$ LD_LIBRARY_PATH=$(dirname $(command -v skyhost))/fake-nvml skyhost -e 'local p <close> = sky.compute{display = "quiet", metrics_interval = 0.05}; local m = {}; p:on("metric", function(ev) m[ev.name] = ("%.1f %s"):format(ev.value, ev.unit) end); while not m["gpu1.memory"] do sky.sleep(0.02) end; print(m["gpu0.util"], m["gpu0.memory"], m["gpu1.util"], m["gpu1.memory"])'
35.0 %	1.0 GB	0.0 %	0.0 GB

$ LD_LIBRARY_PATH=$(dirname $(command -v skyhost))/fake-nvml skyhost -e 'local p <close> = sky.compute{display = "log", metrics_interval = 0.05}; local n = 0; p:on("metric", function() n = n + 1 end); while n < 7 do sky.sleep(0.02) end' 2>&1 | grep "node 0 cpu" | sed -n 1p
\d\d:\d\d:\d\d\.\d{3} pool-1 node 0 cpu \d+% mem [\d.]+ GB load [\d.]+ gpu0 35% 1\.0 GB gpu1 0% 0\.0 GB (re)

$ LD_LIBRARY_PATH=$(dirname $(command -v skyhost))/fake-nvml skyhost -e 'local p <close> = sky.compute{display = "quiet", nodes = 2}; for _, r in ipairs(p:torchrun("train.py", {launcher = "echo", args = {"a b", 3}})) do io.write(r.stdout) end'
--nnodes=2 --node_rank=0 --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=\d+ train.py a b 3 (re)
--nnodes=2 --node_rank=1 --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=\d+ train.py a b 3 (re)

$ skyhost -e 'local p <close> = sky.compute{display = "quiet"}; for _, r in ipairs(p:torchrun("train.py", {launcher = "echo", nproc_per_node = 4})) do io.write(r.stdout) end'
--nnodes=1 --node_rank=0 --nproc_per_node=4 --master_addr=127.0.0.1 --master_port=\d+ train.py (re)
$ script -qec "skyhost -e 'local p <close> = sky.compute{display = \"spinner\", metrics_interval = 0.05}; p:map(sky.fn(function(x) local t = os.clock(); while os.clock() - t < 0.3 do end; return x end), {1, 2, 3, 4, 5, 6})'" /dev/null | tr '\r' '\n' | grep -a -m1 -o "map [0-9]/6 done.* cpu [0-9]*% mem [0-9.]* GB"
map \d/6 done, \d failed, .* — cpu \d+% mem [\d.]+ GB (re)
