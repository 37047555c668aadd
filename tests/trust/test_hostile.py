#!/usr/bin/python3
"""The host against a hostile node: a stand-in worker (hostile_worker.cpp, named by
SKYHOST_WORKER) answers a task with each of the attacks of issue 16. For each: skyhost exits
normally, the script sees a clear error naming the node (or, for valid data, the data), nothing
the node sent ever runs (no marker file appears), and the host's peak memory stays small.

    test_hostile.py SKYHOST HOSTILE_WORKER SANITIZED(0|1)
"""
import os
import resource
import subprocess
import sys
import tempfile
import threading

SKYHOST, HOSTILE, SANITIZED = sys.argv[1], sys.argv[2], sys.argv[3] in ("1", "ON", "TRUE")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import finish, run_case  # noqa: E402

# Peak RSS allowed for the host (and the worker it reaps), in MiB. A run costs about 15 MiB
# (more under ASan); the amplification attack used to cost 3 to 5.75 GB.
PEAK_MIB = 1024 if SANITIZED else 128
# Address space for the host in the uninstrumented build: a normal run needs ~30 MiB, so a
# buffer reserved for an announced 1 GiB frame cannot fit. (ASan maps terabytes of shadow.)
AS_LIMIT = None if SANITIZED else 512 << 20


def run(mode, expect, address_limit=False):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SKYHOST_WORKER=HOSTILE, SKYHOST_HOSTILE=mode,
                   SKYHOST_HOSTILE_MARK=os.path.join(tmp, "ran"))
        limit = None
        if address_limit and AS_LIMIT:
            def limit():
                resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            proc = subprocess.Popen([SKYHOST, os.path.join(HERE, "hostile.lua"), mode], env=env,
                                    stdout=fo, stderr=fe, preexec_fn=limit)
            timer = threading.Timer(120, proc.kill)
            timer.start()
            # wait4: the exit status and the peak RSS of this run (the host, and the worker
            # it reaped), not of every child so far
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            timer.cancel()
        out, err = open(out_path).read(), open(err_path).read()
        ran = sorted(f for f in os.listdir(tmp) if f.startswith("ran"))
    peak = usage.ru_maxrss // 1024
    first = (out.strip().splitlines() or [err.strip()])[0]
    print(f"{mode}: exit {rc}, peak RSS {peak} MiB: {first}")
    assert rc == 0, f"{mode}: exit {rc}\n{out}\n{err}"
    assert "(null)" not in err, err
    assert not ran, f"{mode}: code the node sent ran on the host: {ran}"
    assert "DONE" in out or out.startswith("START"), out + err
    assert expect in out, f"{mode}: expected {expect!r} in\n{out}\n{err}"
    assert peak <= PEAK_MIB, f"{mode}: host peak RSS {peak} MiB > {PEAK_MIB} MiB"


REFUSED = "task failed on node 0: the host refused its result: codec: "
NO_CODE = "(a node returns data only: the host never runs code that a node sends)"

# 1. A result that would run code on the host: metamethods (__gc runs at collection, untouched)
#    and functions loaded as host bytecode.
run_case("1. metatables with __gc, __index, ...", run, "gc",
         REFUSED + "refused a table with a metatable " + NO_CODE)
run_case("1. functions", run, "function", REFUSED + "refused a function " + NO_CODE)
# 2. Forged bytecode (valid chunk, invalid instructions) never reaches lua_load.
run_case("2. forged bytecode", run, "bytecode", REFUSED + "refused a function")
# 3. Memory amplification: 1 MiB of lying table sizes, and 1 MiB of honest costly data.
run_case("3. lying table sizes", run, "amplify", REFUSED)
run_case("3. a valid 1 MiB result of the costliest shape", run, "big-valid",
         "RESULT 1 values, the first is a table of length 262144")
# 4. A 4-byte header announcing 1 GiB reserves nothing (in 512 MiB of address space), and one
#    over the pool's limit ends that node with both sizes.
run_case("4. a header announcing 1 GiB", run, "header",
         "task failed on node 0: node 0 was lost: worker exited", True)
run_case("4. a header over max_frame", run, "over-limit",
         "task failed on node 0: node 0 was lost: bad frame from worker: wire: frame of "
         "2 MiB exceeds the limit of 1 MiB")
run_case("4. random bytes", run, "garbage",
         "task failed on node 0: node 0 was lost: bad frame from worker: wire: ")
run_case("a malformed failure", run, "bad-failure",
         "task failed on node 0: the worker sent a malformed failure")
# Large strings sent apart (wire::Blob) are held to their announced size, each used once.
run_case("a large string sent apart, cut short", run, "blob-short",
         "task failed on node 0: node 0 was lost: worker exited")
run_case("a large string sent apart, its size a lie", run, "blob-lie",
         REFUSED + "a large string sent apart of 2097152 bytes, announced as 3145728")
run_case("a large string sent apart under the threshold", run, "blob-tiny",
         "node 0 was lost: bad frame from worker: wire: a large string sent apart of 10 bytes, "
         "under 1 MiB")
# A spot interruption notice (worker/spot_notice.cpp) is data too: its strings are checked
# against the frame and cut to 64 bytes; one cut short ends the node.
run_case("a malformed spot notice", run, "notice",
         "task failed on node 0: node 0 was lost: bad frame from worker: wire: string of 1048576 bytes")
# 5. A worker that refuses its Init says so, and the host reports it as the reason.
run_case("5. a worker's Fatal answer to Init", run, "fatal",
         "node 0 failed to start: malformed Init frame from host: it is empty "
         "(worker exited with status 3)")
finish()
