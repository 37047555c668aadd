#!/usr/bin/python3
"""The worker's end command (`--on-expiry`, docs/ssh.md): what a provider's node runs to power
itself off (sky.aws). It runs when the lease expires and when the host's stream ends without a
shutdown (the host was killed), and never after an orderly shutdown.

    test_on_expiry.py SKYWORKER
"""
import os
import struct
import subprocess
import sys
import tempfile
import time

WORKER = sys.argv[1]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import case, finish  # noqa: E402

INIT, SHUTDOWN = 1, 6
INIT_BODY = b"\x01\x06\x00\x01\x05\x04node\x03\x00\x00"  # one table of data, {node = 0}
def frame(kind, body=b""):
    return struct.pack("<I", len(body) + 1) + bytes([kind]) + body


GOOD_INIT = frame(INIT, INIT_BODY)
DIR = tempfile.mkdtemp(prefix="skyworker-expiry-")


def worker(mark, *args):
    return subprocess.Popen([WORKER, "--concurrency", "1", *args, "--on-expiry", "touch " + mark],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@case("the stream ends without a shutdown: the end command runs")
def _eof():
    mark = os.path.join(DIR, "eof")
    p = worker(mark)
    out, err = p.communicate(GOOD_INIT, timeout=30)
    assert os.path.exists(mark), err.decode()
    assert b"running the node's end command: touch" in err, err.decode()


@case("an orderly shutdown: the end command does not run")
def _shutdown():
    mark = os.path.join(DIR, "shutdown")
    p = worker(mark)
    out, err = p.communicate(GOOD_INIT + frame(SHUTDOWN), timeout=30)
    assert p.returncode == 0, (p.returncode, err.decode())
    assert not os.path.exists(mark), err.decode()


@case("the lease expires (the host silent, the stream open): the end command runs")
def _lease():
    mark = os.path.join(DIR, "lease")
    t0 = time.time()
    p = worker(mark, "--ttl", "1")
    p.stdin.write(GOOD_INIT)
    p.stdin.flush()
    p.wait(timeout=30)
    took = time.time() - t0
    err = p.stderr.read().decode()
    p.stdin.close()
    assert os.path.exists(mark), err
    assert "lease expired" in err and 1 <= took < 5, (took, err)


finish()
