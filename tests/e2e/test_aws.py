#!/usr/bin/env python3
"""sky.aws end to end on the local cloud (tests/support/local_cloud.py: moto's EC2 server whose
running instances are netns OpenSSH hosts).

A pool of 2 T4 nodes runs a task and a broadcast on two real hosts; after the script ends, the API
holds no running instance, security group or key pair of the pool, the instances never had a
public address, and no host is left. Needs root and the default python3 with moto and boto3;
run it under `flock /tmp/skyhost-netns.lock` like the other netns tests.
Usage: test_aws.py SKYHOST REPO_ROOT
"""
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3

SKYHOST, ROOT = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL", name, detail)


def main():
    err = tempfile.TemporaryFile(mode="w+")
    cloud = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/local_cloud.py"), "--lifetime", "280"],
                             stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = cloud.stdout.readline()
        if not line:
            err.seek(0)
            sys.exit("the local cloud did not start:\n" + err.read())
        info = json.loads(line)
        ec2 = boto3.client("ec2", endpoint_url=info["endpoint"], region_name=info["region"],
                           aws_access_key_id="AKIDTEST", aws_secret_access_key="test-secret")
        with tempfile.TemporaryDirectory() as home:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(HOME=home, CLOUD=line.strip(), AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="test-secret")
            t0 = time.time()
            r = subprocess.run([SKYHOST, "tests/e2e/aws_pool.lua"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=240)
            took = time.time() - t0
        out = dict((l.split("\t")[0], l.split("\t")[1:]) for l in r.stdout.splitlines() if "\t" in l or l == "closed")
        check("the script ran to its end (%.1f s)" % took, r.returncode == 0 and "closed" in r.stdout,
              r.stdout + r.stderr)
        check("a task ran on a node", out.get("one") == ["42"], r.stdout)
        b = out.get("broadcast", [])
        check("broadcast reached both nodes, each a host of its own",
              len(b) == 3 and b[0] == "2" and b[1] != b[2] and all(h.startswith("h") for h in b[1:]), r.stdout)
        uid = out.get("uid", ["?"])[0]
        tag = [{"Name": "tag:skyhost-pool", "Values": [uid]}]
        insts = [i for res in ec2.describe_instances(Filters=tag)["Reservations"] for i in res["Instances"]]
        check("the pool's instances were tagged skyhost-pool=%s" % uid, len(insts) >= 2, insts)
        check("every instance of the pool is terminated", all(i["State"]["Name"] == "terminated" for i in insts),
              [(i["InstanceId"], i["State"]["Name"]) for i in insts])
        net = ipaddress.ip_network("10.203.0.0/24")
        check("no public address, private ones in the test bed's subnet",
              all(not i.get("PublicIpAddress") and ipaddress.ip_address(i["PrivateIpAddress"]) in net for i in insts),
              [(i.get("PublicIpAddress"), i.get("PrivateIpAddress")) for i in insts])
        groups = [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]]
        check("no security group of the pool", not any(uid in g for g in groups), groups)
        keys = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
        check("no key pair of the pool", not any(uid in k for k in keys), keys)
        deadline = time.time() + 10
        while time.time() < deadline:
            err.seek(0)
            log = err.read()
            if log.count(" up ") >= 2 and log.count(" down ") >= log.count(" up "):
                break
            time.sleep(0.2)
        check("every host the cloud made for the pool was removed when its instance terminated",
              log.count(" up ") >= 2 and log.count(" down ") == log.count(" up "), log)
    finally:
        cloud.terminate()
        try:
            cloud.wait(60)
        except subprocess.TimeoutExpired:
            cloud.kill()
            cloud.wait()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    check("no test host left behind", "skyt-" not in left, left)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
