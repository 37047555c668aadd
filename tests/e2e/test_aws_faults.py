#!/usr/bin/env python3
"""sky.aws against a failing cloud: the local cloud behind tests/support/fault_proxy.py.

- no spot capacity: spot-if-available falls back to on-demand of the same offer;
- a zone out of capacity: the next zone;
- throttling (RequestLimitExceeded), 5xx and a dropped connection: retried, the pool comes up;
- bad credentials (AuthFailure): the provider is blocked, the message says how to fix it;
- Ctrl-C while the instances are pending: they are terminated before skyhost exits;
- the journal's disk full, before the pool and after its intents (aws_journal_full.py);
- partial provisioning: one of the instances a RunInstances made ends before it runs (capacity
  taken back): the attempt's instances are all terminated, the pool comes up in the next zone;
and after each, nothing of the pool is left in the API. Needs what test_aws.py needs.
Usage: test_aws_faults.py SKYHOST
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from aws_journal_full import run_cases as journal_full_cases
from awslib import Checks, Cloud, Proxy, run_pool, start_pool

SKYHOST = sys.argv[1]


def zone_names(cloud):
    return {z["ZoneId"]: z["ZoneName"] for z in cloud.ec2.describe_availability_zones()["AvailabilityZones"]}


def partial_case(cloud, proxy, check):
    before = {i["InstanceId"] for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    proxy.set_rules([{"action": "DescribeInstances", "delay": 1.0, "times": 1}])
    state = tempfile.mkdtemp(prefix="skyhost-partial-")
    with tempfile.TemporaryDirectory() as home:
        p = start_pool(SKYHOST, cloud, home, proxy.endpoint, nodes=2,
                       env_extra={"ALLOCATION": "on-demand", "SKYHOST_STATE_DIR": state})
        new = []
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and len(new) < 2:
            new = [i for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                   if i["InstanceId"] not in before]
            time.sleep(0.02)
        if new:
            cloud.ec2.terminate_instances(InstanceIds=[new[0]["InstanceId"]])
        text = p.communicate(timeout=120)[0]
    out = dict((l.split("\t")[0], l.split("\t")[1:]) for l in text.splitlines() if "\t" in l)
    failed = [l.split("\t")[1:] for l in text.splitlines() if l.startswith("failed\t")]
    uid = out.get("uid", ["?"])[0]
    insts = cloud.instances(uid)
    runs = [e for e in proxy.log() if e["action"] == "RunInstances"]
    check("partial provisioning: the pool came up on 2 nodes after one failed attempt",
          len(new) == 2 and p.returncode == 0 and out.get("broadcast", [""])[0] == "2" and len(failed) == 1
          and "terminated before it ran" in failed[0][2], (len(new), text))
    first = {i["InstanceId"] for i in new}
    check("the failed attempt's other instance was terminated too, and the pool's 2 came from another zone",
          len(runs) == 2 and len(insts) == 4 and all(i["State"]["Name"] == "terminated" for i in insts)
          and {i["Placement"]["AvailabilityZone"] for i in insts if i["InstanceId"] in first}
          .isdisjoint({i["Placement"]["AvailabilityZone"] for i in insts if i["InstanceId"] not in first}),
          (runs, [(i["InstanceId"], i["State"]["Name"], i["Placement"]) for i in insts]))
    ls = subprocess.run([SKYHOST, "ls", "--json"], env=dict(os.environ, SKYHOST_STATE_DIR=state),
                        capture_output=True, text=True)
    check("partial provisioning: 0 left in the API, 0 pools in the journal",
          not cloud.leftovers(uid) and ls.returncode == 0 and ls.stdout.strip() == "", (cloud.leftovers(uid), ls))
    subprocess.run(["rm", "-rf", state])


def main():
    check = Checks()
    with Cloud() as cloud:
        proxy = Proxy(cloud.info["endpoint"])
        zones = zone_names(cloud)
        try:
            # 1. spot capacity → on-demand of the same offer
            proxy.set_rules([{"action": "RunInstances", "match": {"InstanceMarketOptions.MarketType": "spot"},
                              "error": "InsufficientInstanceCapacity", "status": 500}])
            rc, out, failed, text = run_pool(SKYHOST, cloud, proxy.endpoint, nodes=1)
            uid = out.get("uid", ["?"])[0]
            insts = cloud.instances(uid)
            check("no spot capacity: the pool came up on demand", rc == 0 and out.get("one") == ["42"], text)
            check("the spot attempt failed for capacity, and only that one",
                  len(failed) == 1 and failed[0][1] == "spot" and "InsufficientInstanceCapacity" in failed[0][2], failed)
            ran = [i for i in insts if i["State"]["Name"] == "terminated"]
            check("the instance that ran was on demand, in the zone spot was refused in",
                  len(ran) == 1 and not ran[0].get("InstanceLifecycle")
                  and failed and ran[0]["Placement"]["AvailabilityZone"] == zones.get(failed[0][0]),
                  (ran, failed))
            check("spot fallback: nothing left", not cloud.leftovers(uid), cloud.leftovers(uid))

            # 2. a zone out of capacity → the next zone
            proxy.set_rules([{"action": "RunInstances", "error": "InsufficientInstanceCapacity", "status": 500,
                              "times": 1}])
            rc, out, failed, text = run_pool(SKYHOST, cloud, proxy.endpoint, nodes=1, allocation="on-demand")
            uid = out.get("uid", ["?"])[0]
            ran = cloud.instances(uid)
            check("a zone out of capacity: the pool came up", rc == 0 and out.get("one") == ["42"], text)
            check("in another zone than the one that had none",
                  len(failed) == 1 and len(ran) == 1 and failed[0][0] in zones
                  and ran[0]["Placement"]["AvailabilityZone"] != zones[failed[0][0]],
                  (failed, [i["Placement"] for i in ran]))
            check("zone fallback: nothing left", not cloud.leftovers(uid), cloud.leftovers(uid))

            # 3. throttling, 5xx and a dropped connection: retried
            proxy.set_rules([{"action": "*", "error": "RequestLimitExceeded", "status": 503, "times": 3},
                             {"action": "DescribeInstances", "error": "InternalError", "status": 500, "times": 2},
                             {"action": "RunInstances", "drop": True, "times": 1}])
            rc, out, failed, text = run_pool(SKYHOST, cloud, proxy.endpoint, nodes=2)
            uid = out.get("uid", ["?"])[0]
            log = proxy.log()
            done = [e["done"] for e in log]
            check("throttled, 5xx and a dropped connection: the pool came up without a failed attempt",
                  rc == 0 and out.get("broadcast", [""])[0] == "2" and not failed, text)
            check("the proxy did throttle 3 times, answer 500 twice and drop once",
                  done.count("error RequestLimitExceeded") == 3 and done.count("error InternalError") == 2
                  and done.count("dropped") == 1, done)
            check("one RunInstances reached the cloud after the retries",
                  sum(1 for e in log if e["action"] == "RunInstances" and e["done"].startswith("forwarded")) == 1, log)
            check("retries: nothing left", not cloud.leftovers(uid), cloud.leftovers(uid))

            # 4. bad credentials
            proxy.set_rules([{"action": "*", "error": "AuthFailure", "status": 401}])
            rc, out, failed, text = run_pool(SKYHOST, cloud, proxy.endpoint, nodes=1)
            check("bad credentials: the script fails", rc != 0 and "one" not in out, text)
            check("and says which error, how to fix it, and that aws was blocked",
                  "AuthFailure" in text and "check the credentials" in text and "blocked provider aws" in text, text)
            check("after only one failed attempt", len(failed) == 1, failed)

            # 5. Ctrl-C while the instances are pending (each DescribeInstances answered slowly)
            proxy.set_rules([{"action": "DescribeInstances", "delay": 1.5}])
            with tempfile.TemporaryDirectory() as home:
                p = start_pool(SKYHOST, cloud, home, proxy.endpoint, nodes=2)
                deadline = time.time() + 60
                while time.time() < deadline and not any(e["action"] == "RunInstances" for e in proxy.log()):
                    time.sleep(0.05)
                launched = any(e["action"] == "RunInstances" for e in proxy.log())
                p.send_signal(signal.SIGINT)
                text = p.communicate(timeout=120)[0]
            check("Ctrl-C while pending: skyhost ends with 130 after the instances were launched",
                  launched and p.returncode == 130, (launched, p.returncode, text))
            live = [i["InstanceId"] for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                    if i["State"]["Name"] != "terminated"]
            check("and terminated them before exiting", not live, live)

            # 6. the journal's disk full (docs/journal.md, the fault suite)
            journal_full_cases(SKYHOST, cloud, proxy, check)

            # 7. partial provisioning: 1 of 2 instances ends before it runs (the cloud's doing,
            # through its own API while skyhost's first DescribeInstances is held)
            partial_case(cloud, proxy, check)
        finally:
            proxy.close()
        live = [i["InstanceId"] for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                if i["State"]["Name"] != "terminated"]
        groups = [g["GroupName"] for g in cloud.ec2.describe_security_groups()["SecurityGroups"]
                  if g["GroupName"].startswith("skyhost-")]
        keys = [k["KeyName"] for k in cloud.ec2.describe_key_pairs()["KeyPairs"]]
        check("in the end the cloud holds no live instance, skyhost group or key pair", not (live or groups or keys),
              (live, groups, keys))
        log = cloud.hosts_settled()
        check("and every host made was removed", log.count(" down ") == log.count(" up "), log)
    check.finish()


if __name__ == "__main__":
    main()
