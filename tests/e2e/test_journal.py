#!/usr/bin/python3
"""The journal, `skyhost ls` and `skyhost down` (docs/journal.md), on pools of real skyhost
processes: running, stopped by `down --force`, killed with -9 (orphans), on a provider `down`
cannot reach and on the local provider, with an unwritable journal, and two skyhosts at once."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SKYHOST = sys.argv[1]
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "journal.lua")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import alive, case, finish  # noqa: E402

STATE = tempfile.mkdtemp(prefix="skyhost-journal-")
ENV = dict(os.environ, SKYHOST_STATE_DIR=STATE)


def sky(*args, env=ENV):
    return subprocess.run([SKYHOST, *args], capture_output=True, text=True, env=env, timeout=150)


def start(provider="mycloud", name="train", env=ENV):
    """A running pool; returns the process and its workers' PIDs."""
    p = subprocess.Popen([SKYHOST, SCRIPT, provider, name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    pids = []
    while True:
        line = p.stdout.readline()
        assert line, "the script ended early: " + p.stderr.read()
        m = re.match(r"PID (\d+)", line)
        if m:
            pids.append(int(m.group(1)))
        if line.startswith("READY"):
            return p, pids


def stop(p):
    """Ctrl-C: the script tears its pool down and leaves the journal."""
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    p.communicate()


def pools():
    r = sky("ls", "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines()]


def gone(pids, within=10):
    deadline = time.time() + within
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


@case("an empty journal: ls says so; down wants a pool or a flag")
def _():
    r = sky("ls")
    assert r.returncode == 0 and r.stdout == "no pools\n", r
    r = sky("down")
    assert r.returncode == 2 and "--orphans or --all" in r.stderr, r
    r = sky("down", "--bogus")
    assert r.returncode == 2 and "unknown argument '--bogus'" in r.stderr, r
    r = sky("down", "nosuch")
    assert r.returncode == 1 and "no pool 'nosuch'" in r.stderr, r


@case("a running pool is listed with its owner, provider, instances and price")
def _():
    p, _ = start()
    try:
        [pool] = pools()
        assert pool["name"] == "train" and pool["owner"] == "alive" and not pool["orphan"], pool
        assert pool["state"] == "ready" and pool["live"] == 2 and pool["script"] == SCRIPT, pool
        ids = sorted(i["id"] for i in pool["instances"])
        assert ids == ["m-1", "m-2"], pool
        assert all(i["info"]["price"] == 1.0 and i["provider"] == "mycloud"
                   for i in pool["instances"]), pool
        text = sky("ls").stdout
        assert re.search(rf"{pool['id']} +train +ready +pid {p.pid} +mycloud +2/2 ", text), text
    finally:
        stop(p)


@case("down refuses a pool whose skyhost runs; --force makes that skyhost tear it down")
def _():
    p, workers = start()
    try:
        r = sky("down", "train")
        assert r.returncode == 1 and "still running" in r.stderr and "--force" in r.stderr, r
        assert p.poll() is None, "down without --force stopped the script"
        r = sky("down", "train", "--force")
        assert r.returncode == 0 and "ended by its skyhost" in r.stdout, r
        assert p.wait(timeout=30) == 143, p.returncode
        assert gone(workers), "workers outlived their pool"
        assert pools() == []
    finally:
        stop(p)


@case("kill -9: an orphan, noticed once; down cannot reach a script's provider; --forget")
def _():
    p, workers = start()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert gone(workers), "local workers outlived their host"
    [pool] = pools()
    assert pool["owner"] == "gone" and pool["orphan"] and pool["live"] == 2, pool
    assert re.search(r" orphaned +gone +mycloud +2/2 ", sky("ls").stdout)
    r = sky("-e", "local p <close> = sky.compute{display = 'quiet'}")
    assert r.returncode == 0 and "1 pool of a skyhost that is gone" in r.stderr, r
    r = sky("down", "--orphans")
    assert r.returncode == 1 and "cannot be reached" in r.stderr and "m-1, m-2" in r.stderr, r
    assert len(pools()) == 1, "a pool down could not end left the journal"
    r = sky("down", "--orphans", "--forget")
    assert r.returncode == 0 and "ended" in r.stdout, r
    assert pools() == []
    r = sky("down", "--orphans")
    assert r.returncode == 0 and r.stdout == "nothing to end\n", r


@case("kill -9 of a local pool: its workers died with it, so it is settled, never an orphan")
def _():
    p, workers = start("local")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert gone(workers)
    assert pools() == []
    r = sky("-e", "local p <close> = sky.compute{display = 'quiet'}")
    assert r.returncode == 0 and r.stderr == "", r


@case("two skyhosts at once share the journal; each pool leaves it when it closes")
def _():
    a, _ = start(name="a")
    b, _ = start(name="b")
    try:
        assert sorted(p["name"] for p in pools()) == ["a", "b"]
    finally:
        stop(a)
        stop(b)
    assert a.returncode == 130 and b.returncode == 130, (a.returncode, b.returncode)
    assert pools() == []


@case("a journal that cannot be written: a local pool runs, skyhost says so once; a billable one is refused")
def _():
    env = dict(ENV, SKYHOST_STATE_DIR="/proc/skyhost-no-such-dir")
    r = sky("-e", "for _ = 1, 2 do local p <close> = sky.compute{display = 'quiet'}; "
            "print(sky.fn(function() return 7 end)() >> p) end", env=env)
    assert r.returncode == 0 and r.stdout == "7\n7\n", r
    assert r.stderr.count("cannot write the journal") == 1, r.stderr
    # A provider whose machines would not end by themselves: nothing is prepared or provisioned.
    r = sky("-e", "local p = sky.provider{name = 'mycloud', offers = function() return {{provider = 'mycloud', "
            "instance_type = 'm1', count = 0, price = 1.0}} end, prepare = function() print('PREPARED') end, "
            "provision = function() print('PROVISIONED') return {'i-1'} end, "
            "get_instance = function(_, _, id) return {id = id, state = 'running', transport = 'local'} end, "
            "terminate = function() end}; local pool <close> = sky.compute{provider = p, display = 'quiet'}", env=env)
    assert r.returncode != 0 and "PREPARED" not in r.stdout and "PROVISIONED" not in r.stdout, r
    assert "/proc/skyhost-no-such-dir/state.db cannot be written" in r.stderr, r.stderr
    assert "nothing was created on mycloud" in r.stderr and "SKYHOST_STATE_DIR" in r.stderr, r.stderr
    r = sky("ls", env=env)
    assert r.returncode == 1 and "cannot open the journal" in r.stderr, r


finish()
