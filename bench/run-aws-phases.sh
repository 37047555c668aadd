#!/usr/bin/env bash
# sky.aws on the local cloud (tests/support/local_cloud.py: moto's EC2 server whose running
# instances become OpenSSH hosts in network namespaces), timed by phase for pools of 1, 4 and 16
# nodes: sky.compute → first result (API calls, waiting for running, SSH, bootstrap, first task)
# and scope end → all terminated. bench/aws_phases.lua says what each phase covers.
#   bench/run-aws-phases.sh [build-dir]
# Every figure is the median of RUNS runs (default 5), the sizes interleaved so that outside load
# hits them alike. Settings (environment): RUNS=5 NS="1 4 16".
# Needs root and the default python3 with moto and boto3. The local cloud's test bed (skya-*,
# 10.213.0.0/16, docs/testing.md) is taken under /tmp/skyhost-netns.lock, like the tests, and
# removed when the script ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sky="$build/bin/skyhost"
[ -x "$sky" ] || { echo "run-aws-phases.sh: $sky not found (build first)" >&2; exit 1; }
if [ -z "${SKYA_LOCKED:-}" ]; then
  SKYA_LOCKED=1 exec flock -o /tmp/skyhost-netns.lock "$0" "$@"
fi
RUNS=${RUNS:-5}; NS=${NS:-1 4 16}
work=$(mktemp -d)
cloud_pid=
cleanup() {
  if [ -n "$cloud_pid" ]; then
    kill "$cloud_pid" 2>/dev/null || true
    wait "$cloud_pid" 2>/dev/null || true # it removes its hosts and stops moto on the way out
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 "$root/tests/support/local_cloud.py" --lifetime 3600 >"$work/cloud.json" 2>"$work/cloud.log" &
cloud_pid=$!
for _ in $(seq 300); do
  [ -s "$work/cloud.json" ] && break
  kill -0 "$cloud_pid" 2>/dev/null || { cat "$work/cloud.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/cloud.json" ] || { echo "run-aws-phases.sh: the local cloud did not start" >&2; exit 1; }
export CLOUD
CLOUD=$(head -n1 "$work/cloud.json")
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true
home="$work/home"
mkdir -p "$home"

for run in $(seq "$RUNS"); do
  for n in $NS; do
    if ! HOME=$home "$sky" "$root/bench/aws_phases.lua" "$n" >"$work/out" 2>&1; then
      echo "run-aws-phases.sh: $n nodes, run $run failed:" >&2
      cat "$work/out" "$work/cloud.log" >&2
      exit 1
    fi
    sed "s/^/$n /" "$work/out" >>"$work/all"
    # the next run starts from a cloud without hosts: wait until the controller removed them all
    for _ in $(seq 100); do
      [ "$(grep -c ' up ' "$work/cloud.log")" -le "$(grep -c ' down ' "$work/cloud.log")" ] && break
      sleep 0.1
    done
  done
done

echo "sky.aws on the local cloud: median of $RUNS runs, seconds"
python3 - "$work/all" "$NS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, phase, v = line.split()
    rows.setdefault(phase, {}).setdefault(n, []).append(float(v))
ns = sys.argv[2].split()
phases = ["api", "running", "ssh", "bootstrap", "first", "to_result", "teardown"]
print("| phase | " + " | ".join("%s node%s" % (n, "" if n == "1" else "s") for n in ns) + " |")
print("| --- |" + " ---: |" * len(ns))
for p in phases:
    print("| %s | " % p + " | ".join("%.2f" % statistics.median(rows[p][n]) for n in ns) + " |")
PY
