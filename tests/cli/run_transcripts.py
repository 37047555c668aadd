#!/usr/bin/python3
"""Transcript tests: each `$ command` line in a .t file runs in bash (with skyhost on PATH, in the
repository root); the lines after it, up to the next command, are its expected stdout+stderr.
`[exit N]` states a non-zero exit status; a line ending in ` (re)` is a regular expression."""
import os
import re
import subprocess
import sys


def parse(path):
    cases, cur = [], None
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("$ "):
                cur = {"cmd": line[2:], "expect": [], "rc": 0, "line": lineno}
                cases.append(cur)
            elif line.startswith("#") and cur is None:
                continue
            elif cur is not None:
                m = re.fullmatch(r"\[exit (\d+)\]", line)
                if m:
                    cur["rc"] = int(m.group(1))
                else:
                    cur["expect"].append(line)
    for c in cases:
        while c["expect"] and c["expect"][-1] == "":
            c["expect"].pop()
    return cases


def matches(expect, got):
    if len(expect) != len(got):
        return False
    for e, g in zip(expect, got):
        if e.endswith(" (re)"):
            if not re.fullmatch(e[:-5], g):
                return False
        elif e != g:
            return False
    return True


def main():
    bindir, root, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    env = dict(os.environ, PATH=bindir + ":" + os.environ["PATH"])
    passed = failed = 0
    for path in files:
        for c in parse(path):
            p = subprocess.run(["bash", "-c", c["cmd"]], cwd=root, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=60)
            got = p.stdout.rstrip("\n").split("\n") if p.stdout.strip("\n") else []
            if matches(c["expect"], got) and p.returncode == c["rc"]:
                passed += 1
                continue
            failed += 1
            print(f"FAIL {os.path.basename(path)}:{c['line']}: $ {c['cmd']}", file=sys.stderr)
            print("  expected (exit %d):\n    %s" % (c["rc"], "\n    ".join(c["expect"])), file=sys.stderr)
            print("  got (exit %d):\n    %s" % (p.returncode, "\n    ".join(got)), file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
