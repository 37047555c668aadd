#!/usr/bin/python3
"""Teardown is guaranteed: after every way a script can end, no worker (and nothing a task
started) is left running. Checked by looking at processes, not by trusting a flag."""
import os
import re
import signal
import subprocess
import sys
import time

SKYHOST = sys.argv[1]
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "teardown.lua")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import alive, finish, run_case  # noqa: E402


def descendants(pids):
    """Every live process whose ancestry includes one of `pids`."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    out = set()
    for p in parents:
        q = p
        while q in parents and q > 1:
            q = parents[q]
            if q in pids:
                out.add(p)
                break
    return out


def run(mode, sig=None, sigs=1):
    proc = subprocess.Popen([SKYHOST, SCRIPT, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out_lines = []
    pids, kids = set(), set()
    if sig is not None:
        deadline = time.time() + 15
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out_lines.append(line)
            m = re.match(r"PID (\d+)", line)
            if m:
                pids.add(int(m.group(1)))
            if line.startswith("READY"):
                break
        kids = descendants(pids)  # the tasks' children, while they run
        for _ in range(sigs):
            os.kill(proc.pid, sig)
            time.sleep(0.05)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()  # what the test is about failed: clean up, then report it
        out, err = proc.communicate()
        kids |= descendants(pids)
        for p in pids | kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise AssertionError(f"skyhost did not exit within 30 s of the signal; stderr: {err}")
    out_lines.append(out)
    pids |= {int(m) for m in re.findall(r"PID (\d+)", "".join(out_lines))}
    rc = proc.returncode
    time.sleep(0.3)
    left = sorted(p for p in pids | kids if alive(p))
    return rc, pids, kids, left, err


def case_run(name, mode, sig=None, sigs=1, rc=0, stderr=None, min_kids=0):
    def check():
        got_rc, pids, kids, left, err = run(mode, sig, sigs)
        assert pids, "no worker PIDs reported"
        assert got_rc == rc, f"exit code {got_rc}, expected {rc}; stderr: {err}"
        assert not left, f"still running after teardown: {left}"
        assert len(kids) >= min_kids, f"expected task children to check, saw {kids}"
        if stderr:
            assert re.search(stderr, err), f"stderr {err!r} lacks {stderr!r}"
    run_case(name, check)


case_run("scope ends normally", "normal")
case_run("Lua error", "error", rc=1, stderr=r"teardown.lua:\d+: deliberate failure")
case_run("script ends with pools still open", "left-open")
case_run("SIGINT while waiting for a task", "task", signal.SIGINT, rc=130,
     stderr=r"interrupted", min_kids=1)
case_run("SIGTERM while waiting for a task", "task", signal.SIGTERM, rc=143, min_kids=1)
case_run("SIGINT while Lua code is busy", "busy", signal.SIGINT, rc=130, stderr=r"interrupted")
case_run("SIGTERM while Lua code is busy", "busy", signal.SIGTERM, rc=143)
case_run("second Ctrl-C does not skip teardown", "task", signal.SIGINT, sigs=3, rc=130)
case_run("SIGINT with a pool in a spawned coroutine", "spawned", signal.SIGINT, rc=130)
case_run("SIGTERM to a script that wraps every call in pcall and retries", "pcall",
         signal.SIGTERM, rc=143, min_kids=1)
case_run("SIGINT to a script that wraps every call in pcall and retries", "pcall",
         signal.SIGINT, rc=130, min_kids=1)
case_run("kill -9 of skyhost", "task", signal.SIGKILL, rc=-9, min_kids=1)

finish()
