#!/usr/bin/env bash
# SSH pools (sky.ssh) beside the usual tools, on the same test hosts: real OpenSSH servers in
# network namespaces on this machine (tests/support/netns-hosts.sh).
#   bench/run-ssh.sh [build-dir]
# 1. bootstrap of 4, 16, 64 hosts (connect, upload the worker, start it, close) beside
#    `pdsh -R ssh ... true` and `parallel-ssh ... true`; cold (no worker on the hosts; also beside
#    `parallel-ssh -I` uploading the same binary) and warm (worker already there, found by its
#    content hash);
# 2. trivial task round trip on a warm 4-node pool beside `ssh host true` over a ControlMaster
#    connection and Dask's SSHCluster (workers on the same 4 hosts);
#    The same round trip for a task running sky.sh("true"), beside the ssh one.
# 3. 1 GiB fetched from a node with pool:get beside `ssh host cat FILE`, with the cipher skyhost
#    negotiated and with OpenSSH's faster ones; and a task returning a 256 MiB string.
# 4. (SECTIONS=torch, opt-in: needs Debian's python3-torch) time from pool:torchrun on a warm
#    2-host pool to the first rank's output line, beside starting the same torchrun on both
#    hosts by hand with ssh (ControlMaster connections) until its first line.
# Every figure is the median of RUNS runs (RUNS64 for 64 hosts), the runs of each section
# interleaved with the peers' so that outside load hits all of them alike. The hosts are brought
# up here and always taken down at exit.
# Settings (environment): RUNS=5 RUNS64=3 NS="4 16 64" RT=2000 (skyhost round trips per run)
#   DASK_RT=1000 GET_MIB=1024 STR_MIB=256 SECTIONS="bootstrap tasks" (add "torch" for 4.)
#   SKYT_PREFIX=skyb SKYT_NET4=10.206 SKYT_NET6=fd5c:206: SKYT_STATE=/run/skyhost-bench (the
#   test hosts' names, subnets and client files; pick your own if others run hosts too)
# Needs root and, for the peers: apt-get install -y pdsh pssh hyperfine python3-distributed
# python3-asyncssh (a missing peer prints "-").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
sky="$build/bin/skyhost"
[ -x "$sky" ] || { echo "run-ssh.sh: $sky not found (build first)" >&2; exit 1; }

export SKYT_PREFIX=${SKYT_PREFIX:-skyb} SKYT_NET4=${SKYT_NET4:-10.206}
export SKYT_NET6=${SKYT_NET6:-fd5c:206:} SKYT_STATE=${SKYT_STATE:-/run/skyhost-bench}
RUNS=${RUNS:-5}; RUNS64=${RUNS64:-3}; NS=${NS:-4 16 64}
RT=${RT:-2000}; DASK_RT=${DASK_RT:-1000}; GET_MIB=${GET_MIB:-1024}; STR_MIB=${STR_MIB:-256}
SECTIONS=${SECTIONS:-bootstrap tasks}
TASK_NODES=4
PY=/usr/bin/python3
bed="$root/tests/support/netns-hosts.sh"
S=$SKYT_STATE
C=$S/ssh_config
C25519="-o KexAlgorithms=curve25519-sha256"
work=$(mktemp -d)
raw=$work/raw
: >"$raw"
# The 1 GiB source (written by h1) and the copies live on tmpfs: this machine's page cache is
# reclaimed proactively (kdamond), so a file on disk would be read back from the disk at a few
# MB/s and measure that instead. /dev/shm is not private on the test hosts.
shm_src=/dev/shm/skyb-src-$$.bin
shm_get=/dev/shm/skyb-get-$$.bin
shm_ssh=/dev/shm/skyb-ssh-$$.bin

cleanup() {
  set +e
  [ -S "$work/cm-h1" ] && ssh -o ControlPath="$work/cm-h1" -O exit h1 >/dev/null 2>&1
  rm -f "$shm_src" "$shm_get" "$shm_get.skyhost-part" "$shm_ssh"
  "$bed" down >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

has() { command -v "$1" >/dev/null 2>&1; }
has_section() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
rec() { echo "$1 $2 $3" >>"$raw"; }
die() { echo "run-ssh.sh: $*" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# median of metric $1 for N=$2, or "-" when never recorded
med() {
  awk -v k="$1" -v n="$2" '$1 == k && $2 == n { print $3 }' "$raw" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}
# every value of metric $1 for N=$2, in run order
vals() { awk -v k="$1" -v n="$2" '$1 == k && $2 == n { printf "%s%s", s, $3; s = " " }' "$raw"; }
# how many values metric $1 has for N=$2
cnt() { awk -v k="$1" -v n="$2" '$1 == k && $2 == n' "$raw" | wc -l; }

# time "$@" (wall seconds, with bash's own clock: no process started for it), record as $1 $2
timed() {
  local m=$1 n=$2 t0 t1; shift 2
  t0=$EPOCHREALTIME
  "$@" >"$work/last.out" 2>"$work/last.err" || {
    tail -n 20 "$work/last.out" "$work/last.err" >&2
    die "$m (N=$n) failed: $*"
  }
  t1=$EPOCHREALTIME
  rec "$m" "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
}
# "name value unit" lines of the last output, recorded with the prefix $1 for N=$2
rec_lines() {
  local k v
  while read -r k v _; do
    case "$v" in '' | *[!0-9.]*) continue ;; esac
    rec "$1$k" "$2" "$v"
  done <"$work/last.out"
}

ratio() { # a / b with $3 decimals, "-" when either is missing
  awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
    if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.*fx\n", d, a / b }'
}
sec() { [ "$1" = - ] && echo - || awk -v a="$1" 'BEGIN { printf "%.2f s", a }'; }
us() { # microseconds, shown as µs or ms
  [ "$1" = - ] && { echo -; return; }
  awk -v a="$1" 'BEGIN { if (a < 1000) printf "%.0f µs", a; else printf "%.2f ms", a / 1000 }'
}
mbps() { [ "$1" = - ] && echo - || awk -v s="$1" -v b="$2" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }

# After Dask's cluster has closed, its processes on the hosts take a few seconds to exit; their
# multiprocessing resource tracker then unlinks the semaphores they made in /dev/shm (shared
# with the hosts). Wait for that (bounded), then remove what they still left behind: only names
# that appeared during the run and that no process has mapped.
dask_settle() {
  local i k ns pid busy f
  for k in $(seq 1 100); do
    busy=0
    for i in $(seq 1 "$rt_n"); do
      ns=$SKYT_PREFIX-$i
      for pid in $(ip netns pids "$ns" 2>/dev/null); do
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in python*) busy=1 ;; esac
      done
    done
    [ $busy = 0 ] && break
    sleep 0.1
  done
  ls /dev/shm | grep '^sem\.mp-' | grep -vxF -f "$work/shm.before" | while read -r f; do
    grep -qsF "/dev/shm/$f" /proc/[0-9]*/maps || rm -f "/dev/shm/$f"
  done || true
}

[ "$(id -u)" = 0 ] || die "must run as root (the test hosts are network namespaces)"
maxn=0
for n in $NS; do [ "$n" -gt "$maxn" ] && maxn=$n; done
has_section tasks && [ "$maxn" -lt $TASK_NODES ] && maxn=$TASK_NODES
start_load=$(load)  # before our own work: what else runs on the machine
echo "run-ssh.sh: bringing up $maxn test hosts ($SKYT_PREFIX-*, $SKYT_NET4.0.0/16)..." >&2
"$bed" up "$maxn" >/dev/null 2>"$work/bed.err" || { cat "$work/bed.err" >&2; die "netns-hosts.sh up $maxn failed"; }
for i in $(seq 1 "$maxn"); do "$bed" assert-local "$(sed -n "${i}p" "$S/hosts.txt")"; done
# all answer before anything is timed
for i in $(seq 1 "$maxn"); do ssh -F "$C" "h$i" true & done
wait
t_start=$EPOCHREALTIME
worker="$build/bin/skyworker"
worker_mb=$(awk -v b="$(stat -c %s "$worker")" 'BEGIN { printf "%.1f", b / 1e6 }')

# ------------------------------------------------------------------------------ 1. bootstrap
if has_section bootstrap; then
  for n in $NS; do
    runs=$RUNS; [ "$n" -ge 64 ] && runs=$RUNS64
    head -n "$n" "$S/names.txt" >"$work/names.$n"
    echo "run-ssh.sh: bootstrap of $n hosts, $runs runs..." >&2
    # untimed: every node answers from its own host
    timeout 300 "$sky" "$root/bench/ssh_bootstrap.lua" "$S" "$n" check >"$work/last.out" 2>&1 ||
      { cat "$work/last.out" >&2; die "skyhost bootstrap of $n hosts failed"; }
    for r in $(seq 1 "$runs"); do
      # cold: no worker on the hosts (their /root is private, so each gets its own upload)
      PDSH_RCMD_TYPE=ssh PDSH_SSH_ARGS_APPEND="-F $C $C25519" \
        pdsh -R ssh -f "$n" -w "^$work/names.$n" 'rm -rf .skyhost' >/dev/null 2>&1 ||
        for h in $(cat "$work/names.$n"); do ssh -F "$C" "$h" 'rm -rf .skyhost'; done
      timed sky_cold "$n" timeout 300 "$sky" "$root/bench/ssh_bootstrap.lua" "$S" "$n"
      rec_lines cold_ "$n"
      timed sky_warm "$n" timeout 300 "$sky" "$root/bench/ssh_bootstrap.lua" "$S" "$n"
      rec_lines warm_ "$n"
      if has pdsh; then
        timed pdsh "$n" env PDSH_RCMD_TYPE=ssh PDSH_SSH_ARGS_APPEND="-F $C" \
          pdsh -R ssh -f "$n" -w "^$work/names.$n" true
        timed pdsh_c25519 "$n" env PDSH_RCMD_TYPE=ssh PDSH_SSH_ARGS_APPEND="-F $C $C25519" \
          pdsh -R ssh -f "$n" -w "^$work/names.$n" true
      fi
      if has parallel-ssh; then
        timed pssh "$n" parallel-ssh -p "$n" -t 60 -h "$work/names.$n" -x "-F $C" true
        timed pssh_c25519 "$n" parallel-ssh -p "$n" -t 60 -h "$work/names.$n" -x "-F $C $C25519" true
        # the cold bootstrap's peer: one connection per host that uploads the same worker binary
        # (parallel-ssh -I sends its stdin to every host) and makes it executable
        timed pssh_upload "$n" parallel-ssh -I -p "$n" -t 120 -h "$work/names.$n" -x "-F $C $C25519" \
          'mkdir -p .skyb-peer && cat > .skyb-peer/w && chmod 755 .skyb-peer/w' <"$worker"
      fi
    done
  done
fi

# ------------------------------------------------------------------------------ 2 + 3. tasks
rt_n=$TASK_NODES
get_bytes=$((GET_MIB << 20))
if has_section tasks; then
  echo "run-ssh.sh: round trips and transfers on $rt_n hosts, $RUNS runs..." >&2
  # the cipher and MAC libssh2 negotiated with these servers: ssh_bench prints them
  algos=""
  if [ -x "$build/bin/ssh_bench" ]; then
    algos=$(timeout 120 "$build/bin/ssh_bench" "latency*" 2>/dev/null | sed -n 's/^ *skyhost algorithms: //p' || true)
  fi
  cipher=$(echo "$algos" | sed -n 's/.*cipher=\([^ ]*\).*/\1/p')
  mac=$(echo "$algos" | sed -n 's/.*mac=\([^ ]*\).*/\1/p')
  [ -n "$cipher" ] || { cipher=aes128-ctr; mac=hmac-sha2-256; algos="(not read: no ssh_bench; assumed cipher=$cipher mac=$mac)"; }
  same="$C25519 -c $cipher -m $mac"
  ssh -F "$C" h1 "head -c $get_bytes /dev/zero > $shm_src"
  ssh -F "$C" -o ControlMaster=yes -o ControlPath="$work/cm-h1" -o ControlPersist=900 -N -f h1
  for r in $(seq 1 "$RUNS"); do
    timed sky_tasks "$rt_n" timeout 300 "$sky" "$root/bench/ssh_tasks.lua" "$S" "$rt_n" "$RT" \
      "$shm_src" "$shm_get" "$STR_MIB"
    rec_lines "" "$rt_n"
    grep '^str_error' "$work/last.out" >"$work/str_error" || true
    timed ssh_same_null 1 sh -c "ssh -F '$C' $same h1 'cat $shm_src' > /dev/null"
    timed ssh_same_shm 1 sh -c "ssh -F '$C' $same h1 'cat $shm_src' > '$shm_ssh'"
    rm -f "$shm_ssh"
    timed ssh_gcm_null 1 sh -c "ssh -F '$C' $C25519 -c aes128-gcm@openssh.com h1 'cat $shm_src' > /dev/null"
    timed ssh_chacha_null 1 sh -c "ssh -F '$C' $C25519 -c chacha20-poly1305@openssh.com h1 'cat $shm_src' > /dev/null"
    timed ssh_same_setup 1 ssh -F "$C" $same h1 true
    if has hyperfine; then
      hyperfine -N -w 5 -r 300 --export-json "$work/hf.json" \
        "ssh -F $C -o ControlPath=$work/cm-h1 h1 true" >/dev/null 2>&1 || die "hyperfine failed"
      $PY - "$work/hf.json" >"$work/last.out" <<'EOF'
import json, math, sys
t = sorted(json.load(open(sys.argv[1]))["results"][0]["times"])
pick = lambda p: t[max(0, math.ceil(len(t) * p) - 1)]
print("round_trip_p50 %.1f us" % (pick(0.50) * 1e6))
print("round_trip_p99 %.1f us" % (pick(0.99) * 1e6))
EOF
      rec_lines cm_ 1
    fi
    if $PY -c 'import distributed, asyncssh' 2>/dev/null; then
      ls /dev/shm >"$work/shm.before"
      timeout 600 $PY "$root/bench/dask_ssh.py" "$S" "$rt_n" "$DASK_RT" >"$work/last.out" 2>"$work/dask.err" ||
        { tail -n 20 "$work/dask.err" >&2; die "dask SSHCluster failed"; }
      rec_lines dask_ "$rt_n"
      dask_settle
    fi
  done
  rm -f "$shm_src"
fi
# ------------------------------------------------------------------------------ 4. torchrun
if has_section torch; then
  echo "run-ssh.sh: time to a torchrun's first output on 2 hosts, $RUNS runs..." >&2
  ip1=$(sed -n 1p "$S/hosts.txt")
  for i in 1 2; do
    ssh -F "$C" -o ControlMaster=yes -o ControlPath="$work/cmt-h$i" -o ControlPersist=900 -N -f "h$i"
  done
  for r in $(seq 1 "$RUNS"); do
    timeout 600 "$sky" "$root/bench/ssh_torchrun.lua" "$S" >"$work/last.out" 2>"$work/last.err" ||
      { tail -n 20 "$work/last.out" "$work/last.err" >&2; die "skyhost torchrun failed"; }
    rec_lines "" 2
    # by hand: the same launcher and script on both hosts at once; time to the first line
    timeout 600 $PY - "$C" "$work" "$ip1" $((29500 + r)) "$root" >"$work/last.out" <<'PYEOF'
import subprocess, sys, time
conf, work, ip1, port, root = sys.argv[1:]
cmd = ("GLOO_SOCKET_IFNAME=eth0 /usr/bin/python3 {root}/tests/support/torchrun.py --nnodes=2 "
       "--node_rank={i} --nproc_per_node=1 --master_addr={ip1} --master_port={port} "
       "{root}/bench/torch_hello.py")
t0 = time.monotonic()
ps = [subprocess.Popen(["ssh", "-F", conf, "-o", f"ControlPath={work}/cmt-h{i + 1}", f"h{i + 1}",
                        cmd.format(root=root, i=i, ip1=ip1, port=port)],
                       stdout=subprocess.PIPE, text=True) for i in range(2)]
first = None
for line in ps[0].stdout:
    if first is None and line.startswith("rank"):
        first = time.monotonic() - t0
for p in ps:
    p.wait()
print("hand_first_s %.3f s" % first)
print("hand_total_s %.3f s" % (time.monotonic() - t0))
PYEOF
    rec_lines "" 2
  done
fi

end_load=$(load)
total=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

# ------------------------------------------------------------------------------ tables
echo
echo "SSH test hosts: sshd in network namespaces on this machine; both ends share its $(nproc) cores,"
echo "so these figures are CPU-bound (crypto and process start on both sides), not network-bound."
echo "Load average (1/5/15 min) before the hosts came up: $start_load (other work on the machine);"
echo "at the end: $end_load."
echo "$total s of measuring; $(date -u '+%Y-%m-%d %H:%M UTC')."
if has_section bootstrap; then
  echo
  echo "Bootstrap: sky.compute{provider = sky.ssh{...}, nodes = N} until ready, then pool:close(), timed"
  echo "as the whole skyhost process, beside \`true\` on every host. Median of $RUNS runs ($RUNS64 for 64 hosts)."
  echo "\"c25519\" = -o KexAlgorithms=curve25519-sha256, the KEX libssh2 1.10 negotiates (OpenSSH's default"
  echo "is sntrup761x25519, ~90 ms more CPU per connection). Warm: the worker is on the hosts already."
  printf '%-4s %13s %9s %12s %9s %12s %11s %11s\n' N "skyhost warm" pdsh "pdsh c25519" pssh "pssh c25519" \
    "warm/pdsh" "warm/pdsh-c"
  for n in $NS; do
    w=$(med sky_warm "$n"); p=$(med pdsh "$n"); pc=$(med pdsh_c25519 "$n")
    printf '%-4s %13s %9s %12s %9s %12s %11s %11s\n' "$n" "$(sec "$w")" "$(sec "$p")" "$(sec "$pc")" \
      "$(sec "$(med pssh "$n")")" "$(sec "$(med pssh_c25519 "$n")")" "$(ratio "$w" "$p")" "$(ratio "$w" "$pc")"
  done
  echo "Cold: no worker on the hosts; each gets the $worker_mb MB skyworker. \"pssh -I upload\" = parallel-ssh -I"
  echo "(c25519) piping the same binary into \`cat > FILE && chmod 755 FILE\` on every host, one connection each."
  printf '%-4s %13s %16s %9s %12s %14s %11s %11s\n' N "skyhost cold" "pssh -I upload" pdsh "pdsh c25519" \
    "cold/upload" "cold/pdsh" "cold/pdsh-c"
  for n in $NS; do
    c=$(med sky_cold "$n"); u=$(med pssh_upload "$n"); p=$(med pdsh "$n"); pc=$(med pdsh_c25519 "$n")
    printf '%-4s %13s %16s %9s %12s %14s %11s %11s\n' "$n" "$(sec "$c")" "$(sec "$u")" "$(sec "$p")" \
      "$(sec "$pc")" "$(ratio "$c" "$u")" "$(ratio "$c" "$p")" "$(ratio "$c" "$pc")"
  done
  echo "skyhost's own split (median): ready / close"
  for n in $NS; do
    echo "  N=$n: cold $(sec "$(med cold_ready_s "$n")") / $(sec "$(med cold_close_s "$n")"),"\
      "warm $(sec "$(med warm_ready_s "$n")") / $(sec "$(med warm_close_s "$n")")"
  done
  echo "(target: skyhost <= 1.2x pdsh)"
fi
if has_section tasks; then
  echo
  echo "Trivial task round trip, $rt_n hosts (h1-h$rt_n), one task at a time; median over $RUNS runs of each run's"
  echo "p50/p99 (skyhost: $RT round trips per run on a warm pool; ssh: hyperfine, 300 per run;"
  echo "Dask SSHCluster: scheduler on h1, one worker on each of h1-h$rt_n, $DASK_RT per run)."
  sp50=$(med round_trip_p50 "$rt_n"); sp99=$(med round_trip_p99 "$rt_n")
  printf '%-18s %12s %22s %16s %14s %14s\n' "" skyhost "ssh -o ControlPath" "Dask SSHCluster" "vs ssh (CM)" "vs Dask"
  for q in p50 p99; do
    s=$(med "round_trip_$q" "$rt_n"); cm=$(med "cm_round_trip_$q" 1); d=$(med "dask_round_trip_$q" "$rt_n")
    printf '%-18s %12s %22s %16s %14s %14s\n' "round trip $q" "$(us "$s")" "$(us "$cm")" "$(us "$d")" \
      "$(ratio "$cm" "$s" 0) faster" "$(ratio "$d" "$s" 0) faster"
  done
  for q in p50 p99; do
    s=$(med "sh_round_trip_$q" "$rt_n"); cm=$(med "cm_round_trip_$q" 1)
    printf '%-18s %12s %22s %16s %14s\n' "sky.sh(true) $q" "$(us "$s")" "$(us "$cm")" "" \
      "$(ratio "$cm" "$s" 0) faster"
  done
  echo "(skyhost p50 of each run, µs: $(vals round_trip_p50 "$rt_n"); Dask SSHCluster start, median:"
  echo " $(sec "$(med dask_startup_s "$rt_n")"); target: skyhost p50 <= 0.5 ms)"
  echo
  echo "$GET_MIB MiB from node 0 (a file on h1, in its page cache): pool:get into tmpfs beside"
  echo "\`ssh h1 'cat FILE'\` (new connection each run, curve25519). Median of $RUNS runs."
  echo "skyhost negotiated: $algos"
  g=$(med get_s "$rt_n")
  printf '%-52s %9s %10s %16s\n' "" time rate "skyhost/peer"
  row() { printf '%-52s %9s %10s %16s\n' "$1" "$(sec "$2")" "$(mbps "$2" "$get_bytes")" "$3"; }
  row "skyhost pool:get -> tmpfs file" "$g" ""
  row "ssh $cipher + $mac (same as skyhost) -> /dev/null" "$(med ssh_same_null 1)" "$(ratio "$(med ssh_same_null 1)" "$g")"
  row "ssh $cipher + $mac (same as skyhost) -> tmpfs file" "$(med ssh_same_shm 1)" "$(ratio "$(med ssh_same_shm 1)" "$g")"
  row "ssh aes128-gcm -> /dev/null" "$(med ssh_gcm_null 1)" "$(ratio "$(med ssh_gcm_null 1)" "$g")"
  row "ssh chacha20-poly1305 -> /dev/null" "$(med ssh_chacha_null 1)" "$(ratio "$(med ssh_chacha_null 1)" "$g")"
  echo "(the ssh times include connecting: \`ssh ... true\` with the same options takes $(sec "$(med ssh_same_setup 1)");"
  echo " skyhost/peer is throughput, i.e. peer time / skyhost time; target >= 0.8x with the same cipher)"
  echo "(each run, seconds: pool:get $(vals get_s "$rt_n"); ssh same cipher -> /dev/null $(vals ssh_same_null 1))"
  st=$(med str_s "$rt_n")
  if [ "$(cnt str_s "$rt_n")" -gt 0 ]; then
    echo "A task returning a $STR_MIB MiB string (string.rep on the worker, decoded into the script):"\
      "$(sec "$st") = $(mbps "$st" $((STR_MIB << 20))) (median of $(cnt str_s "$rt_n"): $(vals str_s "$rt_n"))"
  fi
  if [ -s "$work/str_error" ]; then echo "A task returning a $STR_MIB MiB string failed: $(head -n 1 "$work/str_error")"; fi
fi
if has_section torch; then
  echo
  echo "torchrun on 2 hosts (gloo, 1 process each, bench/torch_hello.py: init, print, exit), from the"
  echo "call to the first rank's line; skyhost: pool:torchrun on a warm pool; by hand: ssh over"
  echo "ControlMaster connections starting the same launcher on both hosts. Median of $RUNS runs."
  printf '%-24s %12s %12s %12s\n' "" skyhost "ssh by hand" "skyhost/ssh"
  f=$(med torchrun_first_s 2); hf=$(med hand_first_s 2); t=$(med torchrun_total_s 2); ht=$(med hand_total_s 2)
  printf '%-24s %12s %12s %12s\n' "first output" "$(sec "$f")" "$(sec "$hf")" "$(ratio "$f" "$hf")"
  printf '%-24s %12s %12s %12s\n' "whole run" "$(sec "$t")" "$(sec "$ht")" "$(ratio "$t" "$ht")"
  echo "(each run, first output: skyhost $(vals torchrun_first_s 2); by hand $(vals hand_first_s 2))"
fi
