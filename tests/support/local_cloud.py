#!/usr/bin/env python3
"""The local cloud: moto's EC2 server on 127.0.0.1 whose instances are real machines.

moto keeps the EC2 state (instances, key pairs, security groups, tags); a controller watches it and
turns every instance that reaches `running` into an OpenSSH host in a network namespace
(tests/support/netns-hosts.sh) at the private address moto gave it, with the public key of the
instance's key pair installed as cloud-init would (root's authorized keys of the test bed), and
its console output (GetConsoleOutput, through tests/support/moto_console.py) holding the host's
real public keys between cloud-init's SSH HOST KEY KEYS lines, and its instance metadata (IMDSv2:
tests/support/imds.py on 169.254.169.254:80 inside the host's namespace, started and stopped with
the host) serving a spot interruption notice once a test writes one to the "imds" directory. An
instance terminated through the API loses its host; a host that goes away by itself (the node
powered itself off: the dead-man lease) is terminated in the API.

The bed is its own (docs/testing.md): namespaces skya-I, bridge skya-br0 on 10.213.0.0/16
(fd5c:213::/64), state in /run/skyhost-aws (SKYA_STATE), all removed when the cloud stops. The
instances live in two VPC subnets, one per zone, halves of 10.213.0.0/24 (zone a: .0/25, zone b:
.128/25), and the provider is told not to ask for public addresses, so nothing but 127.0.0.1 and
these hosts is ever dialled. moto hands out addresses in order from the fourth of a subnet: host i
of the bed is 10.213.0.(3 + i) (SKYT_HOST_BASE=3).

Usage (root, the default python3 — the one with moto and boto3):
  local_cloud.py [--lifetime S] [--region R]
prints one JSON line, {"endpoint", "region", "vpc", "subnet" (zone a's), "subnets", "pid", "console" (its
directory: a file WRONG there makes new instances' consoles show a key no host has), "imds" (a file named
after an instance there is its spot/instance-action; <id>.log lists the requests its metadata
service answered)}, once the API answers and the
subnet exists; then runs until SIGTERM, its parent's death or the lifetime, and on the way out
removes every host it made and stops moto (by PID). Events go to stderr, one line each.
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS = os.path.join(HERE, "netns-hosts.sh")
PREFIX, NET4, NET6 = "skya", "10.213", "fd5c:213:"
VPC = NET4 + ".0.0/16"
SUBNET = ipaddress.ip_network(NET4 + ".0.0/24")
HOST_BASE = 3
STATE = os.environ.get("SKYA_STATE", "/run/skyhost-aws")
IMDS = os.path.join(STATE, "imds")  # spot notices for the instances' metadata services
METADATA_IP = "169.254.169.254"
# What the console shows instead of the host's key while a file WRONG is in the console
# directory (a test of host key pinning): a well-formed ed25519 key that no host has.
WRONG_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC not-this-host"


def log(msg):
    print("local_cloud: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def netns(*args):
    env = dict(os.environ, SKYT_HOST_BASE=str(HOST_BASE), SKYT_STATE=STATE, SKYT_PREFIX=PREFIX, SKYT_NET4=NET4,
               SKYT_NET6=NET6)
    return subprocess.run([NETNS, *args], env=env, capture_output=True, text=True, timeout=60)


class Controller:
    def __init__(self, ec2, console):
        self.ec2 = ec2
        self.console = console  # moto_console.py answers GetConsoleOutput with the files here
        self.hosts = {}  # instance id -> host index
        self.made = set()  # every index `add` was run for: close() removes them even if `add` failed
        self.imds = {}  # instance id -> its metadata service (a process in the host's namespace)

    def _authorize(self, key_name):
        pairs = self.ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
        key = pairs[0]["PublicKey"].strip()
        path = os.path.join(STATE, "authorized_keys")
        os.makedirs(STATE, exist_ok=True)
        have = open(path).read() if os.path.exists(path) else ""
        if key.split()[1] not in have:
            with open(path, "a") as f:
                f.write(key + "\n")

    def _add(self, inst):
        ip = ipaddress.ip_address(inst["PrivateIpAddress"])
        if ip not in SUBNET:
            log("%s at %s is outside %s: no host backs it" % (inst["InstanceId"], ip, SUBNET))
            return
        index = int(ip) - int(SUBNET.network_address) - HOST_BASE
        if inst.get("KeyName"):
            self._authorize(inst["KeyName"])
        self.made.add(index)
        r = netns("add", str(index))
        if r.returncode != 0:
            # a half-made host (namespace made, sshd not up) must not outlive the attempt: the next
            # step tries again from nothing, or the instance is gone and nothing is left
            log("cannot make host %d for %s: %s" % (index, inst["InstanceId"], r.stderr.strip()))
            netns("remove", str(index))
            return
        self.hosts[inst["InstanceId"]] = index
        # the console as cloud-init writes it: the host's real public keys, for GetConsoleOutput
        with open(os.path.join(STATE, "hosts", "h%d" % index, "ssh_host_ed25519_key.pub")) as f:
            key = f.read().strip()
        if os.path.exists(os.path.join(self.console, "WRONG")):
            key = WRONG_KEY
        with open(os.path.join(self.console, inst["InstanceId"]), "w") as f:
            f.write("ci-info: no authorized SSH keys fingerprints found for user ubuntu.\n"
                    "-----BEGIN SSH HOST KEY KEYS-----\n%s\n-----END SSH HOST KEY KEYS-----\n" % key)
        self._start_imds(inst["InstanceId"], index)
        log("up %s %s h%d" % (inst["InstanceId"], ip, index))

    def _start_imds(self, iid, index):
        """The instance's metadata service at 169.254.169.254:80, inside its host's namespace only."""
        ns = "%s-%d" % (PREFIX, index)
        r = subprocess.run(["ip", "-n", ns, "addr", "replace", METADATA_IP + "/32", "dev", "lo"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode != 0:
            log("no metadata service for %s: %s" % (iid, r.stderr.strip()))
            return
        os.makedirs(IMDS, exist_ok=True)
        self.imds[iid] = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "imds.py"),
                                           iid, IMDS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _stop_imds(self, iid):
        p = self.imds.pop(iid, None)
        if p is None:
            return
        p.terminate()  # `ip netns exec` execs the server: this PID is the server's
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    @staticmethod
    def _alive(index):
        """Whether host `index`'s sshd (PID 1 of the host) still runs: `pid` only reads its file."""
        r = netns("pid", str(index))
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            return False
        try:
            with open("/proc/%s/stat" % r.stdout.strip()) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def _remove(self, iid, why):
        index = self.hosts.pop(iid)
        self._stop_imds(iid)
        netns("remove", str(index))
        log("down %s h%d (%s)" % (iid, index, why))

    def step(self):
        seen = {}
        for res in self.ec2.describe_instances()["Reservations"]:
            for inst in res["Instances"]:
                seen[inst["InstanceId"]] = inst
        for iid, inst in seen.items():
            state = inst["State"]["Name"]
            if state == "running" and iid not in self.hosts and inst.get("PrivateIpAddress"):
                self._add(inst)
            elif state != "running" and iid in self.hosts:
                self._remove(iid, state)
            elif iid in self.hosts and not self._alive(self.hosts[iid]):
                # the machine went away by itself: it powered off, and shutdown terminates it
                self._remove(iid, "powered off")
                self.ec2.terminate_instances(InstanceIds=[iid])
        for iid in [i for i in self.hosts if i not in seen]:
            self._remove(iid, "gone from the API")

    def close(self):
        for iid in list(self.hosts):
            self._remove(iid, "local cloud stopping")
        for iid in list(self.imds):
            self._stop_imds(iid)
        for index in self.made:
            netns("remove", str(index))  # idempotent: nothing to do for hosts removed above
        netns("down")  # the bed is this cloud's alone: its bridge and state directory go too


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=float, default=600)
    ap.add_argument("--region", default="us-east-1")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("local_cloud.py: must run as root (network namespaces)")
    netns("down")  # what a killed earlier run may have left of this bed
    port = free_port()
    console = tempfile.mkdtemp(prefix="skyhost-aws-console-")
    moto = subprocess.Popen([sys.executable, os.path.join(HERE, "moto_console.py"), console, "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d/" % port
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ctl = None
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "moto-api/", timeout=1).read()
                break
            except OSError:
                if moto.poll() is not None or time.time() > deadline:
                    sys.exit("local_cloud.py: moto did not start (is it installed for %s? pip install 'moto[server]')"
                             % sys.executable)
                time.sleep(0.1)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=args.region,
                           aws_access_key_id="AKIDLOCALCLOUD", aws_secret_access_key="local-cloud-secret")
        vpc = ec2.create_vpc(CidrBlock=VPC)["Vpc"]["VpcId"]
        # two zones, one subnet each, both halves of the bed's /24
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=str(half), AvailabilityZone=args.region + zone)
                   ["Subnet"]["SubnetId"] for half, zone in zip(SUBNET.subnets(1), "ab")]
        ctl = Controller(ec2, console)
        print(json.dumps({"endpoint": endpoint, "region": args.region, "vpc": vpc, "subnet": subnets[0],
                          "subnets": subnets, "pid": os.getpid(), "console": console, "imds": IMDS}), flush=True)
        parent = os.getppid()
        until = time.time() + args.lifetime
        while not stop and time.time() < until and os.getppid() == parent:
            ctl.step()
            time.sleep(0.2)
    finally:
        if ctl:
            ctl.close()
        moto.terminate()
        try:
            moto.wait(5)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()
        shutil.rmtree(console, ignore_errors=True)


if __name__ == "__main__":
    main()
