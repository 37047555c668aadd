# The skyhost command line, as a user meets it.

$ skyhost --version
skyhost 0.1.0 (re)

$ skyhost --help | head -3
usage: skyhost [options] [SCRIPT [ARGS...]]

Runs SCRIPT, a Lua program using the `sky` module: remote functions, pools of machines,

$ skyhost --bogus
skyhost: unknown option '--bogus'
Try 'skyhost --help'.
[exit 2]

$ skyhost -e
skyhost: -e needs an argument: the code to run
Try 'skyhost --help'.
[exit 2]

$ skyhost -e 'print(1 + 2)'
3

$ skyhost -e 'print(#arg, arg[1], arg[2])' a b
2	a	b

$ echo 'print("from stdin", ...)' | skyhost - x y
from stdin	x	y

$ printf 'local x = 1\nprint(x +)\n' > /tmp/skyhost-syntax.lua; skyhost /tmp/skyhost-syntax.lua
/tmp/skyhost-syntax.lua:2: unexpected symbol near ')'
[exit 1]

$ printf 'local function f()\n  error("bad thing")\nend\nf()\n' > /tmp/skyhost-err.lua; skyhost /tmp/skyhost-err.lua
/tmp/skyhost-err.lua:2: bad thing
[exit 1]

$ skyhost --verbose /tmp/skyhost-err.lua
/tmp/skyhost-err.lua:2: bad thing
stack traceback:
	[C]: in function 'error'
	/tmp/skyhost-err.lua:2: in local 'f'
	/tmp/skyhost-err.lua:4: in main chunk
	(...tail calls...)
[exit 1]

$ skyhost /no/such/script.lua
cannot open /no/such/script.lua: No such file or directory
[exit 1]

$ skyhost -e 'os.exit(3)'
[exit 3]

$ skyhost -e 'return 4'
[exit 4]

$ skyhost -e 'local p <close> = sky.compute{nodes = 1}; local f = sky.fn(function() error("remote boom") end); local _ = f() >> p'
(command line):1: task failed on node 0: (command line):1: remote boom
[exit 1]

$ skyhost -e 'sky.compute{nodez = 2}'
(command line):1: sky.compute: unknown option 'nodez' (valid options: accelerator, allocation, budget, concurrency, connect_timeout, display, image, keepalive_count, keepalive_interval, max_frame, max_price, metrics_interval, name, nodes, on_event, prefetch, provider, provision_timeout, region, replace, retries, selection, setup_timeout, spot, task_timeout, timeout, ttl, zone)
[exit 1]

$ skyhost -e 'sky.compute{nodes = "two"}'
(command line):1: sky.compute: option 'nodes' must be integer, got string
[exit 1]

$ skyhost -e 'local h = io.stdout; local f = sky.fn(function() return h end); f()'
(command line):1: cannot send userdata (upvalue 'h' of function defined at (command line):1)
[exit 1]

$ skyhost scripts/hello.lua | grep -v -e 'hi from' -e 'one task' | sort
[node 0] hello from node 0 of 4
[node 1] hello from node 1 of 4
[node 2] hello from node 2 of 4
[node 3] hello from node 3 of 4
broadcast answered by nodes 0, 1, 2, 3

$ skyhost scripts/hello.lua | grep -e 'hi from' -e 'one task'
\[node ([0-3])\] hi from node \1 of 4 (re)
one task ran on node [0-3] (re)

$ skyhost -e 'local p <close> = sky.compute{nodes = 2, display = "log"}; local r, f = p:map(function(x) if x == 3 then error("three") end return x end, {1, 2, 3, 4, 5}, {errors = "return"}); print(#f)' 2>&1 | grep -e ' map ' -e '^1$'
[0-9:.]+ pool-1 map 5/5 done, 1 failed in [0-9.]+s \([0-9]+/s\) (re)
1
