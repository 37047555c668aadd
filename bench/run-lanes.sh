#!/usr/bin/env bash
# pool:get and pool:put of one large file over 1, 2 and 4 SSH sessions ("lanes", docs/data.md)
# beside OpenSSH with the cipher and MAC skyhost negotiated: `ssh h1 cat FILE > copy` and
# `scp` (get), `ssh h1 'cat > FILE' < file` and `scp` (put). One test host: a real OpenSSH
# server in a network namespace on this machine (tests/support/netns-hosts.sh), so both ends
# share this machine's cores.
#   bench/run-lanes.sh [build-dir]
# Settings (environment): RUNS=3 MIB=1024 LANES="1 2 4"
#   SKYT_PREFIX=skyb SKYT_NET4=10.206 SKYT_NET6=fd5c:206: SKYT_STATE=/run/skyhost-bench (the
#   test host's name, subnets and client files; pick your own if others run hosts too)
# skyhost's figures are the pool:get / pool:put call alone (sha256 checks included, the pool's
# start not); OpenSSH's are whole commands, connection included (about 0.05 s here).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sky="$build/bin/skyhost"
[ -x "$sky" ] || { echo "run-lanes.sh: $sky not found (build first)" >&2; exit 1; }
export SKYT_PREFIX=${SKYT_PREFIX:-skyb} SKYT_NET4=${SKYT_NET4:-10.206}
export SKYT_NET6=${SKYT_NET6:-fd5c:206:} SKYT_STATE=${SKYT_STATE:-/run/skyhost-bench}
RUNS=${RUNS:-3}; MIB=${MIB:-1024}; LANES=${LANES:-1 2 4}
bed="$root/tests/support/netns-hosts.sh"
C=$SKYT_STATE/ssh_config
work=$(mktemp -d)
raw=$work/raw
: >"$raw"
# Everything on tmpfs (page cache here is reclaimed proactively); /dev/shm is shared with the
# test host, so the node reads and writes the same tmpfs.
src=/dev/shm/skyl-src-$$.bin
copy=/dev/shm/skyl-copy-$$.bin
up=/dev/shm/skyl-up-$$.bin
cleanup() {
  set +e
  rm -f "$src" "$copy" "$copy.skyhost-part" "$up" "$up.skyhost-part"
  "$bed" down >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rec() { echo "$1 $2" >>"$raw"; }
med() {
  awk -v k="$1" '$1 == k { print $2 }' "$raw" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}
vals() { awk -v k="$1" '$1 == k { printf "%s%s", s, $2; s = " " }' "$raw"; }
timed() { # timed NAME command...: wall seconds of the command, recorded as NAME
  local m=$1 t0 t1
  shift
  t0=$EPOCHREALTIME
  "$@" >"$work/last.out" 2>"$work/last.err" || {
    tail -n 20 "$work/last.out" "$work/last.err" >&2
    echo "run-lanes.sh: $m failed: $*" >&2
    exit 1
  }
  t1=$EPOCHREALTIME
  rec "$m" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
}

"$bed" up 1 >/dev/null
algos=""
if [ -x "$build/bin/ssh_bench" ]; then
  algos=$(timeout 120 "$build/bin/ssh_bench" "latency*" 2>/dev/null | sed -n 's/^ *skyhost algorithms: //p' || true)
fi
cipher=$(echo "$algos" | sed -n 's/.*cipher=\([^ ]*\).*/\1/p')
mac=$(echo "$algos" | sed -n 's/.*mac=\([^ ]*\).*/\1/p')
[ -n "$cipher" ] || { cipher=aes128-ctr; mac=hmac-sha2-256; algos="(assumed: no ssh_bench)"; }
same=(-F "$C" -o KexAlgorithms=curve25519-sha256 -c "$cipher" -o "MACs=$mac")
bytes=$((MIB << 20))
head -c "$bytes" /dev/zero >"$src"

echo "run-lanes.sh: $MIB MiB, lanes $LANES, $RUNS runs (load $(cut -d' ' -f1-3 /proc/loadavg))..." >&2
for _ in $(seq 1 "$RUNS"); do
  timeout 900 "$sky" "$root/bench/lanes.lua" "$SKYT_STATE" "$src" "$copy" "$src" "$up" "$LANES" \
    >"$work/last.out" 2>"$work/last.err" || { tail -n 20 "$work/last.err" >&2; exit 1; }
  while read -r k v _; do rec "$k" "$v"; done <"$work/last.out"
  rm -f "$copy" "$up"
  timed ssh_get sh -c "ssh ${same[*]} h1 'cat $src' > '$copy'"
  rm -f "$copy"
  timed scp_get scp -q "${same[@]}" "h1:$src" "$copy"
  rm -f "$copy"
  timed ssh_put sh -c "ssh ${same[*]} h1 'cat > $up' < '$src'"
  rm -f "$up"
  timed scp_put scp -q "${same[@]}" "$src" "h1:$up"
  rm -f "$up"
done

mbps() { if [ "$1" = - ]; then echo -; else awk -v s="$1" -v b="$bytes" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }
echo "$MIB MiB between this machine and one namespace host, $(nproc) cores shared by both ends;"
echo "skyhost algorithms: $algos; OpenSSH with -c $cipher -o MACs=$mac. Median of $RUNS runs."
printf '%-34s %9s %10s %14s %14s\n' "" seconds rate "vs ssh cat" "vs scp"
row() { printf '%-34s %9s %10s %14s %14s\n' "$1" "$2" "$(mbps "$2")" "$3" "$4"; }
sg=$(med ssh_get); cg=$(med scp_get); sp=$(med ssh_put); cp=$(med scp_put)
for l in $LANES; do
  g=$(med "get_lanes$l")
  row "pool:get, lanes = $l" "$g" "$(ratio "$sg" "$g")" "$(ratio "$cg" "$g")"
done
row "ssh h1 cat FILE > copy" "$sg" "" ""
row "scp h1:FILE copy" "$cg" "" ""
for l in $LANES; do
  p=$(med "put_lanes$l")
  row "pool:put, lanes = $l" "$p" "$(ratio "$sp" "$p")" "$(ratio "$cp" "$p")"
done
row "ssh h1 'cat > FILE' < file" "$sp" "" ""
row "scp file h1:FILE" "$cp" "" ""
echo "(ratios are throughput: peer time / skyhost time; target >= 0.8x)"
echo "(each run, seconds:"
awk '{ print $1 }' "$raw" | sort -u | while read -r k; do echo "  $k $(vals "$k")"; done
echo ")"
