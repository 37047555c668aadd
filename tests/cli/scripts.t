# The example scripts in scripts/ run as documented.

$ skyhost scripts/closures.lua
node [01]: 3 \* 10 = 30 \(tags a\+b, cycle kept: true\) (re)
node [01]: 1 \* 10 = 10 \(tags a\+b, cycle kept: true\) (re)
node [01]: 2 \* 10 = 20 \(tags a\+b, cycle kept: true\) (re)
17 = 5 * 3 + 2
caught: scripts/closures.lua:32: task failed on node [01]: scripts/closures.lua:32: boom (re)

$ skyhost scripts/map.lua 1000
1000 numbers: longest Collatz chain starts at 871 (178 steps)
shard sizes per node: 250, 250, 250, 250

$ skyhost scripts/scoped.lua 2>/dev/null
one task: 49
in parallel: 4 9 16
on every node: 0 1 2
main returned 25 and 5; its pool is gone
timed out: true (PoolTimeout)

$ skyhost scripts/scoped.lua 2 2>&1 >/dev/null
skyhost: pool pool-2: its timeout of 1 s passed; draining and tearing down the pool now

$ skyhost scripts/plugin.lua "$(dirname "$(command -v skyhost)")/../libgemm.so"
gemm of two 64x64 matrices: 16384 bytes back, A*2I == 2A: true
8 products with sky.gather: 8 correct
checksums from pool:map: 16386.0 16384.0 16382.0 16380.0
a bad argument: false, plugin 'gemm': a holds 5 bytes, expected 16384
