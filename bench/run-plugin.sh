#!/usr/bin/env bash
# Plugins beside Lua functions on 4 local workers (bench/plugin.lua):
#   bench/run-plugin.sh [build-dir]
# Call overhead of a trivial plugin and the same Lua function, the same compute in both, and a
# 64 MiB binary string in and out (with the worker's and the plugin host's peak memory).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=$("$build/bin/skyhost" "$root/bench/plugin.lua" "$build/libgemm.so" \
  "$build/tests/plugins/libsky_test_plugins.so" 5000 100000 5)
get() { echo "$out" | awk -v k="$1" '$1 == k { print $2 " " $3 }'; }
row() { printf '%-42s %15s %15s %15s\n' "$1" "$2" "$3" "$4"; }
row "4 local workers" "plugin" "isolate=false" "Lua function"
for k in round_trip_p50 round_trip_p99 map_throughput; do
  case $k in
    round_trip_p50) what="trivial call (x + 1), round trip p50" ;;
    round_trip_p99) what="trivial call (x + 1), round trip p99" ;;
    map_throughput) what="pool:map, 100k trivial calls" ;;
  esac
  row "$what" "$(get plugin_$k)" "$(get inproc_$k)" "$(get lua_$k)"
done
row "192x192 float32 matrix product" "$(get gemm192_plugin)" "" "$(get gemm192_lua)"
row "sum of i*i for i < 20M" "$(get squares20M_plugin)" "" "$(get squares20M_lua)"
row "64 MiB string in and out, round trip" "$(get plugin_64MiB_round_trip)" "" "$(get lua_64MiB_round_trip)"
row "  worker peak memory growth" "$(get plugin_64MiB_worker_peak_growth)" "" "$(get lua_64MiB_worker_peak_growth)"
row "  plugin host peak memory" "$(get plugin_64MiB_host_peak)" "" ""
echo "(speed-up of native code: matrix product $(get gemm192_speedup), sum of squares $(get squares20M_speedup);"
echo " round trips: median/p99 of 5000 sequential calls; map: median of 5 runs)"
