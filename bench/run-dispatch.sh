#!/usr/bin/env bash
# Dispatch on 4 local workers, skyhost beside Dask distributed on the same work.
#   bench/run-dispatch.sh [build-dir]
# Dask runs fewer tasks (it is ~100x slower per task); rates are per second, so they compare.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
nodes=4
sky=$("$build/bin/skyhost" "$root/bench/dispatch.lua" 5000 100000 $nodes 5)
if /usr/bin/python3 -c 'import distributed' 2>/dev/null; then
  dask=$(/usr/bin/python3 "$root/bench/dask_dispatch.py" 300 3000 $nodes 3 2>/dev/null)
else
  dask="(python3-distributed not installed: apt-get install python3-distributed)"
fi
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
printf '%-28s %14s %14s %10s\n' "4 local workers" "skyhost" "dask" "ratio"
for k in round_trip_p50 round_trip_p99 map_throughput; do
  s=$(get "$sky" $k); d=$(get "$dask" $k)
  unit=$(echo "$sky" | awk -v k=$k '$1 == k { print $3 }')
  if [ -n "$d" ]; then
    if [ $k = map_throughput ]; then r=$(awk -v a="$s" -v b="$d" 'BEGIN { printf "%.0fx", a / b }')
    else r=$(awk -v a="$s" -v b="$d" 'BEGIN { printf "%.0fx faster", b / a }'); fi
  else d="-"; r="-"; fi
  printf '%-28s %14s %14s %10s\n' "$k ($unit)" "$s" "$d" "$r"
done
echo "(round trips: median/p99 of 5000 sequential tasks; map: median of 5 runs of $(get "$sky" map_tasks) tasks,"
echo " dask: $(get "$dask" map_tasks) tasks, 3 runs)"
