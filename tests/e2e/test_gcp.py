#!/usr/bin/python3
"""sky.gcp end to end: tests/support/gcp_fake.py (a stateful Compute API and token endpoint whose
instances are netns OpenSSH hosts of bed `skyg`) behind `prism proxy --errors` with the Compute
spec converted from Google's discovery document (tests/data/gcp/compute-v1.swagger.json), so a
request or a response that the spec rejects fails the test.

- A pool of 2 H100 nodes in zones [us-west4-a, us-east4-a], the cheaper us-west4-a out of
  resources: the attempt there fails with ZONE_RESOURCE_POOL_EXHAUSTED and the pool comes up in
  us-east4-a; a task and a broadcast run on two real hosts; afterwards every instance of the pool
  (label skyhost-pool=<uid>) is deleted and no host is left.
- The first two Compute calls are answered 429 (with Retry-After) and 503: both are retried.
- A revoked token (401) is replaced once; a 403 is AuthFailed for the provider, with the fix.
- A region out of quota: its other zone is skipped, the pool comes up in the next region (this
  one with public_ip: reached on its access config's natIP).
- Ctrl-C while 2 instances are booting: exit status 130 and both deleted.
- A key the token endpoint refuses: the script fails with what was refused and how to fix it, and
  no instance is made.
Needs root, /usr/bin/python3 (python3-jwt), openssl and Prism (.ci/install-prism); run it under
`flock /tmp/skyhost-netns.lock` like the other netns tests.
Usage: test_gcp.py SKYHOST
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKYHOST = sys.argv[1]
PRISM = os.path.join(os.environ.get("SKYHOST_PRISM_DIR", "/opt/skyhost-prism"), "node_modules/.bin/prism")
SPEC = os.path.join(ROOT, "tests/data/gcp/compute-v1.swagger.json")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name, flush=True)
    else:
        failed += 1
        print("FAIL", name, detail, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keypair(d, name):
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                         capture_output=True, text=True, check=True).stdout
    pub = subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(d, name + ".pub"), "w") as f:
        f.write(pub)
    return key


def key_file(d, name, private_key, token_uri):
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump({"type": "service_account", "project_id": "skyhost-test", "private_key_id": "k1",
                   "private_key": private_key, "client_email": "skyhost@skyhost-test.iam.gserviceaccount.com",
                   "client_id": "1", "token_uri": token_uri}, f)
    return path


def run_pool(home, creds, endpoint, zones, nodes=2, timeout=240, public_ip=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=home, GOOGLE_APPLICATION_CREDENTIALS=creds, ENDPOINT=endpoint, ZONES=",".join(zones),
               NODES=str(nodes), PUBLIC_IP="1" if public_ip else "0")
    r = subprocess.run([SKYHOST, "tests/e2e/gcp_pool.lua"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    out, fails = {}, []
    for line in r.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "failed":
            fails.append(fields[1:])
        else:
            out[fields[0]] = fields[1:]
    return r.returncode, out, fails, r.stdout + r.stderr


def violations(log):
    """Prism's findings other than 'status code not in the spec' (the discovery document declares
    only 200, so every Google error answer is one)."""
    return [line for line in log.splitlines() if "Violation" in line and "returned status code" not in line
            or "UNPROCESSABLE_ENTITY" in line or "Invalid request" in line]


def main():
    if os.geteuid() != 0:
        sys.exit("test_gcp.py: must run as root (network namespaces)")
    if not os.access(PRISM, os.X_OK):
        sys.exit("test_gcp.py: Prism is not installed at %s: run .ci/install-prism" % PRISM)
    with tempfile.TemporaryDirectory() as d:
        key = keypair(d, "sa")
        fake_err = open(os.path.join(d, "fake.log"), "w+")
        fake = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/gcp_fake.py"), "--public-key",
                                 os.path.join(d, "sa.pub"), "--exhausted", "us-west4-a", "--flaky", "2", "--lifetime", "280"],
                                stdout=subprocess.PIPE, stderr=fake_err, text=True)
        prism = None
        try:
            info = json.loads(fake.stdout.readline())
            port = free_port()
            prism_log = open(os.path.join(d, "prism.log"), "w+")
            prism = subprocess.Popen([PRISM, "proxy", "-h", "127.0.0.1", "-p", str(port), "--errors", SPEC,
                                      "http://127.0.0.1:%d" % info["port"]], stdout=prism_log,
                                     stderr=subprocess.STDOUT)
            endpoint = "http://127.0.0.1:%d" % port
            deadline = time.time() + 60
            while "listening" not in open(prism_log.name).read():
                if time.time() > deadline or prism.poll() is not None:
                    sys.exit("Prism did not start:\n" + open(prism_log.name).read())
                time.sleep(0.2)
            creds = key_file(d, "sa", key, info["token_uri"])

            t0 = time.time()
            rc, out, fails, text = run_pool(d, creds, endpoint, ["us-west4-a", "us-east4-a"])
            check("the script ran to its end (%.1f s)" % (time.time() - t0), rc == 0 and "closed" in out, text)
            check("us-west4-a out of resources: failed there with the zone's reason, then the next zone",
                  any(f[0] == "us-west4-a" and "ZONE_RESOURCE_POOL_EXHAUSTED" in f[1] for f in fails), fails)
            check("a task ran on a node", out.get("one") == ["42"], text)
            b = out.get("broadcast", [])
            check("broadcast reached both nodes, each a host of its own",
                  len(b) == 3 and b[0] == "2" and b[1] != b[2] and all(h.startswith("h") for h in b[1:]), text)
            uid = out.get("uid", ["?"])[0].lower()
            made = json.load(urllib.request.urlopen("http://127.0.0.1:%d/_fake/instances" % info["port"]))
            pool = {n: i for n, i in made.items() if (i.get("labels") or {}).get("skyhost-pool") == uid.replace(".", "-")
                    .replace("_", "-")}
            check("2 instances labelled skyhost-pool=%s, in us-east4-a" % uid,
                  len(pool) == 2 and all(i["zone"].endswith("/us-east4-a") for i in pool.values()), made)
            check("every instance of the pool was deleted", pool and all(i["deleted"] for i in pool.values()), pool)

            other = keypair(d, "other")
            rc, out, fails, text = run_pool(d, key_file(d, "other", other, info["token_uri"]), endpoint,
                                            ["us-east4-a"], nodes=1, timeout=120)
            check("refused credentials: the script fails and says why and how to fix it",
                  rc != 0 and "refused the credentials" in text and "invalid_grant" in text
                  and "GOOGLE_APPLICATION_CREDENTIALS" in text, text)
            after = json.load(urllib.request.urlopen("http://127.0.0.1:%d/_fake/instances" % info["port"]))
            check("refused credentials: no instance made", len(after) == len(made), after)

            env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
            env.update(HOME=d, GOOGLE_APPLICATION_CREDENTIALS=creds, ENDPOINT=endpoint,
                       FAKE="http://127.0.0.1:%d" % info["port"])
            r = subprocess.run([SKYHOST, "tests/e2e/gcp_calls.lua"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60)
            calls = {line.split("\t")[0]: line.split("\t")[1:] for line in r.stdout.splitlines()}
            listed, relisted = calls.get("listed", ["?", "0"]), calls.get("relisted", ["?", "0"])
            check("a revoked token (401): a fresh one is fetched (past a 503 of the token endpoint), the call goes through",
                  r.returncode == 0 and relisted[0] == "0" and int(relisted[1]) == int(listed[1]) + 1,
                  r.stdout + r.stderr)
            f = calls.get("forbidden", [])
            check("403: AuthFailed blocking the provider, saying which role and API",
                  f[:3] == ["false", "AuthFailed", "provider"] and "roles/compute.instanceAdmin.v1" in f[3]
                  and "compute.googleapis.com" in f[3], r.stdout + r.stderr)

            # A region out of quota: its other zone is not tried, the next region is.
            fake_url = "http://127.0.0.1:%d" % info["port"]
            urllib.request.urlopen(fake_url + "/_fake/config", json.dumps({"quota_regions": ["us-west1"]}).encode())
            rc, out, fails, text = run_pool(d, creds, endpoint, ["us-west1-a", "us-west1-b", "us-east4-a"], nodes=1,
                                            public_ip=True)
            urllib.request.urlopen(fake_url + "/_fake/config", json.dumps({"quota_regions": []}).encode())
            check("quota: QUOTA_EXCEEDED in us-west1 blocks the region (us-west1-b not tried), us-east4-a used",
                  rc == 0 and [f[0] for f in fails] == ["us-west1-a"] and "QUOTA_EXCEEDED" in fails[0][1]
                  and out.get("one") == ["42"], text)
            made = json.load(urllib.request.urlopen(fake_url + "/_fake/instances"))
            check("public_ip: the instance asked for an external address (ONE_TO_ONE_NAT) and was reached on it",
                  any(i.get("external") for i in made.values()), made)

            # Ctrl-C while the instances are still booting: exit 130, and they are deleted.
            fake_url = "http://127.0.0.1:%d" % info["port"]
            urllib.request.urlopen(fake_url + "/_fake/config", json.dumps({"boot_delay": 5}).encode()).read()
            before = set(json.load(urllib.request.urlopen(fake_url + "/_fake/instances")))
            env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
            env.update(HOME=d, GOOGLE_APPLICATION_CREDENTIALS=creds, ENDPOINT=endpoint, ZONES="us-east4-a", NODES="2")
            proc = subprocess.Popen([SKYHOST, "tests/e2e/gcp_pool.lua"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                now = json.load(urllib.request.urlopen(fake_url + "/_fake/instances"))
                if len(set(now) - before) >= 2:
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            try:
                text, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                text, _ = proc.communicate()
            urllib.request.urlopen(fake_url + "/_fake/config", json.dumps({"boot_delay": 0}).encode()).read()
            now = json.load(urllib.request.urlopen(fake_url + "/_fake/instances"))
            new = {n: i for n, i in now.items() if n not in before}
            check("Ctrl-C while booting: exit status 130", proc.returncode == 130, "rc %s\n%s" % (proc.returncode, text))
            check("Ctrl-C while booting: both instances deleted",
                  len(new) == 2 and all(i["deleted"] for i in new.values()), new)

            prism_log.seek(0)
            plog = prism_log.read()
            check("Prism checked the requests (instances.insert went through it)",
                  "/instances" in plog and "Forwarding \"post\"" in plog, plog[-2000:])
            check("Prism found no request or response that the spec rejects", not violations(plog),
                  "\n".join(violations(plog)[:20]))
        finally:
            if prism:
                prism.terminate()
                prism.wait(10)
            fake.terminate()
            try:
                fake.wait(60)
            except subprocess.TimeoutExpired:
                fake.kill()
                fake.wait()
            fake_err.seek(0)
            fake_log = fake_err.read()
    print(fake_log)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    check("no test host left behind", "skyg-" not in left, left)
    check("the first Compute calls, answered 429 (Retry-After) and 503, were retried",
          fake_log.count("flaky: 429") == 1 and fake_log.count("flaky: 503") == 1
          and fake_log.count("flaky: token endpoint 503") == 1, fake_log)
    check("every host the fake made was removed", fake_log.count(" up ") >= 2
          and fake_log.count(" down ") == fake_log.count(" up "), fake_log)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
