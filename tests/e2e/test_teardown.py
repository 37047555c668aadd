#!/usr/bin/python3
"""Teardown is guaranteed: after every way a script can end, no worker (and nothing a task
started) is left running. Checked by looking at processes, not by trusting a flag."""
import os
import re
import signal
import subprocess
import sys
import threading
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
case_run("SIGINT caught by busy Lua code: a structured error, and still 130", "busy-pcall",
         signal.SIGINT, rc=130, stderr=r"caught Interrupted")
case_run("SIGTERM caught by busy Lua code: still 143", "busy-pcall", signal.SIGTERM, rc=143,
         stderr=r"caught Interrupted")
case_run("second Ctrl-C does not skip teardown", "task", signal.SIGINT, sigs=3, rc=130)
case_run("SIGINT with a pool in a spawned coroutine", "spawned", signal.SIGINT, rc=130)
case_run("SIGTERM to a script that wraps every call in pcall and retries", "pcall",
         signal.SIGTERM, rc=143, min_kids=1)
case_run("SIGINT to a script that wraps every call in pcall and retries", "pcall",
         signal.SIGINT, rc=130, min_kids=1)
case_run("kill -9 of skyhost", "task", signal.SIGKILL, rc=-9, min_kids=1)
case_run("SIGTERM with a sky.sh command running", "sh", signal.SIGTERM, rc=143, min_kids=3)
case_run("kill -9 of skyhost with a sky.sh command running", "sh", signal.SIGKILL, rc=-9, min_kids=3)


class Lines:
    """A pipe read line by line on a thread, so the test can wait for a marker with a deadline
    while the process goes on writing its other stream."""

    def __init__(self, pipe):
        self.lines, self.cond = [], threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for line in pipe:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of stream
            self.cond.notify_all()

    def wait_for(self, prefix, timeout=30):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(l is None or l.startswith(prefix)
                                                for l in self.lines), timeout)
            if not ok or not any(l is not None and l.startswith(prefix) for l in self.lines):
                raise AssertionError(f"no line {prefix!r} (got {self.text()!r})")

    def text(self):
        return "".join(l for l in self.lines if l is not None)


def delivered(pid, sig, within=5):
    """Waits until signal `sig` sent to `pid` is no longer pending (its handler has taken it)."""
    bit = 1 << (sig - 1)
    deadline = time.time() + within
    while time.time() < deadline:
        with open(f"/proc/{pid}/status") as f:
            masks = [int(l.split()[1], 16) for l in f if l.startswith(("SigPnd:", "ShdPnd:"))]
        if not any(m & bit for m in masks):
            return
        time.sleep(0.001)
    raise AssertionError(f"signal {sig} still pending after {within} s")


def run_late(first, point):
    """One SIGINT/SIGTERM while a task runs, then later signals (of both kinds) at `point`:
    "teardown" (right as the pool's teardown starts), "workers-gone" (after the pool's last
    worker has exited), "exit" (after everything, while the process is exiting), or "storm"
    (every 2 ms from the first signal until the process is gone)."""
    env = dict(os.environ, SKYHOST_TEST_EXIT_HOLD_MS="400")
    proc = subprocess.Popen([SKYHOST, SCRIPT, "late"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for("READY")
        pids = {int(m) for m in re.findall(r"PID (\d+)", out.text())}
        kids = descendants(pids)
        assert len(pids) == 5 and kids, f"workers {pids}, task children {kids}"
        later = [signal.SIGINT, signal.SIGTERM, signal.SIGINT]
        os.kill(proc.pid, first)
        if point == "storm":
            # The kernel delivers pending signals lowest number first: a SIGINT sent before a
            # pending SIGTERM was taken would arrive first. The storm starts once it was taken.
            delivered(proc.pid, first)
            i = 0
            while proc.poll() is None:
                try:
                    os.kill(proc.pid, later[i % len(later)])
                except ProcessLookupError:
                    break
                i += 1
                time.sleep(0.002)
            assert i >= 10, f"only {i} later signals reached the process"
        else:
            if point == "teardown":
                out.wait_for("TEARDOWN")
            elif point == "workers-gone":
                out.wait_for("WORKERS GONE")
                inner = {int(m) for m in re.findall(r"PID (\d+)", out.text())[3:]}
                left = [p for p in inner if alive(p)]
                assert not left, f"marker printed while the pool's workers {left} still ran"
            elif point == "exit":
                err.wait_for("skyhost: exiting")
            assert proc.poll() is None, f"skyhost already gone at {point}"
            for s in later:
                os.kill(proc.pid, s)
                time.sleep(0.005)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.thread.join(5)
    err.thread.join(5)
    left = sorted(p for p in pids | kids if alive(p))
    expected = 128 + first
    assert rc == expected, f"exit code {rc}, expected {expected}; stderr: {err.text()}"
    assert not left, f"still running after teardown: {left}"
    assert "teardown:" not in err.text(), f"teardown failed: {err.text()}"


for first in (signal.SIGINT, signal.SIGTERM):
    for point in ("teardown", "workers-gone", "exit", "storm"):
        name = f"{signal.Signals(first).name} then later signals at {point}"
        run_case(name, run_late, first, point)


# Scoped pools (sky.pool{...}(main)) and pool timeouts: tests/e2e/scoped.lua.
SCOPED = os.path.join(os.path.dirname(SCRIPT), "scoped.lua")


def gone(pids, within):
    """Waits (bounded) until none of `pids` runs; returns those still running."""
    deadline = time.time() + within
    while True:
        left = sorted(p for p in pids if alive(p))
        if not left or time.time() > deadline:
            return left
        time.sleep(0.1)


class Scoped:
    """skyhost running scoped.lua MODE; reads its output line by line."""

    def __init__(self, mode):
        self.proc = subprocess.Popen([SKYHOST, SCOPED, mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pids, self.kids, self.lines = set(), set(), []

    def until(self, prefix):
        """Reads lines up to one starting with `prefix`; returns it (None at the end)."""
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.match(r"PID (\d+)", line)
            if m:
                self.pids.add(int(m.group(1)))
            if line.startswith(prefix):
                return line
        return None

    def find_kids(self, want, within=20):
        """The tasks' processes (descendants of the workers), once there are `want` (bounded)."""
        deadline = time.time() + within
        while time.time() < deadline:
            self.kids = descendants(self.pids)
            if len(self.kids) >= want:
                break
            time.sleep(0.1)
        return self.kids

    def go_on(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self):
        out, err = self.proc.communicate(timeout=60)
        self.lines.append(out)
        return self.proc.returncode, "".join(self.lines), err


def case_scoped(name, mode, rc, stdout, stderr):
    """The scoped pool's workers and their children are gone when the scoped call ends, while
    the script still runs; then the script ends as expected."""
    def check():
        s = Scoped(mode)
        try:
            assert s.until("READY"), "no READY; stderr: " + s.proc.stderr.read()
            assert s.pids, "no worker PIDs reported"
            assert len(s.find_kids(2)) >= 2, f"expected a task child per node, saw {s.kids}"
            assert s.until("WAIT scope")
            s.go_on()
            assert s.until("WAIT after"), "the scoped call did not end"
            left = gone(s.pids | s.kids, 10)
            assert not left, f"still running after the scoped call ended: {left}"
            s.go_on()
            got_rc, out, err = s.finish()
        finally:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        assert got_rc == rc, f"exit code {got_rc}, expected {rc}; stderr: {err}"
        assert re.search(stdout, out), f"stdout {out!r} lacks {stdout!r}"
        assert re.search(stderr, err), f"stderr {err!r} lacks {stderr!r}"
    run_case(name, check)


case_scoped("scoped pool returns: torn down at the end of the call", "return", 0,
            r"RESULT 42", r"^$")
case_scoped("scoped pool raises: torn down, the error goes on", "raise", 1,
            r"CAUGHT .*scoped.lua:\d+: deliberate failure in main",
            r"scoped.lua:\d+: deliberate failure in main")


def case_timeout(name, mode, stderr):
    def check():
        s = Scoped(mode)
        try:
            assert s.until("READY"), "no READY; stderr: " + s.proc.stderr.read()
            if mode == "timeout-task" and len(s.find_kids(2, within=2)) < 2:
                print(f"note: {name}: the task's child was not seen before the timeout")
            got_rc, out, err = s.finish()
        finally:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        assert got_rc == 1, f"exit code {got_rc}, expected 1; stderr: {err}"
        left = gone(s.pids | s.kids, 10)
        assert not left, f"still running after the timeout: {left}"
        for want in (r"skyhost: pool pool-1: its timeout of \d s passed; draining",
                     r"ended early: its timeout of \d s passed", stderr):
            assert re.search(want, err), f"stderr {err!r} lacks {want!r}"
    run_case(name, check)


case_timeout("timeout during a task: PoolTimeout, nothing left running", "timeout-task",
             # raised in the spawned coroutine, whose line a tail call dropped: no file:line
             r"pool 'pool-1' is (draining|destroyed): its timeout of 3 s passed")
case_timeout("timeout while idle: PoolTimeout for the next task, nothing left running",
             "timeout-idle", r"scoped.lua:\d+: pool 'pool-1' is destroyed: its timeout of 2 s passed")


def stuck_host():
    """A host stuck (blocked, then SIGSTOPped) with a task running: its workers end on their own
    after the pool's timeout (3 s) and the grace period (5 s)."""
    s = Scoped("stuck")
    try:
        assert s.until("READY"), "no READY; stderr: " + s.proc.stderr.read()
        assert len(s.find_kids(2)) >= 2, f"expected a task child per node, saw {s.kids}"
        assert s.until("WAIT forever")  # from here on the host runs nothing
        os.kill(s.proc.pid, signal.SIGSTOP)
        left = gone(s.pids | s.kids, 60)
        assert not left, f"still running 60 s after the host stopped: {left}"
    finally:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait()


run_case("a worker whose host is stopped past the timeout ends on its own", stuck_host)

finish()
