#!/usr/bin/env bash
# Large task results and arguments on a local node, beside the pipe they travel through.
#   bench/run-data.sh [build-dir]
# For each size (MIBS, default "64 256 1000": a frame holds at most 1 GiB) and direction, one skyhost process runs
# bench/data.lua: RUNS transfers (default 3), the median time, and the peak RSS above baseline of
# skyhost and of the worker as multiples of the payload (VmHWM after resetting it through
# /proc/self/clear_refs). The pipe figure is `head -c SIZE /dev/zero | cat >/dev/null`, the same
# kernel path with nothing decoded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sky="$build/bin/skyhost"
[ -x "$sky" ] || { echo "run-data.sh: $sky not found (build first)" >&2; exit 1; }
MIBS=${MIBS:-64 256 1000}
RUNS=${RUNS:-3}
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
pipe_rate() {
  local bytes=$(($1 * 1024 * 1024)) t0 t1
  t0=$(date +%s.%N)
  head -c "$bytes" /dev/zero | cat >/dev/null
  t1=$(date +%s.%N)
  awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN { printf "%.0f", b / (c - a) / 1e6 }'
}
printf '%-10s %6s %10s %10s %12s %12s %10s\n' direction MiB "s" "MB/s" "host peak" "worker peak" "pipe MB/s"
for mib in $MIBS; do
  for what in result argument; do
    out=$("$sky" "$root/bench/data.lua" "$what" "$mib" "$RUNS")
    printf '%-10s %6s %10s %10s %11sx %11sx %10s\n' "$what" "$mib" "$(get "$out" seconds)" \
      "$(get "$out" rate)" "$(get "$out" host_peak_over_base)" \
      "$(get "$out" worker_peak_over_base)" "$(pipe_rate "$mib")"
  done
done
echo "(median of $RUNS transfers per line; peaks: above the process's RSS just before, as a"
echo " multiple of the payload; load: $(cut -d' ' -f1-3 /proc/loadavg))"
