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
    """skyworker processes running on host i (its own PID namespace)."""
    # By process name: a pattern on the command line would also match this very command.
    r = on_host(i, "pgrep -c '^skyworker' || true")
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
finally:
    hosts_sh("down")

finish()
