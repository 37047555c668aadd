"""The fake clouds' state: instances and SSH keys per cloud, and the controller that makes each
instance a real machine: an OpenSSH host in a network namespace (tests/support/netns-hosts.sh)
of the `skyc` test bed, 10.211.0.0/16, state in /run/skyhost-clouds, with the instance's public
key authorized. A created instance is `booting` until its host is up, then `running`; a deleted
one is `deleting` until its host is removed, then gone from the API."""
import itertools
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS = os.path.join(HERE, "..", "netns-hosts.sh")
STATE = "/run/skyhost-clouds"
ENV = {"SKYT_PREFIX": "skyc", "SKYT_NET4": "10.211", "SKYT_NET6": "fd5c:211:", "SKYT_STATE": STATE,
       "SKYT_HOST_BASE": "10"}
MAX_HOSTS = 40


def log(msg):
    print("cloud_fake: " + msg, file=sys.stderr, flush=True)


def netns(*args):
    return subprocess.run([NETNS, *args], env=dict(os.environ, **ENV), capture_output=True, text=True, timeout=60)


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.instances = {}  # (cloud, id) -> instance
        self.keys = {}  # (cloud, id) -> key
        self.capacity = {"runpod": True, "lambda": True, "digitalocean": True, "vast": True}
        self.faults = {}  # cloud -> statuses the next requests get
        self.ids = itertools.count(1001)
        self.made = set()  # host indices `add` ran for: close() removes them all
        self.requests = []  # (cloud, method, path) of every API request

    def _new_id(self, cloud, numeric):
        n = next(self.ids)
        return str(n) if numeric else "%s%05dfake" % (cloud[:2], n)

    def _free_index(self):
        used = {i["index"] for i in self.instances.values()}
        for idx in range(1, MAX_HOSTS + 1):
            if idx not in used:
                return idx
        raise RuntimeError("the fake clouds hold %d machines already" % MAX_HOSTS)

    def create(self, cloud, name, key, extra, numeric=False):
        with self.lock:
            idx = self._free_index()
            inst = {"cloud": cloud, "id": self._new_id(cloud, numeric), "name": name, "key": key, "extra": extra,
                    "index": idx, "ip": "10.211.0.%d" % (10 + idx), "state": "booting", "created": time.time()}
            self.instances[(cloud, inst["id"])] = inst
            log("create %s %s %s h%d" % (cloud, inst["id"], name, idx))
            return inst

    def get(self, cloud, iid):
        with self.lock:
            return self.instances.get((cloud, iid))

    def list(self, cloud):
        with self.lock:
            return [i for (c, _), i in sorted(self.instances.items()) if c == cloud]

    def delete(self, cloud, iid):
        with self.lock:
            inst = self.instances.get((cloud, iid))
            if inst and inst["state"] != "deleting":
                inst["state"] = "deleting"
                log("delete %s %s" % (cloud, iid))
            return inst is not None

    def add_key(self, cloud, name, public_key, numeric=False):
        with self.lock:
            k = {"id": self._new_id(cloud, numeric), "name": name, "public_key": public_key}
            self.keys[(cloud, k["id"])] = k
            return k

    def get_key(self, cloud, kid):
        with self.lock:
            return self.keys.get((cloud, kid))

    def key_by_name(self, cloud, name):
        with self.lock:
            return next((k for (c, _), k in self.keys.items() if c == cloud and k["name"] == name), None)

    def list_keys(self, cloud):
        with self.lock:
            return [k for (c, _), k in sorted(self.keys.items()) if c == cloud]

    def delete_key(self, cloud, kid):
        with self.lock:
            return self.keys.pop((cloud, kid), None) is not None

    def snapshot(self):
        with self.lock:
            return {"instances": [{k: v for k, v in i.items() if k != "extra"} for i in self.instances.values()],
                    "keys": [dict(k, cloud=c) for (c, _), k in self.keys.items()], "capacity": self.capacity,
                    "faults": self.faults,
                    "requests": list(self.requests)}

    # --- the controller ---

    def _authorize(self, key):
        os.makedirs(STATE, exist_ok=True)
        path = os.path.join(STATE, "authorized_keys")
        have = open(path).read() if os.path.exists(path) else ""
        if key.split()[1] not in have:
            with open(path, "a") as f:
                f.write(key.strip() + "\n")

    def step(self):
        with self.lock:
            todo = [i for i in self.instances.values() if i["state"] in ("booting", "deleting")]
        for inst in todo:
            if inst["state"] == "booting":
                self._authorize(inst["key"])
                self.made.add(inst["index"])
                r = netns("add", str(inst["index"]))
                if r.returncode != 0:
                    log("cannot make host %d for %s: %s" % (inst["index"], inst["id"], r.stderr.strip()))
                    netns("remove", str(inst["index"]))
                    continue
                with self.lock:
                    if inst["state"] == "booting":
                        inst["state"] = "running"
                log("up %s %s %s h%d" % (inst["cloud"], inst["id"], inst["ip"], inst["index"]))
            else:
                netns("remove", str(inst["index"]))
                with self.lock:
                    self.instances.pop((inst["cloud"], inst["id"]), None)
                log("down %s %s h%d" % (inst["cloud"], inst["id"], inst["index"]))

    def close(self):
        for idx in self.made:
            netns("remove", str(idx))
        netns("down")
