#!/usr/bin/env bash
# Runs each fuzz target on fresh seed corpora (made from real encodings by fuzz_seeds) for a
# bounded time, and fails on any finding: a crash, a sanitizer report, a broken invariant, a
# leak, a timeout or too much memory. What a finding left is in BUILD/fuzz-work/artifacts.
#
#   tests/fuzz/run.sh BUILD SECONDS_PER_TARGET [libFuzzer flags...]
#   tests/fuzz/run.sh build-fuzz 60                       # what .ci/run does
#   FUZZ_PARALLEL=1 tests/fuzz/run.sh build-fuzz 3600 -runs=1000000 -jobs=2  # longer (docs/fuzzing.md)
set -euo pipefail
build=${1:?usage: run.sh BUILD SECONDS [flags...]}
secs=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
work=$build/fuzz-work
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
"$build/bin/fuzz_seeds" "$work/corpus"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
# One target per core at a time (FUZZ_PARALLEL, default the number of cores; set it to 1 when
# passing -jobs=N): each target is single-threaded, so on CI's 2 cores two run side by side
# for the same time each.
par=${FUZZ_PARALLEL:-$(nproc)}
run_one() {
  local t=$1 log=$work/$1.log start
  shift
  start=$(date +%s)
  if "$build/bin/$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$work/artifacts/$t-" "$@" "$work/corpus/$t" \
      >"$log" 2>&1; then
    execs=$(awk '/stat::number_of_executed_units/ { n += $2 } END { print n + 0 }' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "$t: ok, $execs execs in $(( $(date +%s) - start )) s ($cov, $(ls "$work/corpus/$t" | wc -l) inputs)" \
      >"$work/$t.summary"
  else
    { echo "$t: FINDING (log: $log)"
      grep -E 'ERROR|SUMMARY|Test unit written|==[0-9]+==' "$log" | head -20 || tail -40 "$log"
    } >"$work/$t.summary"
    return 1
  fi
}
targets=(fuzz_frames fuzz_data fuzz_worker fuzz_tree)
pids=()
for t in "${targets[@]}"; do
  run_one "$t" "$@" &
  pids+=($!)
  if (( ${#pids[@]} >= par )); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
for t in "${targets[@]}"; do cat "$work/$t.summary"; done
exit $status
