#!/usr/bin/env python3
"""sky.aws end to end on the local cloud (tests/support/local_cloud.py: moto's EC2 server whose
running instances are netns OpenSSH hosts).

A pool of 2 T4 nodes (host keys pinned from the console output) runs a task and a broadcast on
two real hosts; after the script ends, the API holds no running instance, security group or key
pair of the pool, the spot price paid is the live one, the instances never had a public address,
and no host is left. Then a node whose console shows another key than its own is refused. Needs
root and the default python3 with moto and boto3; run it under `flock /tmp/skyhost-netns.lock`
like the other netns tests.
Usage: test_aws.py SKYHOST
"""
import ipaddress
import os
import subprocess
import sys
import time

from awslib import Checks, Cloud, run_pool

SKYHOST = sys.argv[1]


def main():
    check = Checks()
    with Cloud() as cloud:
        t0 = time.time()
        # host_keys = "console": the nodes are only dialled once GetConsoleOutput shows their host
        # keys, and those keys are pinned (moto's own console output has none: it would wait forever)
        rc, out, _, text = run_pool(SKYHOST, cloud, nodes=2, env_extra={"HOST_KEYS": "console"})
        check("the script ran to its end (%.1f s), the host keys pinned from the console output" % (time.time() - t0),
              rc == 0 and "closed" in out, text)
        check("a task ran on a node", out.get("one") == ["42"], text)
        # moto answers DescribeSpotPriceHistory with $0.00001/h; the catalog's T4 spot prices are
        # over $0.1/h: the price the pool was bought and billed at is the live one
        check("the spot market at the live price (DescribeSpotPriceHistory)", out.get("market") == ["spot", "0.00001"],
              out.get("market"))
        b = out.get("broadcast", [])
        check("broadcast reached both nodes, each a host of its own",
              len(b) == 3 and b[0] == "2" and b[1] != b[2] and all(h.startswith("h") for h in b[1:]), text)
        uid = out.get("uid", ["?"])[0]
        insts = cloud.instances(uid)
        check("the pool's instances were tagged skyhost-pool=%s" % uid, len(insts) >= 2, insts)
        check("nothing of the pool is left in the API", insts and not cloud.leftovers(uid), cloud.leftovers(uid))
        net = ipaddress.ip_network("10.213.0.0/24")
        check("no public address, private ones in the test bed's subnet",
              all(not i.get("PublicIpAddress") and ipaddress.ip_address(i["PrivateIpAddress"]) in net for i in insts),
              [(i.get("PublicIpAddress"), i.get("PrivateIpAddress")) for i in insts])
        # a console that shows another key than the host's: the first connection is refused
        open(os.path.join(cloud.info["console"], "WRONG"), "w").close()
        t0 = time.time()
        rc, out, _, text2 = run_pool(SKYHOST, cloud, nodes=1, allocation="on-demand",
                                     env_extra={"HOST_KEYS": "console"})
        os.remove(os.path.join(cloud.info["console"], "WRONG"))
        check("a node whose key is not the one its console reported is refused (%.1f s)" % (time.time() - t0),
              rc != 0 and "key(s) reported for this machine; refusing to connect" in text2, text2)
        live = [i["InstanceId"] for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                if i["State"]["Name"] != "terminated"]
        check("and its instances were terminated", not live, live)
        log = cloud.hosts_settled()
        check("every host the cloud made for the pool was removed when its instance terminated",
              log.count(" up ") >= 2 and log.count(" down ") == log.count(" up "), log)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    check("no test host left behind", "skya-" not in left, "%s\nthe local cloud's log:\n%s\nskyhost's output:\n%s" % (left, cloud.log(), text))
    check.finish()


if __name__ == "__main__":
    main()
