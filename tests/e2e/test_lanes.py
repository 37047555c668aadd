#!/usr/bin/python3
"""pool:get and pool:put of a large file over several SSH sessions at once ("lanes",
docs/data.md) against a real OpenSSH server in a network namespace (the e2e bed,
tests/support/netns-hosts.sh): content checked by sha256, a piece's `dd` killed part way or a
lane's whole connection cut and the transfer still whole, and no extra sshd session left once
the transfer has returned. Needs root."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

SKYHOST = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOSTS_SH = os.path.join(ROOT, "tests", "support", "netns-hosts.sh")
SCRIPT = os.path.join(HERE, "ssh_pool.lua")
ENV = dict(os.environ, SKYT_PREFIX="skye", SKYT_NET4="10.205", SKYT_NET6="fd5c:205:",
           SKYT_STATE="/run/skyhost-e2e")
STATE = ENV["SKYT_STATE"]
PIECE = 32 << 20  # lanes.cpp's kPiece
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from checks import case, finish  # noqa: E402


def on_host(cmd, timeout=60):
    r = subprocess.run(["ssh", "-F", f"{STATE}/ssh_config", "h1", cmd], env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout


def lanes(**env):
    """One skyhost run of ssh_pool.lua's "lanes" mode; returns (stdout, sshd before, after)."""
    e = dict(ENV, HOSTS="10.205.0.11", **{k: str(v) for k, v in env.items()})
    r = subprocess.run([SKYHOST, SCRIPT, "lanes"], env=e, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and "LANES ok" in r.stdout, r.stdout + r.stderr
    m = re.search(r"SSHD (\d+) (\d+)", r.stdout)
    assert m, r.stdout
    return r.stdout, int(m.group(1)), int(m.group(2))


def while_cutting(script, fn, linger=False):
    """Runs `script` on h1 beside fn(), once it says READY (its own session is then up, and
    counted in fn's "before"); returns fn's result and what the script printed. With `linger`
    the script stays until fn has returned (its session counted in "after" too), then is ended."""
    cutter = subprocess.Popen(["ssh", "-F", f"{STATE}/ssh_config", "h1", script], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = cutter.stdout.readline()
        assert first == "READY\n", first + cutter.stderr.read()
        r = fn()
        if linger:
            cutter.kill()
        out, err = cutter.communicate(timeout=60)
        return r, out + err
    finally:
        if cutter.poll() is None:
            cutter.kill()
            cutter.wait()


# On h1 (its own PID namespace: every process there is this test's): kill -9 a `dd` of the
# transfer (one whose command line has MATCH) once it has run a moment, print its range, then
# the `dd` that carries the rest of that range.
KILL_DD = r"""echo READY; end=$(( $(date +%s) + 60 ))
while :; do for p in $(pgrep -x dd); do
    c=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null); case "$c" in *MATCH*) ;; *) continue;; esac
    sleep 0.1; kill -9 $p 2>/dev/null && { echo "KILLED $c"; break 2; }; done
  [ "$(date +%s)" -ge $end ] && { echo NODD; exit 1; }; sleep 0.01; done
idle=0
while [ $idle -lt 50 ] && [ "$(date +%s)" -lt $end ]; do found=0
  for p in $(pgrep -x dd); do found=1; echo "DD $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)"; done
  if [ $found = 1 ]; then idle=0; else idle=$((idle + 1)); fi; sleep 0.01; done | sort -u"""

# On h1: once a `dd` of the transfer runs in a session that is not the worker's (a lane's), kill
# that session's sshd process (the monitor above it ends with it): the lane loses its connection
# mid-piece.
KILL_LANE = r"""echo READY; end=$(( $(date +%s) + 60 ))
parent() { ps -o ppid= -p "$1" | tr -d ' '; }
ws=""
while :; do
  if [ -z "$ws" ]; then w=$(pgrep '^skyworker' | head -n 1)
    while [ -n "$w" ] && [ "$w" != 1 ]; do w=$(parent "$w")
      [ "$(ps -o comm= -p "$w")" = sshd ] && { ws=$w; break; }; done; fi
  for p in $(pgrep -x dd); do s=$(parent "$p")
    [ -z "$ws" ] || [ -z "$s" ] || [ "$s" = "$ws" ] && continue
    sleep 0.1; kill -9 "$s" 2>/dev/null && { echo "KILLED session $s"; exec sleep 600; }; done
  [ "$(date +%s)" -ge $end ] && { echo NOLANE; exit 1; }; sleep 0.01; done"""


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


subprocess.run([HOSTS_SH, "up", "1"], env=ENV, check=True, capture_output=True)
try:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        # 4 pieces and a short one: more pieces than lanes, the last not a whole piece
        want = on_host("head -c 130M /dev/urandom > lanes.bin && sha256sum lanes.bin").split()[0]
        dest = os.path.join(d, "lanes.bin")

        @case("pool:get over 4 sessions: the file whole, no extra sshd session left after")
        def _():
            out, before, after = lanes(LANES=4, DIR="get", REMOTE="lanes.bin", DEST=dest)
            assert sha(dest) == want
            assert not os.path.exists(dest + ".skyhost-part")
            assert before == after, out

        @case("pool:put over 4 sessions: the file whole on the node, no extra session left")
        def _():
            out, before, after = lanes(LANES=4, DIR="put", SRC=dest, REMOTE="up/lanes.bin")
            r = on_host("sha256sum up/lanes.bin; ls up")
            assert r.split()[0] == want and "skyhost-part" not in r, r
            assert before == after, out

        @case("a get piece's dd killed part way: the rest of its range only is read again")
        def _():
            os.remove(dest)
            script = KILL_DD.replace("MATCH", "if=lanes.bin")
            (out, _, _), cut = while_cutting(
                script, lambda: lanes(LANES=3, DIR="get", REMOTE="lanes.bin", DEST=dest))
            assert sha(dest) == want
            m = re.search(r"KILLED .*skip=(\d+) count=(\d+)", cut)
            assert m, cut
            start, end = int(m.group(1)), int(m.group(1)) + int(m.group(2))
            rest = [(int(a), int(b)) for a, b in re.findall(r"DD .*skip=(\d+) count=(\d+)", cut)]
            # the rest of the killed range, from past its start (what arrived is not read again)
            assert any(start < a < end and a + b == end for a, b in rest), cut

        @case("a put piece's dd killed part way: the piece is sent again, the file whole")
        def _():
            script = KILL_DD.replace("MATCH", "of=up/lanes.bin.skyhost-part")
            (out, _, _), cut = while_cutting(
                script, lambda: lanes(LANES=3, DIR="put", SRC=dest, REMOTE="up/lanes.bin"))
            assert "KILLED" in cut, cut
            r = on_host("sha256sum up/lanes.bin")
            assert r.split()[0] == want, r

        @case("a lane's connection cut mid-get: it reconnects or leaves its pieces, file whole")
        def _():
            os.remove(dest)
            (out, before, after), cut = while_cutting(
                KILL_LANE, lambda: lanes(LANES=4, DIR="get", REMOTE="lanes.bin", DEST=dest),
                linger=True)
            assert "KILLED session" in cut, cut
            assert sha(dest) == want
            assert before == after, out

        @case("lanes = 0 is refused with a clear error")
        def _():
            e = dict(ENV, HOSTS="10.205.0.11", LANES="0", DIR="get", REMOTE="lanes.bin",
                     DEST=dest)
            r = subprocess.run([SKYHOST, SCRIPT, "lanes"], env=e, capture_output=True,
                               text=True, timeout=60)
            assert "option 'lanes' must be 1 to 16, got 0" in r.stdout, r.stdout + r.stderr
finally:
    try:
        on_host("rm -rf lanes.bin up")
    finally:
        subprocess.run([HOSTS_SH, "down"], env=ENV, capture_output=True)

finish()
