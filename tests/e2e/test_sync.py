#!/usr/bin/python3
"""pool:put of a directory to a real OpenSSH server in a network namespace
(tests/support/netns-hosts.sh, the e2e bed): a first sync copies the tree; a second moves only
what changed, with added, changed, removed and renamed files, symlinks and permissions; a node's
copy changed behind the host's back is put right. Needs root."""
import os
import re
import subprocess
import sys
import tempfile
import time

SKYHOST = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOSTS_SH = os.path.join(ROOT, "tests", "support", "netns-hosts.sh")
SCRIPT = os.path.join(HERE, "ssh_sync.lua")
ENV = dict(os.environ, SKYT_PREFIX="skye", SKYT_NET4="10.205", SKYT_NET6="fd5c:205:",
           SKYT_STATE="/run/skyhost-e2e")
STATE = ENV["SKYT_STATE"]
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from checks import case, finish  # noqa: E402

# The node's hash cache and its mark are the sync's own, not entries of the tree.
OWN = "\\( -path ./.skyhost-sync.cache -o -path ./.skyhost-sync.mark \\) -prune -o"
DESCRIBE = ("cd {d} && find . -mindepth 1 " + OWN + " -printf '%y %m %s %P %l\\n' | sort && "
            "find . " + OWN + " -type f -print0 | sort -z | xargs -0 -r sha256sum")


def sh(cmd, **kw):
    return subprocess.run(["sh", "-c", cmd], check=True, capture_output=True, text=True, **kw).stdout


def on_host(cmd):
    r = subprocess.run(["ssh", "-F", f"{STATE}/ssh_config", "h1", cmd], env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def sync(src, dest="synced", **extra):
    r = subprocess.run([SKYHOST, SCRIPT], env=dict(ENV, HOST="10.205.0.11", SRC=src, DEST=dest,
                                                   **extra),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("SYNC ")][0]
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


# On h1: wait for the `cat` writing the sync's archive, kill it part way, then report the flags
# of the next one's output (O_APPEND: the upload goes on from what arrived).
PUT_CUT = r"""end=$(( $(date +%s) + 60 ))
writer() { for p in $(pgrep -x cat); do case $(readlink /proc/$p/fd/1) in
  *.skyhost-sync.tar.skyhost-part) echo $p; return;; esac; done; }
while :; do p=$(writer); [ -n "$p" ] && break
  [ "$(date +%s)" -ge $end ] && { echo NOCAT; exit 1; }; sleep 0.01; done
sleep 0.15; kill -9 "$p"; echo "KILLED $p"
while :; do q=$(writer); if [ -n "$q" ] && [ "$q" != "$p" ]; then
    fl=$(awk '/^flags/ { print $2 }' /proc/$q/fdinfo/1)
    echo "APPEND $(( 0$fl & 02000 ))"; exit 0; fi
  [ "$(date +%s)" -ge $end ] && { echo NOAPPEND; exit 1; }; sleep 0.01; done"""

# On h1: wait for the `cat` sending a pool:get(dir/)'s gathered files, kill it part way, then
# report the `tail -c +N` that goes on from the first byte missing.
GET_CUT = r"""end=$(( $(date +%s) + 60 ))
while :; do p=$(pgrep -f '^cat /tmp/skyhost-get-' | head -n 1); [ -n "$p" ] && break
  [ "$(date +%s)" -ge $end ] && { echo NOCAT; exit 1; }; sleep 0.01; done
sleep 0.15; kill -9 "$p"; echo "KILLED $p"
while :; do t=$(pgrep -af '^tail -c' | head -n 1); [ -n "$t" ] && { echo "TAIL $t"; exit 0; }
  [ "$(date +%s)" -ge $end ] && { echo NOTAIL; exit 1; }; sleep 0.01; done"""


def cut_while(script, fn):
    cutter = subprocess.Popen(["ssh", "-F", f"{STATE}/ssh_config", "h1", script], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        r = fn()
        out, err = cutter.communicate(timeout=60)
        return r, out + err
    finally:
        if cutter.poll() is None:
            cutter.kill()
            cutter.wait()


def same(local, dest="synced"):
    want = sh(DESCRIBE.format(d=local))
    got = on_host(DESCRIBE.format(d=dest))
    assert got == want, f"the trees differ:\nnode:\n{got}\nlocal:\n{want}"


subprocess.run([HOSTS_SH, "up", "1"], env=ENV, check=True, capture_output=True)
try:
    with tempfile.TemporaryDirectory() as d:
        ENV["SKYHOST_STATE_DIR"] = os.path.join(d, "state")  # the host's hash caches
        src = os.path.join(d, "src")
        sh(f"mkdir -p {src}/sub/deeper {src}/empty-dir && cd {src} && printf abc > a.txt && "
           "head -c 3000000 /dev/urandom > sub/big && printf '#!/bin/sh\\n' > sub/run.sh && "
           "chmod 755 sub/run.sh && chmod 600 a.txt && printf old > sub/deeper/old && "
           "ln -s a.txt link && ln -s sub dirlink && printf q > 'with space' && "
           "printf 'not a cache' > .skyhost-sync.cache && "
           "mkdir -p " + "n" * 120 + " && printf long > " + "n" * 120 + "/" + "m" * 90)
        on_host("rm -rf synced")

        @case("a first sync copies the tree: files, directories, links, modes, long names")
        def _():
            r = sync(src)
            assert r["sent"] == 6 and r["removed"] == 0, r
            same(src)

        @case("a second sync of an unchanged tree moves nothing")
        def _():
            r = sync(src)
            assert r["sent"] == 0 and r["copied"] == 0 and r["sent_bytes"] == 0, r
            same(src)

        @case("a second sync of an unchanged tree reads no file again, on either side")
        def _():
            time.sleep(2.1)  # the host caches no file changed less than 2 s before its scan
            sync(src)
            r = sync(src)
            assert r["hashed"] == 0 and r["sent"] == 0, r
            # The node's cache is its own, not the source's file of that name (never sent).
            assert on_host("head -c 19 synced/.skyhost-sync.cache") == "skyhost-hash-cache "
            same(src)

        @case("a corrupt node cache is not trusted: every file is hashed again, rightly")
        def _():
            # One hex digit of the first hash changed (still hex): only the checksum tells.
            on_host("cd synced && f=.skyhost-sync.cache && o=$(head -n 1 $f | wc -c) && "
                    "c=$(dd if=$f bs=1 skip=$o count=1 2>/dev/null) && "
                    "if [ \"$c\" = a ]; then n=b; else n=a; fi && "
                    "printf $n | dd of=$f bs=1 seek=$o conv=notrunc 2>/dev/null && "
                    "t=$(stat -c %y 'with space') && printf Q > 'with space' && "
                    "touch -d \"$t\" 'with space'")
            r = sync(src)
            assert r["sent"] == 1 and r["hashed"] >= 6, r
            same(src)
            # The cache was written anew: only 'with space', just sent, may be read again (if
            # tar wrote it in the timestamp tick of the mark after it: a racy entry).
            r = sync(src)
            assert r["sent"] == 0 and r["hashed_bytes"] <= 1, r

        @case("a file rewritten with the same size and mtime is seen on both sides (by ctime)")
        def _():
            keep_mtime = "t=$(stat -c %y a.txt) && printf {} > a.txt && touch -d \"$t\" a.txt"
            on_host("cd synced && " + keep_mtime.format("xyz"))
            r = sync(src)
            assert r["sent"] == 1 and r["hashed"] == 1, r
            same(src)
            sh(f"cd {src} && " + keep_mtime.format("abx"))
            r = sync(src)
            assert r["sent"] == 1, r
            same(src)

        @case("added, changed, removed, renamed files, links and modes: only those move")
        def _():
            sh(f"cd {src} && printf abd > a.txt && printf new > added && rm sub/deeper/old && "
               "mv sub/big big-renamed && chmod 700 sub/run.sh && rm link && ln -s added link && "
               "rm -r empty-dir && printf f > empty-dir")
            r = sync(src)
            # a.txt, added, empty-dir sent; big-renamed copied on the node from sub/big
            assert r["sent"] == 3 and r["copied"] == 1 and r["sent_bytes"] == 7, r
            same(src)

        @case("a node's copy changed behind the host's back is put right")
        def _():
            on_host("cd synced && printf tampered > a.txt && chmod 777 added && rm -r sub && "
                    "touch stray && mkdir -p .skyhost-stage")
            r = sync(src)
            assert r["sent"] == 2 and r["removed"] >= 1, r
            same(src)
            on_host("test ! -e synced/.skyhost-stage && test ! -e synced/.skyhost-sync.tar")

        @case("pool:get of a directory: the node's tree comes back, then only what changed")
        def _():
            back = os.path.join(d, "back")
            r = sync(back, GET="1")
            assert r["sent"] == 7 and r["removed"] == 0, r
            # big-renamed (3 MB) is in the node's hash cache since the last put: not read again.
            assert r["hashed_bytes"] < 3000000, r
            same(back)
            # The node's hash cache is the sync's own: it never comes back as an entry.
            assert not os.path.exists(os.path.join(back, ".skyhost-sync.cache")), os.listdir(back)
            assert not os.path.exists(os.path.join(back, ".skyhost-sync.mark")), os.listdir(back)
            on_host("cd synced && printf 'changed on the node' > added && rm a.txt && "
                    "mv big-renamed moved-on-node && chmod 600 sub/run.sh")
            r = sync(back, GET="1")
            # added sent; moved-on-node copied locally from big-renamed; a.txt removed
            assert r["sent"] == 1 and r["copied"] == 1 and r["sent_bytes"] == 19, r
            same(back)
            r = subprocess.run([SKYHOST, SCRIPT], env=dict(ENV, HOST="10.205.0.11", SRC=back,
                               DEST="no-such-dir", GET="1"), capture_output=True, text=True, timeout=60)
            assert r.returncode == 1 and "no-such-dir" in r.stdout, r.stdout
            same(back)  # the local copy is left as it was

        @case("image.sync fills the workdir before the pool is ready; tasks run there")
        def _():
            r = subprocess.run([SKYHOST, SCRIPT], env=dict(ENV, HOST="10.205.0.11", SRC=src,
                               DEST="work", IMAGE_SYNC="added"),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "READ new" in r.stdout, r.stdout + r.stderr
            same(src, "work")

        @case("a sync whose upload is cut part way goes on from what arrived, and checks it")
        def _():
            sh(f"head -c 200000000 /dev/urandom > {src}/huge")
            r, out = cut_while(PUT_CUT, lambda: sync(src))
            assert "KILLED" in out and "APPEND" in out and "APPEND 0" not in out, out
            # huge, and what the pool:get case changed on the node
            assert r["sent_bytes"] >= 200000000, r
            same(src)

        @case("a pool:get(dir/) whose download is cut part way goes on, and checks every file")
        def _():
            back = os.path.join(d, "back")
            on_host("head -c 200000000 /dev/urandom > synced/huge-on-node")
            r, out = cut_while(GET_CUT, lambda: sync(back, GET="1"))
            assert "KILLED" in out and re.search(r"TAIL \d+ tail -c \+(\d+) ", out), out
            assert r["sent_bytes"] >= 400000000, r  # huge (the cut upload's) and huge-on-node
            same(back)
            on_host("test -z \"$(ls /tmp | grep skyhost-get-)\"")  # the node's stream file is gone

        @case("a missing local directory fails with its name; nothing is left on the node")
        def _():
            r = subprocess.run([SKYHOST, SCRIPT], env=dict(ENV, HOST="10.205.0.11",
                               SRC=os.path.join(d, "nope"), DEST="other"),
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1 and "cannot read" in r.stdout and "nope" in r.stdout, r.stdout
            on_host("test ! -e other")
finally:
    subprocess.run([HOSTS_SH, "down"], env=ENV, capture_output=True)

finish()
