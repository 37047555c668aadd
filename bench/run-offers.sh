#!/usr/bin/env bash
# `skyhost offers --accelerator H100` across all providers with live refresh from the fake clouds
# (tests/support/cloud_fake/, each API behind `prism proxy` with its spec; needs Prism:
# .ci/install-prism), and the broker's selection over all clouds' offers:
#   bench/run-offers.sh [build-dir] [runs]
# Time to table: wall time of the whole command (process start, catalog, Lambda's and
# DigitalOcean's and Vast's live requests through Prism, the table), median of RUNS (default 11); the same with
# --offline (the catalog alone). Then bench/clouds_offers.lua (live refresh, the broker's plan over
# five clouds, the choice from the catalog) and bench/select_offers.lua (the choice among 10,000
# offers); the choice must stay <= 5 ms.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${2:-11}
skyhost=$build/bin/skyhost
token=bench-offers-token
err=$(mktemp)
home=$(mktemp -d)
exec 3< <(python3 "$root/tests/support/cloud_fake/cloud_fake.py" --lifetime 300 --token "$token" 2>"$err")
fake_pid=$!
cleanup() {
  kill "$fake_pid" 2>/dev/null || true
  wait "$fake_pid" 2>/dev/null || true
  rm -rf "$err" "$home"
}
trap cleanup EXIT
read -r fake <&3 || { echo "the fake clouds did not start:" >&2; cat "$err" >&2; exit 1; }
url() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$fake" "$1"; }
export HOME=$home FAKE=$fake RUNPOD_API_KEY=$token LAMBDA_API_KEY=$token DIGITALOCEAN_ACCESS_TOKEN=$token
SKYHOST_LAMBDA_API=$(url lambda)
SKYHOST_DIGITALOCEAN_API=$(url digitalocean)
SKYHOST_VAST_API=$(url vast)
export VAST_API_KEY=$token SKYHOST_LAMBDA_API SKYHOST_DIGITALOCEAN_API SKYHOST_VAST_API

# Median wall time in ms of `skyhost offers ARGS`, run $runs times (output checked once).
median_ms() {
  local ts=() i t0 t1
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s%N)
    "$skyhost" offers "$@" >/dev/null
    t1=$(date +%s%N)
    ts+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${ts[@]}" | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2) { printf "%.1f", $1 / 1000 }'
}

table=$("$skyhost" offers --accelerator H100)
footer=$(echo "$table" | grep '^live prices from' || true)
[ -n "$footer" ] || { echo "no provider answered live:" >&2; echo "$table" | tail -3 >&2; exit 1; }
rows=$(echo "$table" | grep -c '^[a-z]' || true)
live=$(median_ms --accelerator H100)
offline=$(median_ms --accelerator H100 --offline)
printf '%-58s %10s\n' "skyhost offers --accelerator H100 ($runs runs)" "median ms"
printf '%-58s %10s\n' "  live (Lambda, DigitalOcean, Vast via Prism), to the table" "$live"
printf '%-58s %10s\n' "  --offline (catalog snapshot only)" "$offline"
echo "  $footer ($rows lines of table)"
echo
echo "bench/clouds_offers.lua (median of 20):"
"$skyhost" "$root/bench/clouds_offers.lua" 20 | sed 's/^/  /'
echo
echo "bench/select_offers.lua (10,000 offers, median of 20):"
"$skyhost" "$root/bench/select_offers.lua" | sed 's/^/  /'
