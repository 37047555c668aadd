#!/usr/bin/env python3
"""A spot interruption notice on the AWS local cloud (docs/aws.md "Spot interruption notices"):
a spot pool of two with replace = true runs a map (tests/e2e/aws_spot.lua); the test posts a
notice in node 1's instance metadata (tests/support/imds.py, inside its host's namespace), and,
once the pool said InstancePreempted, terminates that instance through the API a little later,
as AWS does two minutes after its notice. Expected: InstancePreempted (reason "spot interruption
notice", action terminate) before InstanceLost, the replacement (InstanceReplaced), every result
once, nothing left in the API or the journal. Then the same pool with spot_notice = false: its
workers never ask the metadata service, and a posted notice says nothing.
Needs what test_aws.py needs. Usage: test_aws_spot.py SKYHOST
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

from awslib import KEY_ID, ROOT, SECRET, Checks, Cloud, ScriptRun

SKYHOST = sys.argv[1]
HOME = tempfile.mkdtemp(prefix="skyhost-aws-spot-")
check = Checks()


def env(cloud, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # AWS_EC2_METADATA_DISABLED: this process never asks a metadata service; the nodes do
    e.update(HOME=HOME, SKYHOST_STATE_DIR=os.path.join(HOME, "state"), CLOUD=cloud.line, AWS_ACCESS_KEY_ID=KEY_ID,
             AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=cloud.info["region"], AWS_EC2_METADATA_DISABLED="true",
             AWS_ENDPOINT_URL_EC2=cloud.info["endpoint"])
    e.update(extra)
    return e


class Run(ScriptRun):
    """tests/e2e/aws_spot.lua."""

    def __init__(self, cloud, **extra):
        super().__init__(SKYHOST, "tests/e2e/aws_spot.lua", env(cloud, **extra))


def journal(cloud, uid):
    r = subprocess.run([SKYHOST, "ls", "--json"], cwd=ROOT, env=env(cloud), capture_output=True, text=True, timeout=60)
    return [p for p in (json.loads(l) for l in r.stdout.splitlines()) if p["id"] == uid]


def worker_args(uid):
    """The command lines (host view) of pool `uid`'s skyworker processes."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and b"skyworker" in args[0] and any(uid.encode() in a for a in args):
            out.append([a.decode(errors="replace") for a in args])
    return out


def post_notice(cloud, iid):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=2)
    os.makedirs(cloud.info["imds"], exist_ok=True)
    path = os.path.join(cloud.info["imds"], iid)
    with open(path + ".new", "w") as f:
        json.dump({"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}, f)
    os.replace(path + ".new", path)


def asked(cloud, iid):
    """The requests instance `iid`'s metadata service answered."""
    try:
        with open(os.path.join(cloud.info["imds"], iid + ".log")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def with_notice(cloud):
    started = time.time()
    run = Run(cloud, WAIT_LOST="1")
    run.wait(lambda: "READY\n" in run.lines, 180)
    ready = time.time()
    uid = (run.line("uid") or [None, ""])[1]
    nodes = {n[1]: n[2] for n in run.all("node")}
    args = worker_args(uid)
    check("spot nodes: each worker watches its instance metadata (--spot-notice 169.254.169.254)",
          run.line("market") == ["market", "spot"] and len(args) == 2
          and all("--spot-notice" in a and a[a.index("--spot-notice") + 1] == "169.254.169.254" for a in args),
          (run.line("market"), args, run.text()))
    victim = nodes.get("1")
    if victim:
        post_notice(cloud, victim)
    posted = time.time()
    run.wait(lambda: run.line("preempted") is not None, 30)
    noticed = time.time()
    time.sleep(2)  # AWS ends the instance two minutes after its notice; here two seconds
    if victim:
        cloud.ec2.terminate_instances(InstanceIds=[victim])
    rc = run.end()
    p = run.all("preempted")
    ip, il = run.index("preempted"), run.index("lost")
    check("the notice: one InstancePreempted for node 1 (spot interruption notice, terminate, its time)",
          len(p) == 1 and p[0][1:5] == ["1", victim, "spot interruption notice", "terminate"] and p[0][5].endswith("Z"),
          (p, run.text()))
    check("InstancePreempted came before the node was lost (InstanceLost node 1)",
          ip is not None and il is not None and ip < il and run.line("lost")[1] == "1", run.text())
    r = run.line("replaced")
    check("the replacement: InstanceReplaced for node 1, a new instance",
          r is not None and r[1] == "1" and r[3] == victim and r[4] not in (victim, ""), (r, run.text()))
    check("every result once (map 8, sum 72), the script ended well",
          rc == 0 and run.line("map") == ["map", "8", "72"] and run.lines[-1:] == ["closed\n"], (rc, run.text()))
    check("0 instances, groups or key pairs left; the journal holds nothing of the pool",
          uid != "" and not cloud.leftovers(uid) and not journal(cloud, uid), (cloud.leftovers(uid), journal(cloud, uid)))
    print("timing: ready after %.1f s, InstancePreempted %.1f s after the notice was posted, the run %.1f s"
          % (ready - started, noticed - posted, time.time() - started))


def without_notice(cloud):
    started = time.time()
    run = Run(cloud, SPOT_NOTICE="0", MAP="4", HOLD="1")
    run.wait(lambda: "READY\n" in run.lines, 180)
    print("timing: spot_notice = false: ready after %.1f s" % (time.time() - started))
    uid = (run.line("uid") or [None, ""])[1]
    nodes = {n[1]: n[2] for n in run.all("node")}
    args = worker_args(uid)
    check("spot_notice = false: no worker watches the instance metadata",
          len(args) == 2 and not any("--spot-notice" in a for a in args), (args, run.text()))
    for iid in nodes.values():
        post_notice(cloud, iid)
    rc = run.end()  # a worker asks first as it starts (before READY), had it been told to ask
    check("spot_notice = false: no event from the notice, no request to the metadata service, every result once",
          rc == 0 and not run.all("preempted") and run.line("map") == ["map", "4", "20"]
          and not any(asked(cloud, i) for i in nodes.values()), (rc, [asked(cloud, i) for i in nodes.values()], run.text()))
    check("and nothing left of it", uid != "" and not cloud.leftovers(uid) and not journal(cloud, uid),
          cloud.leftovers(uid))


def main():
    with Cloud() as cloud:
        with_notice(cloud)
        without_notice(cloud)
        log = cloud.hosts_settled()
        check("every host made was removed, its metadata service with it", log.count(" down ") == log.count(" up "), log)
    check.finish()


if __name__ == "__main__":
    main()
