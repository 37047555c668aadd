#!/usr/bin/env python3
"""sky.runpod, sky.lambda, sky.digitalocean and sky.vast end to end on their fakes
(tests/support/cloud_fake/: stateful APIs whose instances are netns OpenSSH hosts of the skyc
bed, each behind `prism proxy --errors` with the cloud's official OpenAPI spec), with sky.gcp's
fake beside them (tests/e2e/gcp_bed.py: bed skyg, behind Prism with the Compute spec).

Per cloud, a pool of 2 H100 nodes runs a task and a broadcast on two real hosts (DigitalOcean's
first requests answered 429 with Retry-After, then 500, both retried); afterwards the
fake holds no instance or SSH key, every request carried the pool's name, and Prism saw no request
or answer its spec rejects. `skyhost offers --accelerator H100` shows Lambda's, DigitalOcean's,
Vast's and RunPod's (API v2) live prices from their fakes. Then one `provider = {runpod, lambda, digitalocean}` list
with no capacity at Lambda and RunPod: the pool falls back to DigitalOcean, the failed attempts
named; then all five clouds in one list, out of capacity one after another, once ending on
DigitalOcean and once on GCP. Last, `skyhost down --sweep` of each cloud (clouds_sweep.py).
Needs root; run it under `flock /tmp/skyhost-netns.lock` like the other netns tests.
Usage: test_clouds.py SKYHOST
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import clouds_sweep
from gcp_bed import GcpBed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SKYHOST = sys.argv[1]
TOKEN = "fake-token-e2e"


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, name, cond, detail=""):
        self.passed += bool(cond)
        self.failed += not cond
        print("ok" if cond else "FAIL", name, "" if cond else detail, flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


class Fake:
    def __enter__(self):
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/support/cloud_fake/cloud_fake.py"),
                                      "--lifetime", "400", "--token", TOKEN], stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        self.line = self.proc.stdout.readline().strip()
        if not self.line:
            self.__exit__()
            sys.exit("the fake clouds did not start:\n" + self.log())
        self.info = json.loads(self.line)
        return self

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def prism_errors(self):
        """Each line of Prism's log that reports a violation, with the two lines before it (the request)."""
        with open(self.info["prism_log"]) as f:
            lines = f.readlines()
        return ["".join(lines[max(0, i - 2):i + 1]) for i, l in enumerate(lines)
                if ("✖" in l or "iolation" in l) and "_prism_ready" not in l]

    def control(self, cloud, path, body=None):
        req = urllib.request.Request(self.info["control"][cloud] + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self):
        return self.control("runpod", "/_fake/state")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "info", None):
            os.unlink(self.info["prism_log"])


def run_pool(fake, clouds, nodes=2, timeout=240, extra=None):
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
        env.update(HOME=home, FAKE=fake.line, CLOUDS=clouds, NODES=str(nodes), RUNPOD_API_KEY=TOKEN,
                   LAMBDA_API_KEY=TOKEN, DIGITALOCEAN_ACCESS_TOKEN=TOKEN, VAST_API_KEY=TOKEN, **(extra or {}))
        r = subprocess.run([SKYHOST, "tests/e2e/clouds_pool.lua"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
    out, failed = {}, []
    for line in r.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "failed":
            failed.append(fields[1:])
        else:
            out[fields[0]] = fields[1:]
    return r.returncode, out, failed, r.stdout + r.stderr


def offers(fake, *args):
    """`skyhost offers ARGS` with Lambda's, DigitalOcean's, Vast's and RunPod's credentials, pointed at their fakes
    (RunPod's price list is its API v2, a fake of its own behind Prism with the v2 spec)."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, LAMBDA_API_KEY=TOKEN, DIGITALOCEAN_ACCESS_TOKEN=TOKEN, VAST_API_KEY=TOKEN,
                   RUNPOD_API_KEY=TOKEN, SKYHOST_RUNPOD_CATALOG_API=fake.info["runpod_v2"],
                   SKYHOST_LAMBDA_API=fake.info["lambda"], SKYHOST_DIGITALOCEAN_API=fake.info["digitalocean"],
                   SKYHOST_VAST_API=fake.info["vast"])
        t0 = time.time()
        r = subprocess.run([SKYHOST, "offers"] + list(args), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
    return r.returncode, r.stdout + r.stderr, time.time() - t0


def check_offers(check, fake):
    before = len(fake.state()["requests"])
    rc, text, took = offers(fake, "--accelerator", "H100")
    asked = {r[0] for r in fake.state()["requests"][before:]}
    rows = [l.split() for l in text.splitlines()]
    lam = [r for r in rows if r[:2] == ["lambda", "gpu_1x_h100_pcie"]]
    do = [r for r in rows if r[:2] == ["digitalocean", "gpu-h100x1-80gb"]]
    check("offers: Lambda's live price (the fake's 249 cents) and only the region with capacity (%.2f s)" % took,
          rc == 0 and [(r[7], r[9]) for r in lam] == [("us-east-1", "2.4900")], text)
    check("offers: DigitalOcean's live price_hourly (the fake's 5.99, the catalog's 6.74)",
          [r[-2] for r in do] == ["5.9900"], text)
    vast = sorted((r[1], r[-2]) for r in rows if r[:1] == ["vast"])
    check("offers: Vast's cheapest rentable ask per kind in its country (the fake's 0.50 per GPU in the US; the"
          " catalog's 1.87), kinds with no ask left out", vast == [("1x-H100_SXM-32-65536", "0.5000"),
                                                               ("2x-H100_SXM-32-65536", "1.0000")], text)
    runpod = sorted((r[1], r[-2]) for r in rows if r[:1] == ["runpod"])
    check("offers: RunPod's API v2 price per GPU times the count (the fake's 2.79 for H100 PCIe, the catalog's"
          " 4.49), kinds past the API's maxCount left out",
          sorted(set(runpod)) == [("1x_H100-SXM_SECURE", "2.9900"), ("1x_H100_SECURE", "2.7900"),
                                  ("2x_H100-SXM_SECURE", "5.9800"), ("2x_H100_SECURE", "5.5800"),
                                  ("4x_H100_SECURE", "11.1600"), ("8x_H100_SECURE", "22.3200")], text)
    check("offers: the footer names the live providers",
          "live prices from lambda, digitalocean, vast, runpod (their APIs, just now)" in text, text)
    check("offers: all four were asked through Prism", asked == {"lambda", "digitalocean", "vast", "runpod_v2"}, asked)
    rc, text, _ = offers(fake, "--accelerator", "H100", "--count", "1", "--provider", "lambda", "--json")
    docs = [json.loads(l) for l in text.splitlines()]
    check("offers --json: the types the API lists carry source \"live\" and its prices",
          rc == 0 and [(d["instance_type"], d["region"], d["price"], d["source"]) for d in docs]
          == [("gpu_1x_h100_pcie", "us-east-1", 2.49, "live"), ("gpu_1x_h100_sxm5", "us-east-1", 3.29, "live")],
          (rc, text))
    rc, text, _ = offers(fake, "--accelerator", "H100", "--provider", "lambda", "--region", "us-east-1", "--offline")
    check("offers --offline: the catalog's price, no live footer",
          rc == 0 and "3.2900" in text and "live prices" not in text, text)


def settled(fake, timeout=15):
    """The fake's state once no instance is left (or after `timeout`)."""
    deadline = time.time() + timeout
    while True:
        st = fake.state()
        if not st["instances"] or time.time() > deadline:
            return st
        time.sleep(0.2)


def check_pool(check, fake, cloud, rc, out, text):
    check("%s: the script ran to its end" % cloud, rc == 0 and "closed" in out, text)
    check("%s: a task ran on a node" % cloud, out.get("one") == ["42"], text)
    b = out.get("broadcast", [])
    check("%s: broadcast reached both nodes, each a host of its own" % cloud,
          len(b) == 3 and b[0] == "2" and b[1] != b[2] and all(h.startswith("h") for h in b[1:]), text)
    st = settled(fake)
    check("%s: nothing of the pool is left in the fake (instances, SSH keys)" % cloud,
          not st["instances"] and not st["keys"], st)


def five_clouds(check, fake, gcp):
    """All five clouds in one provider list, on-demand (so the order is the offers' prices: Vast's live
    0.50, Lambda's 2.49, RunPod's live 2.79, GCP's us-west4-a 5.53, DigitalOcean's live 5.99, GCP's us-east4-a
    10.98), every request through Prism. us-west4-a is out of resources in GCP's fake throughout."""
    gcp.ready()
    for cloud in ("lambda", "runpod", "vast"):
        fake.control(cloud, "/_fake/capacity", {"available": False})
    runs = (("DigitalOcean", ["us-west4-a"], {"vast", "lambda", "runpod", "gcp"}, ("digitalocean", "tor1")),
            ("GCP", ["us-west4-a", "us-east4-a"], {"vast", "lambda", "runpod", "gcp", "digitalocean"},
             ("gcp", "us-east4-a")))
    for winner, zones, tried, placed in runs:
        if winner == "GCP":
            fake.control("digitalocean", "/_fake/capacity", {"available": False})
        before = set(gcp.instances())
        t0 = time.time()
        rc, out, failed, text = run_pool(fake, "gcp,runpod,lambda,digitalocean,vast",
                                         extra=dict(gcp.env(zones), ALLOCATION="on-demand"))
        took = time.time() - t0
        text += "\nGCP's fake:\n" + gcp.log()[-3000:]
        check_pool(check, fake, "five clouds → %s" % winner, rc, out, text)
        reasons = {f[0]: f[-1] for f in failed}
        capacity = ("ZONE_RESOURCE_POOL_EXHAUSTED", "insufficient-capacity", "no longer any instances",
                    "no_such_ask", "rentable asks", "not available in this region")
        where = out.get("placed", [])
        check("five clouds → %s: %s each failed for capacity first, then %s (%.1f s)"
              % (winner, ", ".join(sorted(tried)), " ".join(placed), took),
              set(reasons) == tried and all(any(c in r for c in capacity) for r in reasons.values())
              and (where[:1] + [x for x in where[1:] if x][-1:]) == list(placed), (failed, where, text))
        made = {n: i for n, i in gcp.instances().items() if n not in before}
        check("five clouds → %s: GCP's instances (%d) all deleted" % (winner, len(made)),
              all(i["deleted"] for i in made.values()) and (winner != "GCP" or len(made) >= 2), made)
    for cloud in ("lambda", "runpod", "vast", "digitalocean"):
        fake.control(cloud, "/_fake/capacity", {"available": True})
    bad, forwarded = gcp.violations()
    check("GCP's Prism forwarded the inserts and found nothing its spec rejects", forwarded and not bad,
          "\n".join(bad[:20]))


def main():
    check = Checks()
    with Fake() as fake, GcpBed(exhausted=["us-west4-a"]) as gcp:
        for cloud in ("runpod", "lambda", "digitalocean", "vast"):
            t0 = time.time()
            before = len(fake.state()["requests"])
            if cloud == "digitalocean":
                fake.control(cloud, "/_fake/faults", {"statuses": [429, 500]})
            rc, out, _, text = run_pool(fake, cloud)
            check_pool(check, fake, cloud, rc, out, text + "\nthe fake's log:\n" + fake.log()[-3000:])
            made = [r for r in fake.state()["requests"][before:] if r[0] == cloud and r[1] in ("POST", "PUT")]
            check("%s: it launched through its own API (%d POSTs, %.1f s)" % (cloud, len(made), time.time() - t0),
                  len(made) >= 1, made)
        check_offers(check, fake)
        faulted = [r for r in fake.state()["requests"] if len(r) == 4]
        check("digitalocean: its first requests got a 429 (Retry-After) and a 500 (the pool's checks above say it ran)",
              [r[3] for r in faulted] == [429, 500] and not fake.state()["faults"]["digitalocean"], faulted)
        for cloud, path in (("lambda", "/instance-types"), ("digitalocean", "/v2/sizes")):
            asked = [r for r in fake.state()["requests"] if r[0] == cloud and r[2] == path]
            check("%s: offers were refreshed from the live API (%s)" % (cloud, path), len(asked) >= 1,
                  fake.state()["requests"])
        log = fake.log()
        check("every instance became a host and every host was removed",
              log.count(" up ") >= 8 and log.count(" down ") == log.count(" up "), log)
        for cloud in ("lambda", "runpod"):
            fake.control(cloud, "/_fake/capacity", {"available": False})
        rc, out, failed, text = run_pool(fake, "runpod,lambda,digitalocean")
        check_pool(check, fake, "fallback", rc, out, text)
        tried = sorted({f[0] for f in failed})
        reasons = {f[0]: f[-1] for f in failed}
        check("no capacity at Lambda and RunPod: one attempt each (the region blocked), then DigitalOcean",
              tried == ["lambda", "runpod"] and len(failed) == 2
              and "insufficient-capacity" in reasons["lambda"] and "no longer any instances" in reasons["runpod"],
              failed)
        five_clouds(check, fake, gcp)
        clouds_sweep.run(check, fake, gcp, SKYHOST, TOKEN)
        errs = fake.prism_errors()
        check("Prism found no request or answer its specs reject", not errs, "".join(errs[:20]))
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    check("no skyc or skyg host left behind", "skyc-" not in left and "skyg-" not in left, left)
    check("every host GCP's fake made was removed",
          gcp.final_log.count(" up ") >= 2 and gcp.final_log.count(" down ") == gcp.final_log.count(" up "),
          gcp.final_log)
    check.finish()


if __name__ == "__main__":
    main()
