#!/usr/bin/python3
"""The SSH provider end to end against real OpenSSH servers in network namespaces
(tests/support/netns-hosts.sh): bootstrap, images, failures, host keys, lost nodes, the dead-man
lease, file transfer. Needs root. Brings its hosts up and takes them down itself."""
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SKYHOST = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOSTS_SH = os.path.join(ROOT, "tests", "support", "netns-hosts.sh")
SCRIPT = os.path.join(HERE, "ssh_pool.lua")
ENV = dict(os.environ, SKYT_PREFIX="skye", SKYT_NET4="10.205", SKYT_NET6="fd5c:205:",
           SKYT_STATE="/run/skyhost-e2e")
STATE = ENV["SKYT_STATE"]
N = 8
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(SKYHOST)))
PLUGINS = os.path.join(BUILD, "tests", "plugins")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import case, finish  # noqa: E402


def hosts_sh(*args):
    return subprocess.run([HOSTS_SH, *args], env=ENV, check=True, capture_output=True, text=True).stdout


def ip(i):
    return f"10.205.0.{10 + i}"


def on_host(i, cmd):
    return subprocess.run(["ssh", "-F", f"{STATE}/ssh_config", f"h{i}", cmd], env=ENV,
                          capture_output=True, text=True, timeout=30)


def workers_on(i):
    """skyworker and plugin host processes on host i (its own PID namespace)."""
    # By process name: a pattern on the command line would also match this very command.
    r = on_host(i, "pgrep -c '^sky(worker|plugin)' || true")
    return int((r.stdout.strip().splitlines() or ["0"])[-1] or 0)


def run(mode, hosts, timeout=60, **env):
    e = dict(ENV, HOSTS=" ".join(hosts), **{k: str(v) for k, v in env.items()})
    return subprocess.run([SKYHOST, SCRIPT, mode], env=e, capture_output=True, text=True,
                          timeout=timeout)


def no_workers_left(hosts_idx, within=5.0):
    deadline = time.time() + within
    while time.time() < deadline:
        if all(workers_on(i) == 0 for i in hosts_idx):
            return
        time.sleep(0.2)
    raise AssertionError("workers still running on " + ", ".join(
        f"h{i}" for i in hosts_idx if workers_on(i)))


hosts_sh("up", str(N))
try:
    @case("bootstrap of one host")
    def _():
        r = run("hostnames", [ip(1)])
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "h1", r.stdout
        no_workers_left([1])

    @case("bootstrap of 8 hosts, node order, map over them")
    def _():
        r = run("hostnames", [ip(i) for i in range(1, N + 1)])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == " ".join(f"h{i}" for i in range(1, N + 1)), lines
        assert lines[1] == "1 4 9 16 25 36 49 64 81", lines
        no_workers_left(range(1, N + 1))

    @case("an image with env, workdir and setup; setup output streamed as events")
    def _():
        r = run("image", [ip(1), ip(2)])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "hello there|hello there hello there|hello there", lines
        assert lines[1] == "console lines 2", lines

    @case("a failing setup step fails the pool with the step and its output")
    def _():
        r = run("failing-setup", [ip(1), ip(2)])
        assert r.returncode == 1, r.returncode
        assert re.search(r"setup step failed \(exit status 7\)", r.stderr), r.stderr
        assert "about to fail" in r.stderr, r.stderr
        no_workers_left([1, 2])

    @case("an unreachable host fails after the connect deadline, naming the host")
    def _():
        t0 = time.time()
        r = run("hostnames", [ip(1), f"{ip(2)}:2999"])
        assert r.returncode == 1, r.stdout
        assert "10.205.0.12" in r.stderr and "2999" in r.stderr, r.stderr
        assert time.time() - t0 < 20
        no_workers_left([1, 2])

    @case("a changed host key is refused with a way to fix it")
    def _():
        with tempfile.TemporaryDirectory() as d:
            kh = os.path.join(d, "known_hosts")
            other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                    os.path.join(d, "k")], check=True)
            del other
            with open(os.path.join(d, "k.pub")) as f:
                key = " ".join(f.read().split()[:2])
            with open(kh, "w") as f:
                f.write(f"{ip(1)} {key}\n")
            r = run("hostnames", [ip(1)], KNOWN_HOSTS=kh)
            assert r.returncode == 1
            assert "ssh-keygen -R" in r.stderr, r.stderr
            no_workers_left([1])

    @case("strict refuses an unknown host; accept-new records it")
    def _():
        with tempfile.TemporaryDirectory() as d:
            kh = os.path.join(d, "known_hosts")
            open(kh, "w").close()
            r = run("hostnames", [ip(3)], KNOWN_HOSTS=kh)
            assert r.returncode == 1 and "known" in r.stderr.lower(), r.stderr
            r = run("hostnames", [ip(3)], KNOWN_HOSTS=kh, HOST_KEYS="accept-new")
            assert r.returncode == 0, r.stderr
            with open(kh) as f:
                assert ip(3) in f.read()
            r = run("hostnames", [ip(3)], KNOWN_HOSTS=kh)  # now known: strict accepts it
            assert r.returncode == 0, r.stderr

    def lose(kill_what):
        p = subprocess.Popen([SKYHOST, SCRIPT, "lose-node"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(ENV, HOSTS=f"{ip(4)} {ip(5)}"))
        line = p.stdout.readline()
        assert line.startswith("WORKERS"), line + p.stderr.read()
        time.sleep(0.7)  # the tasks are running
        kill_what()
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        res = re.search(r"RESULTS (.*)", out).group(1)
        assert res == "1 2 3 4", out  # every result once, in order
        lost = re.search(r"LOST (.*)", out).group(1)
        assert lost.startswith("node 0:"), out
        return lost

    @case("killing sshd on a host mid-task: node lost, its tasks rerun elsewhere")
    def _():
        lost = lose(lambda: hosts_sh("kill", "4"))
        assert "connection" in lost or "lost" in lost, lost
        hosts_sh("up", str(N))  # bring host 4 back

    @case("killing the worker mid-task: node lost, its tasks rerun elsewhere")
    def _():
        lost = lose(lambda: on_host(4, "pkill -KILL '^skyworker'"))
        assert "signal" in lost or "exited" in lost or "closed" in lost, lost
        no_workers_left([4, 5])

    @case("kill -9 of skyhost: no worker outlives its connection")
    def _():
        p = subprocess.Popen([SKYHOST, SCRIPT, "hang"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(ENV, HOSTS=ip(6)))
        assert p.stdout.readline().startswith("WORKERS")
        assert workers_on(6) == 1
        p.kill()
        p.wait()
        no_workers_left([6], within=10)

    @case("a frozen skyhost: the lease expires after ttl and the worker stops")
    def _():
        p = subprocess.Popen([SKYHOST, SCRIPT, "hang"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(ENV, HOSTS=ip(7), TTL="2"))
        try:
            assert p.stdout.readline().startswith("WORKERS")
            os.kill(p.pid, signal.SIGSTOP)  # the connection stays open; the host says nothing
            time.sleep(1.0)
            assert workers_on(7) == 1, "worker stopped before its ttl"
            no_workers_left([7], within=6)
            r = on_host(7, "ls -d .skyhost/pools/* 2>/dev/null | wc -l")
            assert r.stdout.strip() == "0", "the pool's scratch directory is still there"
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    @case("a stuck skyhost stopped past the pool's timeout: the worker ends on its own")
    def _():
        # ttl stays at its default (600 s): the deadline, not the lease, ends the worker.
        p = subprocess.Popen([SKYHOST, SCRIPT, "stuck"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(ENV, HOSTS=ip(8), TIMEOUT="10"))
        try:
            line = p.stdout.readline()
            assert line.startswith("WORKERS"), line + p.stderr.read()
            os.kill(p.pid, signal.SIGSTOP)  # blocked on stdin before that: it ran nothing since
            assert workers_on(8) == 1, "worker stopped before the pool's timeout"
            no_workers_left([8], within=60)  # timeout (10 s) + grace (5 s), with room
            r = on_host(8, "ls -d .skyhost/pools/* 2>/dev/null | wc -l")
            assert r.stdout.strip() == "0", "the pool's scratch directory is still there"
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    @case("sky.sh on SSH nodes: identity in the environment, tree killed on timeout, output")
    def _():
        r = run("sh", [ip(1), ip(2)])
        assert r.returncode == 0, r.stderr
        env = [l.split()[1:] for l in r.stdout.splitlines() if l.startswith("ENV ")]
        assert [e[:4] for e in env] == [["0", "2", "0", ip(1)], ["1", "2", "1", ip(1)]], env
        assert env[0][4] == env[1][4] and int(env[0][4]) > 0, env
        assert "TREE true SIGKILL gone | true SIGKILL gone" in r.stdout, r.stdout
        assert "LOGS stderr:child err,stdout:child out,stdout:lines,stdout:two" in r.stdout, r.stdout
        no_workers_left([1, 2])

    @case("pool:torchrun: gloo all-reduce and DDP over 3 SSH nodes")
    def _():
        r = run("torchrun", [ip(1), ip(2), ip(3)], timeout=500, ROOT=ROOT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(re.findall(r"EXIT node (\d) (\d+)", r.stdout)) == [("0", "0"), ("1", "0"), ("2", "0")], r.stdout
        ar = re.findall(r"LINE (\d) allreduce rank \d node (\d): (\d+) ", r.stdout)
        assert sorted(ar) == [("0", "0", "6"), ("1", "1", "6"), ("2", "2", "6")], r.stdout
        ddp = re.findall(r"LINE \d ddp .*weights identical: True, (w=\S+ b=\S+)", r.stdout)
        assert len(ddp) == 3 and len(set(ddp)) == 1, r.stdout
        no_workers_left([1, 2, 3])

    @case("two scripts' pools on one host keep their own scratch directories")
    def _():
        # Both pools are called "pool-1": the directory must not be named after that.
        a = subprocess.Popen([SKYHOST, SCRIPT, "scratch"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(ENV, HOSTS=ip(8), HOLD="1"))
        try:
            line = a.stdout.readline()
            assert line.startswith("DIR "), line + a.stderr.read()
            b = run("scratch", [ip(8)])
            assert b.returncode == 0, b.stderr
            assert "STILL true" in b.stdout, b.stdout
            theirs = re.search(r"DIR (\S+)", b.stdout).group(1)
            assert theirs != line.split()[1], "both pools got the scratch directory " + theirs
            a.stdin.write("\n")
            a.stdin.flush()
            out, err = a.communicate(timeout=60)
            assert a.returncode == 0, err
            assert "STILL true" in out, "the other pool removed this one's files: " + out
        finally:
            if a.poll() is None:
                a.kill()
                a.wait()
        no_workers_left([8])
        r = on_host(8, "ls -d .skyhost/pools/* 2>/dev/null | wc -l")
        assert r.stdout.strip() == "0", "a scratch directory outlived its pool"

    @case("strings of 0 B to 64 MiB both ways over SSH, byte for byte")
    def _():
        r = run("data", [ip(1)], timeout=180)
        assert r.returncode == 0, r.stderr
        line = [l for l in r.stdout.splitlines() if l.startswith("DATA ")]
        assert line == ["DATA 0=true 1=true 65536=true 67108867=true mixed=true"], r.stdout

    # On h1 (its own PID namespace: every process there is this test's): wait for the `cat` of
    # pool:get, kill it part way, then report the command that resumes the transfer.
    CUT = r"""end=$(( $(date +%s) + 60 ))
while :; do p=$(pgrep -f '^cat .*cut\.bin' | head -n 1); [ -n "$p" ] && break
  [ "$(date +%s)" -ge $end ] && { echo NOCAT; exit 1; }; sleep 0.01; done
sleep 0.15; kill -9 "$p"; echo "KILLED $p"
while :; do t=$(pgrep -af '^tail -c' | head -n 1); [ -n "$t" ] && { echo "TAIL $t"; exit 0; }
  [ "$(date +%s)" -ge $end ] && { echo NOTAIL; exit 1; }; sleep 0.01; done"""

    @case("pool:get over one session resumes a cut transfer, without resending, checks its sha256")
    def _():
        r = on_host(1, "head -c 300M /dev/urandom > cut.bin && sha256sum cut.bin")
        want = r.stdout.split()[0]
        cutter = subprocess.Popen(["ssh", "-F", f"{STATE}/ssh_config", "h1", CUT], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with tempfile.TemporaryDirectory() as d:
                dest = os.path.join(d, "cut.bin")
                r = run("get", [ip(1)], timeout=180, REMOTE="cut.bin", DEST=dest, LANES=1)
                out, err = cutter.communicate(timeout=60)
                assert r.returncode == 0 and "GOT " + dest in r.stdout, r.stdout + r.stderr
                assert "KILLED" in out, out + err
                m = re.search(r"TAIL \d+ tail -c \+(\d+) ", out)
                assert m and int(m.group(1)) > 1, out  # went on from a byte past the first
                assert hashlib.sha256(open(dest, "rb").read()).hexdigest() == want
                assert not os.path.exists(dest + ".skyhost-part")
        finally:
            if cutter.poll() is None:
                cutter.kill()
                cutter.wait()
            on_host(1, "rm -f cut.bin")

    # On h1: wait for the `cat` writing the upload's part file, kill it part way, then report
    # the flags of the next one's output (O_APPEND: it goes on) and the part's size then.
    PUT_CUT = r"""end=$(( $(date +%s) + 60 ))
writer() { for p in $(pgrep -x cat); do case $(readlink /proc/$p/fd/1) in
  *up.bin.skyhost-part) echo $p; return;; esac; done; }
while :; do p=$(writer); [ -n "$p" ] && break
  [ "$(date +%s)" -ge $end ] && { echo NOCAT; exit 1; }; sleep 0.01; done
sleep 0.15; kill -9 "$p"; echo "KILLED $p"
while :; do q=$(writer); if [ -n "$q" ] && [ "$q" != "$p" ]; then
    fl=$(awk '/^flags/ { print $2 }' /proc/$q/fdinfo/1)
    echo "APPEND $(( 0$fl & 02000 )) $(stat -c %s up.bin.skyhost-part)"; exit 0; fi
  [ "$(date +%s)" -ge $end ] && { echo NOAPPEND; exit 1; }; sleep 0.01; done"""

    @case("pool:put over one session resumes a cut upload, without resending, checks its sha256")
    def _():
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "up.bin")
            with open(src, "wb") as f:
                f.write(os.urandom(300 << 20))
            want = hashlib.sha256(open(src, "rb").read()).hexdigest()
            cutter = subprocess.Popen(["ssh", "-F", f"{STATE}/ssh_config", "h1", PUT_CUT], env=ENV,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                r = run("put", [ip(1)], timeout=180, SRC=src, REMOTE="up.bin", LANES=1)
                out, err = cutter.communicate(timeout=60)
                assert r.returncode == 0 and "PUT ok" in r.stdout, r.stdout + r.stderr
                assert "KILLED" in out, out + err
                m = re.search(r"APPEND (\d+) (\d+)", out)
                assert m and int(m.group(1)) != 0 and int(m.group(2)) > 0, out
                r = on_host(1, "sha256sum up.bin; ls up.bin.skyhost-part 2>&1")
                assert r.stdout.split()[0] == want, r.stdout
                assert "No such file" in r.stdout, r.stdout  # the part was moved into place
            finally:
                if cutter.poll() is None:
                    cutter.kill()
                    cutter.wait()
                on_host(1, "rm -f up.bin up.bin.skyhost-part")

    @case("pool:get of a missing file fails naming it, leaving nothing behind")
    def _():
        with tempfile.TemporaryDirectory() as d:
            dest = os.path.join(d, "nothing.bin")
            r = run("get", [ip(1)], REMOTE="no-such-file.bin", DEST=dest)
            assert r.returncode == 0, r.stderr
            assert "ERROR" in r.stdout and "cannot read no-such-file.bin on the node" in r.stdout, r.stdout
            assert os.listdir(d) == [], os.listdir(d)

    @case("put and get of a 100 MiB file on two nodes")
    def _():
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "in.bin")
            with open(src, "wb") as f:
                f.write(os.urandom(100 << 20))
            want = hashlib.sha256(open(src, "rb").read()).hexdigest()
            r = run("transfer", [ip(1), ip(2)], timeout=180, SRC=src, DEST=os.path.join(d, "out"))
            assert r.returncode == 0, r.stderr
            paths = r.stdout.split("GOT ")[1].split()
            assert len(paths) == 2
            for p in paths:
                assert hashlib.sha256(open(p, "rb").read()).hexdigest() == want, p
    def plugin_inodes(i):
        r = on_host(i, "ls -i .skyhost/plugins/*/libsky_test_plugins.so")
        assert r.returncode == 0, r.stderr
        return r.stdout.split()[0]

    @case("plugins on SSH nodes: every operator, uploaded once by content hash, crash, load error")
    def _():
        for i in (1, 2):
            on_host(i, "rm -rf .skyhost/plugins")
        r = run("plugin", [ip(1), ip(2)], timeout=120, PLUGINS=PLUGINS)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert "OPS 2 5 2,3 6,7 2,3,4,5,6,7" in out, out
        assert "HOSTS 2" in out, out
        assert re.search(r"MIXED h1=42 h2=42", out), out
        assert "BIG true" in out, out
        crash = re.search(r"CRASH (.*)", out).group(1)
        # (a sanitized build's plugin host reports the fault itself and exits)
        assert re.search(r"plugin 'crash' \(.*\) (was killed by signal \d+|exited with status \d+)"
                         r".* on node [01] \(h[12]\), task \d+", crash), crash
        assert "AFTER 2,2" in out, out
        load = re.search(r"LOAD (.*)", out).group(1)
        assert re.search(r"cannot load plugin 'no_such' on node [01] \(h[12]\): "
                         r".*/\.skyhost/plugins/[0-9a-f]{20}/libsky_test_plugins\.so: no plugin", load), load
        first = [plugin_inodes(i) for i in (1, 2)]
        r = run("plugin", [ip(1), ip(2)], timeout=120, PLUGINS=PLUGINS)
        assert r.returncode == 0, r.stderr
        assert [plugin_inodes(i) for i in (1, 2)] == first, "the plugin was uploaded again"
        no_workers_left([1, 2])

    @case("scripts/plugin.lua on two SSH nodes")
    def _():
        with tempfile.TemporaryDirectory() as home:
            os.makedirs(os.path.join(home, ".ssh"))
            for f in ("id_ed25519", "known_hosts"):
                with open(os.path.join(STATE, f)) as src, open(os.path.join(home, ".ssh", f), "w") as dst:
                    dst.write(src.read())
            os.chmod(os.path.join(home, ".ssh", "id_ed25519"), 0o600)
            r = subprocess.run([SKYHOST, os.path.join(ROOT, "scripts", "plugin.lua"),
                                os.path.join(BUILD, "libgemm.so"), ip(3), ip(4)],
                               env=dict(ENV, HOME=home), cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            assert "8 products with sky.gather: 8 correct" in r.stdout, r.stdout
            assert "A*2I == 2A: true" in r.stdout, r.stdout
        no_workers_left([3, 4])
finally:
    hosts_sh("down")

finish()
