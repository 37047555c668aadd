"""Helpers of the sky.aws end-to-end tests: the local cloud, a fault proxy in front of it, running
tests/e2e/aws_pool.lua, and reading what is left in the API."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KEY_ID, SECRET = "AKIDTEST", "test-secret"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok", name, flush=True)
        else:
            self.failed += 1
            print("FAIL", name, detail, flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)

class ScriptRun:
    """A skyhost script running, its output gathered by a thread: lines of tab-separated fields,
    found by their first field."""

    def __init__(self, skyhost, script, env):
        self.p = subprocess.Popen([skyhost, script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.lines = []
        threading.Thread(target=lambda: [self.lines.append(l) for l in self.p.stdout], daemon=True).start()

    def text(self):
        return "".join(self.lines)

    def all(self, key):
        return [f for f in (l.rstrip("\n").split("\t") for l in list(self.lines)) if f[0] == key]

    def line(self, key):
        found = self.all(key)
        return found[0] if found else None

    def index(self, key):
        return next((i for i, l in enumerate(list(self.lines)) if l.rstrip("\n").split("\t")[0] == key), None)

    def wait(self, cond, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline and self.p.poll() is None and not cond():
            time.sleep(0.05)
        return cond()

    def end(self, timeout=120):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        time.sleep(0.1)
        return self.p.returncode



class Cloud:
    """tests/support/local_cloud.py, stopped (hosts removed, moto ended) on exit."""

    def __enter__(self):
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/local_cloud.py"),
                                      "--lifetime", "280"], stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.line = self.proc.stdout.readline().strip()
        if not self.line:
            self.__exit__()
            sys.exit("the local cloud did not start:\n" + self.log())
        self.info = json.loads(self.line)
        self.ec2 = boto3.client("ec2", endpoint_url=self.info["endpoint"], region_name=self.info["region"],
                                aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        return self

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def instances(self, uid):
        tag = [{"Name": "tag:skyhost-pool", "Values": [uid]}]
        return [i for r in self.ec2.describe_instances(Filters=tag)["Reservations"] for i in r["Instances"]]

    def leftovers(self, uid):
        """What of pool `uid` is still there: live instances, security groups, key pairs."""
        live = [i["InstanceId"] for i in self.instances(uid) if i["State"]["Name"] != "terminated"]
        groups = [g["GroupName"] for g in self.ec2.describe_security_groups()["SecurityGroups"] if uid in g["GroupName"]]
        keys = [k["KeyName"] for k in self.ec2.describe_key_pairs()["KeyPairs"] if uid in k["KeyName"]]
        return live + groups + keys

    def hosts_settled(self, timeout=10):
        """Waits until every host the controller made is removed again; returns the log."""
        deadline = time.time() + timeout
        while True:
            log = self.log()
            if log.count(" down ") >= log.count(" up ") or time.time() > deadline:
                return log
            time.sleep(0.2)


class Proxy:
    """tests/support/fault_proxy.py in front of `target`, with rules set by set_rules()."""

    def __init__(self, target):
        self.dir = tempfile.TemporaryDirectory()
        self.rules = os.path.join(self.dir.name, "rules.json")
        self.logfile = os.path.join(self.dir.name, "log.jsonl")
        self.set_rules([])
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/fault_proxy.py"), "--target",
                                      target, "--rules", self.rules, "--log", self.logfile],
                                     stdout=subprocess.PIPE, text=True)
        port = self.proc.stdout.readline().split()[0]
        self.endpoint = "http://127.0.0.1:%s/" % port

    def set_rules(self, rules):
        with open(self.rules + ".new", "w") as f:
            json.dump(rules, f)
        os.replace(self.rules + ".new", self.rules)
        open(self.logfile, "w").close()

    def log(self):
        with open(self.logfile) as f:
            return [json.loads(l) for l in f if l.strip()]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def start_pool(skyhost, cloud, home, endpoint=None, nodes=2, env_extra=None):
    """tests/e2e/aws_pool.lua in the background (stdout and stderr piped); HOME is `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=home, CLOUD=cloud.line, AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=KEY_ID,
               AWS_SECRET_ACCESS_KEY=SECRET, NODES=str(nodes))
    if endpoint:
        env["ENDPOINT"] = endpoint
    env.update(env_extra or {})
    return subprocess.Popen([skyhost, "tests/e2e/aws_pool.lua"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_pool(skyhost, cloud, endpoint=None, nodes=2, allocation=None, env_extra=None, timeout=240):
    """Runs tests/e2e/aws_pool.lua; returns (rc, {key: [fields]}, failed attempts, stdout+stderr)."""
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(HOME=home, CLOUD=cloud.line, AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=KEY_ID,
                   AWS_SECRET_ACCESS_KEY=SECRET,
                   NODES=str(nodes))
        if endpoint:
            env["ENDPOINT"] = endpoint
        if allocation:
            env["ALLOCATION"] = allocation
        env.update(env_extra or {})
        r = subprocess.run([skyhost, "tests/e2e/aws_pool.lua"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
    out, failed = {}, []
    for line in r.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "failed":
            failed.append(fields[1:])
        else:
            out[fields[0]] = fields[1:]
    return r.returncode, out, failed, r.stdout + r.stderr
