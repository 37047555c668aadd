#!/usr/bin/env bash
# netns-hosts.sh — skyhost's own SSH test hosts: N OpenSSH servers on this machine, each in its
# own network namespace, reachable only from this machine.
#
#   netns-hosts.sh up N         create or repair hosts 1..N (idempotent; hosts above N are removed)
#   netns-hosts.sh down         kill every process we started in the namespaces, remove everything
#   netns-hosts.sh status       one line per host: name, addresses, sshd pid, alive or not
#   netns-hosts.sh pid I        host-view PID of host I's sshd (PID 1 of its PID namespace)
#   netns-hosts.sh kill I       kill host I (its sshd and, with it, every process on the host)
#   netns-hosts.sh link I up|down   take host I's cable out (frames dropped) or plug it back in
#   netns-hosts.sh freeze I | thaw I  SIGSTOP / SIGCONT every process on host I
#   netns-hosts.sh env          shell exports naming the client files
#   netns-hosts.sh add I        create or repair host I alone, leaving the others as they are
#   netns-hosts.sh remove I     remove host I alone (the local cloud's instances, tests/support/
#                               local_cloud.py, come and go one by one)
#
# Host i: network namespace skyt-i, eth0 = 10.203.0.(10+i)/16 (10 is $SKYT_HOST_BASE) and fd5c:203::(10+i)/64 on a veth
# whose root end is a port of bridge skyt-br0 (10.203.0.1/16, fd5c:203::1/64). No default route,
# no forwarding: a host reaches this machine and the other hosts, nothing else. Inside: its own
# hostname (h<i>), mount namespace with private /tmp /var/tmp /root, and PID namespace in which
# sshd is PID 1, so killing sshd takes the whole host down.
#
# Client files in $SKYT_STATE (default /run/skyhost-test; must not be under /tmp or /root, which
# are private on the hosts, because sshd reads authorized_keys inside the host's namespaces):
#   id_ed25519            client key, listed in authorized_keys
#   authorized_keys       every host's AuthorizedKeysFile: tests may append their own keys
#   known_hosts           real host keys of every host, by name, IPv4 and IPv6 address
#   ssh_config            aliases h1..hN:  ssh -F $SKYT_STATE/ssh_config h1 hostname
#   hosts.txt hosts6.txt names.txt   one line per host
# Needs: root, iproute2, util-linux (unshare), openssh-server, openssh-client. No systemd needed;
# the packaged sshd is neither used nor touched.
set -eu

SKYT_PREFIX=${SKYT_PREFIX:-skyt}
SKYT_NET4=${SKYT_NET4:-10.203}
SKYT_NET6=${SKYT_NET6:-fd5c:203:}
SKYT_STATE=${SKYT_STATE:-/run/skyhost-test}
SKYT_SSHD=${SKYT_SSHD:-/usr/sbin/sshd}
SKYT_HOST_BASE=${SKYT_HOST_BASE:-10}
BR="$SKYT_PREFIX-br0"
MAX_HOSTS=200

die() { echo "netns-hosts.sh: $*" >&2; exit 1; }
log() { echo "netns-hosts.sh: $*" >&2; }

ns_of() { echo "$SKYT_PREFIX-$1"; }
veth_of() { echo "$SKYT_PREFIX-v$1"; }
ip4_of() { echo "$SKYT_NET4.0.$((SKYT_HOST_BASE + $1))"; }
ip6_of() { echo "$SKYT_NET6:$((SKYT_HOST_BASE + $1))"; }
name_of() { echo "h$1"; }
dir_of() { echo "$SKYT_STATE/hosts/h$1"; }
gw4() { echo "$SKYT_NET4.0.1"; }
gw6() { echo "$SKYT_NET6:1"; }

check_root() { [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, bridges and sshd need it)"; }

check_tools() {
  check_root
  local t
  for t in ip unshare setsid ssh ssh-keygen awk; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install iproute2, util-linux, openssh-client"
  done
  [ -x "$SKYT_SSHD" ] || die "$SKYT_SSHD not found; install openssh-server (apt-get install -y openssh-server)"
  case "$SKYT_STATE/" in /tmp/* | /root/* | /var/tmp/*) die "SKYT_STATE=$SKYT_STATE is private on the hosts; use /run/...";; esac
}

# Is the process alive? A zombie is not: this box's init reaps orphans late, and kill -0 succeeds
# on a zombie.
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# TERM, wait up to $2 seconds (bounded), then KILL. Only for PIDs this script recorded.
stop_pid() {
  local pid=$1 limit=${2:-3} n=0
  alive "$pid" || return 0
  kill "$pid" 2>/dev/null || true
  while alive "$pid"; do
    n=$((n + 1))
    if [ "$n" -gt $((limit * 50)) ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
    sleep 0.02
  done
}

host_pid() { local f; f="$(dir_of "$1")/host.pid"; [ -s "$f" ] && cat "$f"; }
ns_exists() { [ -e "/run/netns/$(ns_of "$1")" ]; }

# Refuse to talk to an address unless it is routed via our bridge: if the bed is down, a test
# must fail here instead of sending packets towards the default route.
assert_local() {
  local dev
  dev=$(ip route get "$1" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n1)
  [ "$dev" = "$BR" ] || die "refusing $1: routed via '${dev:-nothing}', not $BR (is the test bed up?)"
}

ensure_bridge() {
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge forward_delay 0 stp_state 0
  fi
  ip addr replace "$(gw4)/16" dev "$BR"
  ip -6 addr replace "$(gw6)/64" dev "$BR" nodad 2>/dev/null || log "no IPv6 on $BR (IPv6 tests will be skipped)"
  ip link set "$BR" up
}

client_key() {
  mkdir -p "$SKYT_STATE" /run/sshd # /run/sshd: sshd's privilege-separation directory
  chmod 700 "$SKYT_STATE"
  [ -s "$SKYT_STATE/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C skyhost-test -f "$SKYT_STATE/id_ed25519"
  # keep keys that tests appended; make sure ours is there
  touch "$SKYT_STATE/authorized_keys"
  grep -qF "$(cut -d' ' -f2 "$SKYT_STATE/id_ed25519.pub")" "$SKYT_STATE/authorized_keys" ||
    cat "$SKYT_STATE/id_ed25519.pub" >>"$SKYT_STATE/authorized_keys"
  chmod 600 "$SKYT_STATE/authorized_keys"
}

etc_hosts() { # $1 = N
  local i
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n%s gw\n' "$(gw4)"
  for i in $(seq 1 "$1"); do echo "$(ip4_of "$i") $(name_of "$i")"; done
}

# /etc/netns/<ns>/{hosts,hostname}: `ip netns exec` bind-mounts them over /etc/. Rewritten in
# place so running hosts see a grown host list.
write_etc() { # $1 = i, $2 = file with /etc/hosts content
  local d="/etc/netns/$(ns_of "$1")"
  mkdir -p "$d"
  if [ -f "$d/hosts" ]; then cat "$2" >"$d/hosts"; else cp "$2" "$d/hosts"; fi
  name_of "$1" >"$d/hostname"
}

make_net() { # $1 = i
  local i=$1 ns veth
  ns=$(ns_of "$i"); veth=$(veth_of "$i")
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(ip4_of "$i")/16" dev eth0
  ip -n "$ns" -6 addr add "$(ip6_of "$i")/64" dev eth0 nodad 2>/dev/null || true
  # a fixed MAC per host: a host rebuilt after `kill` must not be unreachable for half a minute
  # because this machine's neighbour cache still holds the old interface's address
  ip -n "$ns" link set eth0 address "$(printf '02:5c:cb:00:%02x:%02x' $((i / 256)) $((i % 256)))"
  ip neigh del "$(ip4_of "$i")" dev "$BR" 2>/dev/null || true
  ip -n "$ns" link set eth0 up
}

write_sshd_config() { # $1 = i
  local d; d=$(dir_of "$1")
  [ -s "$d/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "skyt-h$1" -f "$d/ssh_host_ed25519_key"
  cat >"$d/sshd_config" <<EOF
# generated by tests/support/netns-hosts.sh
ListenAddress 0.0.0.0
ListenAddress ::
Port 22
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $SKYT_STATE/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxSessions 64
MaxStartups 100:30:200
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

start_host() { # $1 = i; starts sshd in the background, finish_host waits for it
  local i=$1 d ns name mounts p
  d=$(dir_of "$i"); ns=$(ns_of "$i"); name=$(name_of "$i")
  mkdir -p "$d"
  write_sshd_config "$i"
  mounts=""
  for p in /tmp /var/tmp /root; do
    mkdir -p "$d/fs$p"
    if [ "$p" = /root ]; then chmod 700 "$d/fs$p"; else chmod 1777 "$d/fs$p"; fi
    mounts="$mounts mount --bind '$d/fs$p' '$p';"
  done
  rm -f "$d/sshd.pid" "$d/host.pid" "$d/unshare.pid"
  # unshare forks: its child is PID 1 of a new PID namespace and execs sshd in the foreground.
  # --kill-child: if unshare dies, so does the host.
  setsid ip netns exec "$ns" unshare --uts --mount --pid --fork --kill-child --mount-proc -- \
    sh -c "hostname '$name'; $mounts exec '$SKYT_SSHD' -D -f '$d/sshd_config' -E '$d/sshd.log'" \
    </dev/null >>"$d/boot.log" 2>&1 &
  echo $! >"$d/unshare.pid"
}

finish_host() { # $1 = i
  local i=$1 d n=0 upid pid
  d=$(dir_of "$i")
  # sshd writes its PidFile after listen(): from then on connections are accepted
  while [ ! -s "$d/sshd.pid" ]; do
    n=$((n + 1))
    if [ "$n" -gt 1000 ]; then
      cat "$d/boot.log" "$d/sshd.log" >&2 2>/dev/null || true
      die "sshd on h$i did not start within 10 s"
    fi
    sleep 0.01
  done
  upid=$(cat "$d/unshare.pid")
  pid=$(awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null)
  [ -n "$pid" ] || die "cannot find the sshd child of unshare ($upid) for h$i"
  echo "$pid" >"$d/host.pid"
}

remove_host() { # $1 = i: every process by PID, then namespace, veth, files
  local i=$1 d ns pid pids
  d=$(dir_of "$i"); ns=$(ns_of "$i")
  pid=$(host_pid "$i" || true)
  [ -n "$pid" ] && { kill -CONT "$pid" 2>/dev/null || true; stop_pid "$pid" 3; }
  pid=$(cat "$d/unshare.pid" 2>/dev/null || true)
  [ -n "$pid" ] && stop_pid "$pid" 3
  if [ -e "/run/netns/$ns" ]; then
    # anything else still in the namespace (frozen or stray processes): by PID, bounded
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      for pid in $pids; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
      sleep 0.2
      for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
    fi
    ip netns del "$ns" 2>/dev/null || true
  fi
  ip link del "$(veth_of "$i")" 2>/dev/null || true
  rm -rf "/etc/netns/$ns" "$d"
}

our_indices() {
  {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$SKYT_PREFIX-\([0-9][0-9]*\)\$/\1/p"
    [ -d "$SKYT_STATE/hosts" ] && ls "$SKYT_STATE/hosts" | sed -n 's/^h\([0-9][0-9]*\)$/\1/p'
  } | sort -n | uniq
}

write_client_files() { # $1 = N
  local n=$1 i key
  : >"$SKYT_STATE/known_hosts.new"; : >"$SKYT_STATE/hosts.txt"; : >"$SKYT_STATE/hosts6.txt"
  : >"$SKYT_STATE/names.txt"
  {
    echo "# generated by netns-hosts.sh"
    for i in $(seq 1 "$n"); do printf 'Host %s\n  HostName %s\n' "$(name_of "$i")" "$(ip4_of "$i")"; done
    cat <<EOF
Host *
  User root
  IdentityFile $SKYT_STATE/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $SKYT_STATE/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
EOF
  } >"$SKYT_STATE/ssh_config"
  for i in $(seq 1 "$n"); do
    key=$(cut -d' ' -f1,2 "$(dir_of "$i")/ssh_host_ed25519_key.pub")
    echo "$(name_of "$i"),$(ip4_of "$i"),$(ip6_of "$i") $key" >>"$SKYT_STATE/known_hosts.new"
    ip4_of "$i" >>"$SKYT_STATE/hosts.txt"
    if ip -n "$(ns_of "$i")" -6 addr show dev eth0 2>/dev/null | grep -q "$(ip6_of "$i")/"; then
      ip6_of "$i" >>"$SKYT_STATE/hosts6.txt"
    fi
    name_of "$i" >>"$SKYT_STATE/names.txt"
  done
  mv "$SKYT_STATE/known_hosts.new" "$SKYT_STATE/known_hosts"
}

cmd_up() {
  local n=${1:-} i pid started=() hf
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] || die "usage: up N (1..$MAX_HOSTS)"
  check_tools
  ip netns list >/dev/null 2>&1 || die "cannot list network namespaces"
  client_key
  ensure_bridge
  for i in $(our_indices); do [ "$i" -gt "$n" ] && remove_host "$i"; done
  hf=$(mktemp)
  etc_hosts "$n" >"$hf"
  for i in $(seq 1 "$n"); do
    pid=$(host_pid "$i" 2>/dev/null || true)
    if ns_exists "$i" && alive "$pid"; then
      write_etc "$i" "$hf"
      ip link set "$(veth_of "$i")" up 2>/dev/null || true # undo `link I down`
      cmd_signal CONT "$i"                                  # undo `freeze I`
      continue
    fi
    # dead, half made or left over from lost state: clear it, then build it afresh
    if ns_exists "$i" || [ -d "$(dir_of "$i")" ] || ip link show "$(veth_of "$i")" >/dev/null 2>&1; then
      remove_host "$i"
    fi
    write_etc "$i" "$hf"
    make_net "$i" || { rm -f "$hf"; die "cannot create network namespace $(ns_of "$i") (not root, or no CAP_NET_ADMIN?)"; }
    start_host "$i"
    started+=("$i")
  done
  rm -f "$hf"
  for i in "${started[@]}"; do finish_host "$i"; done
  write_client_files "$n"
  for i in $(seq 1 "$n"); do assert_local "$(ip4_of "$i")"; done
  log "up: $n hosts (${#started[@]} started) on $BR $(gw4)/16; ssh -F $SKYT_STATE/ssh_config h1"
}

cmd_add() { # $1 = i
  need_index "${1:-}"
  local i=$1 hf pid
  [ "$i" -ge 1 ] && [ "$i" -le $MAX_HOSTS ] || die "usage: add I (1..$MAX_HOSTS)"
  check_tools
  client_key
  ensure_bridge
  hf=$(mktemp)
  etc_hosts 0 >"$hf"
  echo "$(ip4_of "$i") $(name_of "$i")" >>"$hf"
  pid=$(host_pid "$i" 2>/dev/null || true)
  if ! { ns_exists "$i" && alive "$pid"; }; then
    if ns_exists "$i" || [ -d "$(dir_of "$i")" ] || ip link show "$(veth_of "$i")" >/dev/null 2>&1; then
      remove_host "$i"
    fi
    write_etc "$i" "$hf"
    make_net "$i" || { rm -f "$hf"; die "cannot create network namespace $(ns_of "$i")"; }
    start_host "$i"
    finish_host "$i"
  fi
  rm -f "$hf"
  assert_local "$(ip4_of "$i")"
  log "add: h$i at $(ip4_of "$i")"
}

cmd_down() {
  local i pid
  # SIGTERM every host's PID 1 at once so that the per-host stop below finds them gone
  for i in $(our_indices); do
    pid=$(host_pid "$i" 2>/dev/null || true)
    if alive "$pid"; then kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; fi
  done
  for i in $(our_indices); do remove_host "$i"; done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$SKYT_STATE"
  rmdir /etc/netns 2>/dev/null || true
  log "down: removed $SKYT_PREFIX-* namespaces, $BR and $SKYT_STATE"
}

cmd_status() {
  local i pid state
  for i in $(our_indices); do
    pid=$(host_pid "$i" 2>/dev/null || true)
    state=down
    alive "$pid" && state=up
    printf '%-5s %-15s %-18s pid=%-8s %s\n' "$(name_of "$i")" "$(ip4_of "$i")" "$(ip6_of "$i")" "${pid:--}" "$state"
  done
}

need_index() { [[ "${1:-}" =~ ^[0-9]+$ ]] || die "host index expected, got '${1:-}'"; }

cmd_kill() {
  need_index "${1:-}"
  local pid; pid=$(host_pid "$1") || die "h$1 is not up"
  kill -CONT "$pid" 2>/dev/null || true
  kill -9 "$pid" 2>/dev/null || true
}

cmd_link() {
  need_index "${1:-}"
  case "${2:-}" in up | down) ip link set "$(veth_of "$1")" "$2" ;; *) die "usage: link I up|down" ;; esac
}

cmd_signal() { # $1 = STOP|CONT, $2 = i
  need_index "${2:-}"
  local pid
  for pid in $(ip netns pids "$(ns_of "$2")" 2>/dev/null); do kill "-$1" "$pid" 2>/dev/null || true; done
}

cmd_env() {
  cat <<EOF
export SKYT_STATE='$SKYT_STATE'
export SKYT_SSH_CONFIG='$SKYT_STATE/ssh_config'
export SKYT_KNOWN_HOSTS='$SKYT_STATE/known_hosts'
export SKYT_KEY='$SKYT_STATE/id_ed25519'
export SKYT_HOSTS_FILE='$SKYT_STATE/hosts.txt'
EOF
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) check_root; cmd_down ;;
  status) cmd_status ;;
  pid) need_index "${2:-}"; host_pid "$2" || die "h$2 is not up" ;;
  kill) cmd_kill "${2:-}" ;;
  link) cmd_link "${2:-}" "${3:-}" ;;
  freeze) cmd_signal STOP "${2:-}" ;;
  thaw) cmd_signal CONT "${2:-}" ;;
  assert-local) assert_local "${2:?address}" ;;
  env) cmd_env ;;
  add) cmd_add "${2:-}" ;;
  remove) need_index "${2:-}"; check_root; remove_host "$2" ;;
  *) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
