#!/usr/bin/python3
"""The worker survives any bytes on its input (issue 16, finding 5): it either works or ends with
a clear message on stderr and exit status 3 (a Fatal frame to the host when the stream could
carry one), never an abort or a signal. The host is trusted, so this is robustness: the bytes
here are malformed, not malicious code.

    test_worker_input.py SKYWORKER SANITIZED(0|1)
"""
import os
import random
import resource
import struct
import subprocess
import sys

WORKER, SANITIZED = sys.argv[1], sys.argv[2] in ("1", "ON", "TRUE")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "support"))
from checks import finish, run_case  # noqa: E402

INIT, DEF, TASK, SHUTDOWN = 1, 2, 3, 6
RESULT, FATAL = 65, 67
# A valid Init: one table of data, {node = 0}.
GOOD_INIT = b"\x01\x06\x00\x01\x05\x04node\x03\x00\x00"


def frame(kind, body=b""):
    return struct.pack("<I", len(body) + 1) + bytes([kind]) + body


def frames(data):
    out = []
    while len(data) >= 5:
        n = struct.unpack("<I", data[:4])[0]
        out.append((data[4], data[5:4 + n]))
        data = data[4 + n:]
    return out


def varint_string(body):
    n, shift, i = 0, 0, 0
    while True:
        b = body[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return body[i:i + n].decode()
        shift += 7


def run(data, args=(), address_limit=None):
    def limit():
        if address_limit and not SANITIZED:
            resource.setrlimit(resource.RLIMIT_AS, (address_limit, address_limit))
    p = subprocess.run([WORKER, "--concurrency", "2", *args], input=data, capture_output=True,
                       timeout=60, preexec_fn=limit)
    assert p.returncode >= 0, f"killed by signal {-p.returncode}: {p.stderr.decode()[-500:]}"
    assert p.returncode in (0, 3), f"exit {p.returncode}: {p.stderr.decode()[-500:]}"
    return p.returncode, frames(p.stdout), p.stderr.decode()


def fatal(data, message, **kw):
    rc, out, err = run(data, **kw)
    assert rc == 3, f"exit {rc}, expected 3: {err}"
    assert f"skyworker: {message}" in err, err
    said = [varint_string(b) for t, b in out if t == FATAL]
    assert said and message in said[0], f"no Fatal frame saying {message!r}: {out}"


# A malformed Init is reported as such, before any executor starts.
run_case("empty Init", fatal, frame(INIT), "malformed Init frame from host: it is empty")
run_case("undecodable Init", fatal, frame(INIT, b"\x01\x06\xff"),
         "malformed Init frame from host: wire: truncated varint")
run_case("Init that is not a table", fatal, frame(INIT, b"\x01\x03\x02"),
         "malformed Init frame from host: it is not one table of data")
run_case("Init with a function", fatal, frame(INIT, b"\x01\x08\x00\x00\x00\x00\x00"),
         "malformed Init frame from host: codec: refused a function")
run_case("Init with trailing bytes", fatal, frame(INIT, GOOD_INIT + b"\x00"),
         "malformed Init frame from host: it is not one table of data")
# Bad frames.
run_case("frame of length 0", fatal, b"\0\0\0\0", "bad frame from host: wire: frame with length 0")
run_case("frame over the limit", lambda: fatal(
    struct.pack("<I", 5000) + b"\x03",
    "bad frame from host: wire: frame of 4.9 KiB (5000 bytes) exceeds the limit of 4 KiB",
    args=("--max-frame", "4096")))
run_case("truncated Def", fatal, frame(INIT, GOOD_INIT) + frame(DEF, b"xx"),
         "bad frame from host: wire: truncated input")
run_case("truncated Task", fatal, frame(INIT, GOOD_INIT) + frame(TASK, b"\x01" * 9),
         "bad frame from host: wire: truncated input")


def announced_gigabyte():
    # 4 bytes announce 1 GiB, then the stream ends: in 256 MiB of address space (uninstrumented
    # build), so a buffer reserved for the announced size could not exist.
    rc, out, err = run(struct.pack("<I", 1 << 30) + b"\x03abc", address_limit=256 << 20)
    assert rc == 0 and "ended inside a frame" in err, (rc, err)


run_case("a header announcing 1 GiB reserves nothing", announced_gigabyte)


def task_failures():
    # A task whose function is unknown, or whose arguments do not decode, fails; the worker
    # goes on and answers the next one, then stops when asked.
    p = subprocess.Popen([WORKER, "--concurrency", "1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = b""

    def results_after(*sent, count):
        nonlocal data
        for f in sent:
            p.stdin.write(f)
        p.stdin.flush()
        while True:
            results = [b for t, b in frames(data) if t == RESULT]
            if len(results) >= count:
                return results
            chunk = os.read(p.stdout.fileno(), 65536)
            assert chunk, "the worker closed its output"
            data += chunk

    results_after(frame(INIT, GOOD_INIT), frame(TASK, struct.pack("<QQ", 1, 9) + b"\x00\x00"),
                  count=1)
    results = results_after(frame(DEF, struct.pack("<Q", 9) + b"\x01\x08\x04\x00\x00\x00junk"),
                            frame(TASK, struct.pack("<QQ", 2, 9) + b"\x00\x00"), count=2)
    p.stdin.write(frame(SHUTDOWN))
    p.stdin.close()
    p.wait(timeout=30)
    assert p.returncode >= 0, f"killed by signal {-p.returncode}"
    for r in results:
        assert r[8] == 0, r  # not ok
    text = b"".join(results)
    assert b"unknown function" in text and b"not a binary Lua chunk" in text, text


run_case("failing tasks fail, the worker goes on", task_failures)


def random_streams():
    rng = random.Random(16)
    for i in range(150):
        kind = i % 3
        if kind == 0:  # bytes
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif kind == 1:  # frames of random types and bodies
            data = b"".join(frame(rng.randrange(256), bytes(rng.randrange(256) for _ in
                                                            range(rng.randrange(0, 40))))
                            for _ in range(rng.randrange(1, 6)))
        else:  # a valid Init, then random frames
            data = frame(INIT, GOOD_INIT) + b"".join(
                frame(rng.choice([DEF, TASK, 4, 5, 99]),
                      bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))
                for _ in range(rng.randrange(1, 6)))
        run(data)


run_case("150 random streams: exit 0 or 3, never a signal", random_streams)
run_case("a Shutdown ends it cleanly", lambda: run(frame(INIT, GOOD_INIT) + frame(SHUTDOWN)))
finish()
