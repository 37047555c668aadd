#!/usr/bin/env python3
"""What a skyhost leaves in AWS, found and ended (docs/journal.md), on the local cloud:

- a pool made behind skyhost's back (boto3: an instance tagged skyhost-pool, a security group and a
  key pair named skyhost-<pool>), as a skyhost that died between its create call and the answer
  leaves it, and the pool of a skyhost killed with -9 (an orphan in the journal): `skyhost down
  --sweep aws --dry-run` lists both and ends nothing; `--sweep aws` ends both (and the orphan
  leaves the journal) while a live pool is not touched; a second sweep finds nothing;
- an orphan ended by `skyhost down --orphans` (the provider's end_orphans);
- kill -9 of skyhost during a task, and skyhost frozen (SIGSTOP): the nodes power themselves off
  (on_expiry), at once on the ended stream, after `ttl` on the lease, and the cloud terminates them;
and in the end nothing is left in the API. Needs what test_aws.py needs.
Usage: test_aws_orphans.py SKYHOST
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from awslib import KEY_ID, ROOT, SECRET, Checks, Cloud

SKYHOST = sys.argv[1]
HOME = tempfile.mkdtemp(prefix="skyhost-aws-orphans-")


def env(cloud, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(HOME=HOME, SKYHOST_STATE_DIR=os.path.join(HOME, "state"), CLOUD=cloud.line, AWS_ACCESS_KEY_ID=KEY_ID,
             AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=cloud.info["region"],
             AWS_ENDPOINT_URL_EC2=cloud.info["endpoint"])
    e.update(extra)
    return e


def start(cloud, **extra):
    """tests/e2e/aws_hold.lua in the background; returns (process, uid) once its pool is ready."""
    p = subprocess.Popen([SKYHOST, "tests/e2e/aws_hold.lua"], cwd=ROOT, env=env(cloud, **extra),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    uid = None
    for line in p.stdout:
        if line.startswith("uid\t"):
            uid = line.split("\t")[1].strip()
        if line.startswith("READY"):
            return p, uid
    p.wait()
    sys.exit("the pool did not come up: " + line)


def sky(cloud, *args):
    return subprocess.run([SKYHOST, *args], cwd=ROOT, env=env(cloud), capture_output=True, text=True, timeout=200)


def journal_ids(cloud):
    r = sky(cloud, "ls", "--json")
    return [json.loads(l)["id"] for l in r.stdout.splitlines()]


def ghost(cloud, uid):
    """A pool's resources made with boto3 as the provider names and tags them."""
    ec2 = cloud.ec2
    key = os.path.join(HOME, "ghost_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    ec2.import_key_pair(KeyName="skyhost-" + uid, PublicKeyMaterial=open(key + ".pub", "rb").read())
    tag = [{"Key": "skyhost-pool", "Value": uid}]
    gid = ec2.create_security_group(GroupName="skyhost-" + uid, Description="skyhost pool %s: SSH in" % uid,
                                    VpcId=cloud.info["vpc"],
                                    TagSpecifications=[{"ResourceType": "security-group", "Tags": tag}])["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    r = ec2.run_instances(ImageId=image, InstanceType="g4dn.xlarge", MinCount=1, MaxCount=1,
                          KeyName="skyhost-" + uid, SubnetId=cloud.info["subnet"], SecurityGroupIds=[gid],
                          TagSpecifications=[{"ResourceType": "instance", "Tags": tag}])
    return r["Instances"][0]["InstanceId"]


def main():
    check = Checks()
    with Cloud() as cloud:
        live_p, live = start(cloud, HOLD="150")
        dead_p, dead = start(cloud, HOLD="150", ON_EXPIRY="true")  # its nodes stay up after it dies
        dead_p.kill()
        dead_p.wait()
        ghost_id = ghost(cloud, "ghost-0123")
        check("setup: a live pool, an orphan and a pool unknown to the journal, each with an instance",
              all(cloud.leftovers(u) for u in (live, dead, "ghost-0123")) and dead in journal_ids(cloud),
              (live, dead, journal_ids(cloud)))

        r = sky(cloud, "down", "--sweep", "aws", "--dry-run")
        check("--dry-run: names the orphan and the unknown pool as to be ended, the live one as left alone",
              r.returncode == 0 and "pool ghost-0123 (us-east-1): would end 1 instance (%s), 1 security group, 1 key pair"
              % ghost_id in r.stdout and ("pool %s (us-east-1): would end 1 instance" % dead) in r.stdout
              and ("pool %s (us-east-1): live in the journal, left alone" % live) in r.stdout, r.stdout + r.stderr)
        check("--dry-run ends nothing", all(len(cloud.leftovers(u)) == 3 for u in (live, dead, "ghost-0123")),
              [cloud.leftovers(u) for u in (live, dead, "ghost-0123")])

        t0 = time.time()
        r = sky(cloud, "down", "--sweep", "aws")
        check("--sweep aws: ends the unknown pool and the orphan (%.1f s)" % (time.time() - t0),
              r.returncode == 0 and not cloud.leftovers("ghost-0123") and not cloud.leftovers(dead),
              (r.stdout + r.stderr, cloud.leftovers("ghost-0123"), cloud.leftovers(dead)))
        check("the swept orphan left the journal, the live pool is still in it",
              dead not in journal_ids(cloud) and live in journal_ids(cloud) and ("pool %s (" % dead) in r.stdout,
              (journal_ids(cloud), r.stdout))
        check("the live pool was not touched", len(cloud.leftovers(live)) == 3 and live_p.poll() is None,
              cloud.leftovers(live))
        r = sky(cloud, "down", "--sweep", "aws")
        check("a second sweep finds nothing to end", r.returncode == 0 and "would end" not in r.stdout
              and "ended" not in r.stdout.replace("left alone", ""), r.stdout + r.stderr)

        orphan_p, orphan = start(cloud, HOLD="150", ON_EXPIRY="true")
        orphan_p.kill()
        orphan_p.wait()
        r = sky(cloud, "down", "--orphans")
        check("down --orphans ends an AWS orphan through the provider and confirms it",
              r.returncode == 0 and ("pool %s (" % orphan) in r.stdout and "ended" in r.stdout
              and not cloud.leftovers(orphan) and orphan not in journal_ids(cloud),
              (r.stdout + r.stderr, cloud.leftovers(orphan)))

        r = sky(cloud, "down", "--sweep", "slurm")
        check("a provider that cannot be swept is refused with a reason",
              r.returncode == 1 and "cannot be swept" in r.stderr, r.stdout + r.stderr)
        r = sky(cloud, "down", "--sweep")
        check("--sweep without a provider is a usage error", r.returncode == 2 and "needs a value" in r.stderr, r.stderr)

        # kill -9 of skyhost during a task: the stream ends, each node powers itself off
        # (on_expiry), the cloud terminates it; SIGSTOP: the lease (ttl) expires, the same follows
        for how, sig, ttl in (("kill -9", signal.SIGKILL, 30), ("a frozen skyhost (SIGSTOP)", signal.SIGSTOP, 4)):
            p, uid = start(cloud, NODES="2", TTL=str(ttl), HOLD="150")
            time.sleep(1)  # the task runs on both nodes
            t0 = time.time()
            p.send_signal(sig)
            ids = [i["InstanceId"] for i in cloud.instances(uid)]
            deadline = t0 + ttl + 20
            while time.time() < deadline and any(i["State"]["Name"] != "terminated" for i in cloud.instances(uid)):
                time.sleep(0.2)
            took = time.time() - t0
            states = [i["State"]["Name"] for i in cloud.instances(uid)]
            check("%s during a task (ttl %d s): both nodes powered off and were terminated, in %.1f s"
                  % (how, ttl, took), len(ids) == 2 and states == ["terminated"] * 2 and took < ttl + 10, states)
            p.kill()
            p.wait()
            r = sky(cloud, "down", "--orphans")
            check("%s: down --orphans confirms it and removes the pool's group and key pair" % how,
                  r.returncode == 0 and not cloud.leftovers(uid) and uid not in journal_ids(cloud),
                  (r.stdout + r.stderr, cloud.leftovers(uid)))

        live_p.send_signal(signal.SIGINT)
        out = live_p.communicate(timeout=120)[0]
        check("the live pool ends by Ctrl-C, with nothing left", live_p.returncode == 130 and not cloud.leftovers(live),
              (live_p.returncode, cloud.leftovers(live), out))
        left = [i["InstanceId"] for res in cloud.ec2.describe_instances()["Reservations"] for i in res["Instances"]
                if i["State"]["Name"] != "terminated"]
        groups = [g["GroupName"] for g in cloud.ec2.describe_security_groups()["SecurityGroups"]
                  if g["GroupName"].startswith("skyhost-")]
        keys = [k["KeyName"] for k in cloud.ec2.describe_key_pairs()["KeyPairs"]]
        check("in the end: no live instance, skyhost group or key pair in the API, nothing in the journal",
              not (left or groups or keys) and not journal_ids(cloud), (left, groups, keys, journal_ids(cloud)))
        log = cloud.hosts_settled()
        check("and every host made was removed", log.count(" down ") == log.count(" up "), log)
    check.finish()


if __name__ == "__main__":
    main()
