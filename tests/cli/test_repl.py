#!/usr/bin/python3
"""REPL transcript tests: skyhost on a real pseudo-terminal, typed at like a person would."""
import os
import pty
import re
import select
import signal
import sys
import tempfile
import time

SKYHOST = sys.argv[1] if len(sys.argv) > 1 else "build/bin/skyhost"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import alive, finish, run_case  # noqa: E402


class Repl:
    def __init__(self, home):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["HOME"] = home
            os.environ["TERM"] = "dumb"
            os.execv(SKYHOST, [SKYHOST])
        self.buf = b""

    def read_until(self, pattern, timeout=10):
        deadline = time.time() + timeout
        rx = re.compile(pattern.encode())
        while time.time() < deadline:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[: m.end()], self.buf[m.end():]
                return out.decode(errors="replace")
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.buf += data
        raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf[-400:]!r}")

    def send(self, text):
        # libedit switches the terminal mode after printing the prompt, discarding input typed
        # before that; a person never types that fast, so wait as one would.
        time.sleep(0.1)
        os.write(self.fd, text.encode())

    def line(self, text):
        self.send(text + "\r")

    def wait_exit(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if r:
                    os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("REPL did not exit")


def with_home(name):
    """A case with a fresh HOME, so history starts empty."""
    def wrap(fn):
        def run():
            with tempfile.TemporaryDirectory() as home:
                fn(home)
        run_case(name, run)
        return fn
    return wrap


def open_pool(r):
    r.line("p = sky.compute{nodes = 2, display = 'quiet'}")
    r.read_until("sky> ")
    r.line("for _, n in ipairs(p:nodes_info()) do print('PID', n.pid) end")
    out = r.read_until("sky> ")
    pids = [int(x) for x in re.findall(r"PID\s+(\d+)", out)]
    assert len(pids) == 2, out
    assert all(alive(p) for p in pids)
    return pids


@with_home("expressions print their values; statements run")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("1+2")
    assert re.search(r"\n3\r?\n", r.read_until("sky> "))
    r.line("'a', 2, {1, x = true}")
    out = r.read_until("sky> ")
    assert '"a"\t2\t{1, x = true}' in out, out
    r.line("x = 40")
    r.read_until("sky> ")
    r.line("x + 2")
    assert "42" in r.read_until("sky> ")
    r.send("\x04")
    assert r.wait_exit() == 0


@with_home("multi-line input continues until the statement is complete")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("function twice(x)")
    r.read_until(">> ")
    r.line("  return 2 * x")
    r.read_until(">> ")
    r.line("end")
    r.read_until("sky> ")
    r.line("twice(21)")
    assert "42" in r.read_until("sky> ")
    r.send("\x04")
    r.wait_exit()


@with_home("an error prints and the REPL goes on")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("error('oops')")
    assert "stdin:1: oops" in r.read_until("sky> ")
    r.line("1 +")
    r.read_until(">> ")
    r.line("")  # still incomplete: keeps asking
    r.read_until(">> ")
    r.line("1")
    assert "2" in r.read_until("sky> ")
    r.send("\x04")
    r.wait_exit()


@with_home("a pool lives across lines and is torn down on Ctrl-D")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    pids = open_pool(r)
    r.line("sky.fn(function(a) return a * 3 end)(14) >> p")
    assert "42" in r.read_until("sky> ")
    r.send("\x04")
    r.wait_exit()
    assert not any(alive(p) for p in pids), pids


@with_home("Ctrl-C at the prompt tears the pool down and exits")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    pids = open_pool(r)
    r.send("\x03")
    r.wait_exit()
    time.sleep(0.2)
    assert not any(alive(p) for p in pids), pids


@with_home("Ctrl-C in a half-typed multi-line entry drops it, as lua does")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("function f(x)")
    r.read_until(">> ")
    r.line("  return x +")
    r.read_until(">> ")
    r.send("\x03")
    r.read_until("sky> ")
    r.line("40 + 2")
    assert "42" in r.read_until("sky> ")
    r.send("\x04")
    assert r.wait_exit() == 0


@with_home("Ctrl-C stops a running task on its node: the executor is free again")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("p = sky.compute{nodes = 1, concurrency = 1, display = 'quiet'}")
    r.read_until("sky> ")
    r.line("sky.fn(function() while true do end end)() >> p")
    time.sleep(0.5)
    r.send("\x03")
    assert "interrupted" in r.read_until("sky> ")
    # The node's one executor would still be spinning if the task had not been cancelled.
    r.line("sky.fn(function(a) return a * 3 end)(14) >> p")
    assert "42" in r.read_until("sky> ", timeout=20)
    r.send("\x04")
    assert r.wait_exit() == 0


@with_home("a function defined at the prompt and used remotely: the error has a hint")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("p = sky.compute{nodes = 1, display = 'quiet'}")
    r.read_until("sky> ")
    r.line("function helper(x) return x + 1 end")
    r.read_until("sky> ")
    r.line("sky.fn(function(x) return helper(x) end)(1) >> p")
    out = r.read_until("sky> ")
    assert "global 'helper'" in out and "hint: 'helper' is a global of this script" in out, out
    r.line("local helper = helper; return sky.fn(function(x) return helper(x) end)(1) >> p")
    assert "2" in r.read_until("sky> ")
    r.send("\x04")
    r.wait_exit()


@with_home("history is saved between runs")
def _(home):
    r = Repl(home)
    r.read_until("sky> ")
    r.line("answer = 6 * 7")
    r.read_until("sky> ")
    r.send("\x04")
    r.wait_exit()
    with open(os.path.join(home, ".skyhost_history")) as f:
        saved = f.read().replace("\\040", " ")  # libedit's file escapes spaces
    assert "answer = 6 * 7" in saved, saved
    # The next session recalls it with the up arrow.
    r = Repl(home)
    r.read_until("sky> ")
    r.send("\x1b[A")
    r.line("")
    time.sleep(0.3)
    r.line("print(answer)")
    r.read_until(r"\n42\r?\n")
    r.send("\x04")
    r.wait_exit()


finish()
