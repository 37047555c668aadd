#!/usr/bin/env bash
# Directory sync: pool:put(dir) beside rsync over ssh, on one test host (a real OpenSSH server in
# a network namespace, tests/support/netns-hosts.sh).
#   bench/run-files.sh [build-dir]
# A tree of MB megabytes (default 500) in FILES files (default 100, in 10 directories) of random
# bytes. First sync of the whole tree, then RUNS times (default 3): 1 MiB in the middle of one
# file is overwritten, and each tool syncs that change into its own copy: pool:put(dir),
# `rsync -a -e ssh` (size and mtime quick check, then its delta), `rsync -a -c` (whole-file
# checksums, the same test pool:put makes). Seconds are medians; bytes are what pool:put sent,
# and what it read to hash them in each run (both sides: its hash caches spare unchanged files).
# pool:put's time is the whole skyhost run (connect, start the worker, sync, close), as rsync's
# is its whole run; "the sync alone" is pool:put's own call within it. Then the other way: the
# node's copy pulled into a local directory with pool:get(dir/) beside `rsync -a -c` (pull), and
# RUNS times 1 MiB of one file changed on the node and pulled again.
# Environment: SKYT_PREFIX SKYT_NET4 SKYT_NET6 SKYT_STATE (the test host's bed; default the
# bench bed of run-ssh.sh). Needs root, rsync.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sky="$build/bin/skyhost"
[ -x "$sky" ] || { echo "run-files.sh: $sky not found (build first)" >&2; exit 1; }
export SKYT_PREFIX=${SKYT_PREFIX:-skyb} SKYT_NET4=${SKYT_NET4:-10.206}
export SKYT_NET6=${SKYT_NET6:-fd5c:206:} SKYT_STATE=${SKYT_STATE:-/run/skyhost-bench}
MB=${MB:-500} FILES=${FILES:-100} RUNS=${RUNS:-3}
bed="$root/tests/support/netns-hosts.sh"
host="$SKYT_NET4.0.11"
work=$(mktemp -d /tmp/skyhost-files-XXXXXX)
cleanup() { "$bed" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$bed" up 1 >/dev/null
ssh_cmd="ssh -F $SKYT_STATE/ssh_config"
$ssh_cmd h1 'rm -rf sky rs rsc' 
src="$work/src"
for i in $(seq 1 "$FILES"); do
  mkdir -p "$src/d$((i % 10))"
  head -c $((MB * 1024 * 1024 / FILES)) /dev/urandom >"$src/d$((i % 10))/f$i"
done
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
sky_sync() { SKYT_STATE=$SKYT_STATE HOST=$host SRC=$src DEST=sky "$sky" "$root/tests/e2e/ssh_sync.lua"; }
t=$(now); out=$(sky_sync); sky_first=$(since "$t")
t=$(now); rsync -a -e "$ssh_cmd" "$src/" h1:rs/; rs_first=$(since "$t")
t=$(now); rsync -a -c -e "$ssh_cmd" "$src/" h1:rsc/; rsc_first=$(since "$t")
sky_first_alone=$(echo "$out" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
sky_t="" rs_t="" rsc_t="" sent="" alone="" hashed=""
for r in $(seq 1 "$RUNS"); do
  dd if=/dev/urandom of="$src/d1/f1" bs=1M count=1 seek=1 conv=notrunc status=none
  t=$(now); out=$(sky_sync); sky_t="$sky_t $(since "$t")"
  sent=$(echo "$out" | sed -n 's/.*sent_bytes=\([0-9]*\).*/\1/p')
  hashed="$hashed $(echo "$out" | sed -n 's/.*hashed_bytes=\([0-9]*\).*/\1/p')"
  alone="$alone $(echo "$out" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')"
  t=$(now); rsync -a -e "$ssh_cmd" "$src/" h1:rs/; rs_t="$rs_t $(since "$t")"
  t=$(now); rsync -a -c -e "$ssh_cmd" "$src/" h1:rsc/; rsc_t="$rsc_t $(since "$t")"
done
# The other way: the node's copy back into a local directory, then one change made on the node.
back="$work/back" rback="$work/rback"
sky_get() { SKYT_STATE=$SKYT_STATE HOST=$host SRC=$back DEST=sky GET=1 "$sky" "$root/tests/e2e/ssh_sync.lua"; }
t=$(now); sky_get >/dev/null; get_first=$(since "$t")
t=$(now); rsync -a -c -e "$ssh_cmd" h1:sky/ "$rback/"; rget_first=$(since "$t")
get_t="" rget_t=""
for r in $(seq 1 "$RUNS"); do
  $ssh_cmd h1 'dd if=/dev/urandom of=sky/d1/f1 bs=1M count=1 seek=2 conv=notrunc status=none'
  t=$(now); sky_get >/dev/null; get_t="$get_t $(since "$t")"
  t=$(now); rsync -a -c -e "$ssh_cmd" h1:sky/ "$rback/"; rget_t="$rget_t $(since "$t")"
done
cmp -s "$back/d1/f1" "$rback/d1/f1" || { echo "run-files.sh: pool:get's copy differs from rsync's" >&2; exit 1; }
dd if="$back/d1/f1" of="$src/d1/f1" status=none
# (the node's hash cache and its mark are the sync's own, not part of the tree)
[ "$($ssh_cmd h1 "cd sky && find . -type f ! -path './.skyhost-sync.*' | sort | xargs sha256sum" | sha256sum)" = \
  "$(cd "$src" && find . -type f | sort | xargs sha256sum | sha256sum)" ] || { echo "run-files.sh: the synced tree differs" >&2; exit 1; }
printf '%-28s %10s %12s\n' "$MB MB in $FILES files" "first (s)" "one change (s)"
printf '%-28s %10s %12s\n' "pool:put(dir)" "$sky_first" "$(echo "$sky_t" | median)"
printf '%-28s %10s %12s\n' "  the sync alone" "$sky_first_alone" "$(echo "$alone" | median)"
printf '%-28s %10s %12s\n' "rsync -a -e ssh" "$rs_first" "$(echo "$rs_t" | median)"
printf '%-28s %10s %12s\n' "rsync -a -c -e ssh" "$rsc_first" "$(echo "$rsc_t" | median)"
printf '%-28s %10s %12s\n' "pool:get(dir/)" "$get_first" "$(echo "$get_t" | median)"
printf '%-28s %10s %12s\n' "rsync -a -c -e ssh (pull)" "$rget_first" "$(echo "$rget_t" | median)"
echo "(pool:put sent $sent bytes for the change and read$hashed bytes to hash in its runs;"
echo " one-change times are medians of $RUNS;"
echo " load: $(cut -d' ' -f1-3 /proc/loadavg))"
