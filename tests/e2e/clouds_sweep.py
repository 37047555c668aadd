"""`skyhost down --sweep CLOUD` for GCP and the REST clouds, on the fakes test_clouds.py started.

A pool on Lambda is held live (its skyhost runs, so the journal says it is alive); then every
cloud gets an instance made by its provider's own calls for a pool the journal never heard of, as
a skyhost killed between a create call and its answer leaves it (clouds_plant.lua). `--dry-run`
lists each such pool and ends nothing; the sweep deletes it (and its SSH key, where the cloud
has one) and waits until the API lists none; the live pool's instance and key are left alone and
said so; a second sweep finds nothing more.
"""
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLOUDS = ("runpod", "lambda", "digitalocean", "vast", "gcp")


def _env(fake, gcp, home, token):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(gcp.env(["us-east4-a"]), HOME=home, FAKE=fake.line, RUNPOD_API_KEY=token, LAMBDA_API_KEY=token,
               DIGITALOCEAN_ACCESS_TOKEN=token, VAST_API_KEY=token, SKYHOST_GCP_API=gcp.endpoint,
               **{"SKYHOST_%s_API" % c.upper(): fake.info[c] for c in CLOUDS if c != "gcp"})
    return env


def _ours(fake, gcp, uid):
    """What of pool `uid` the fakes still hold: REST instances and keys by name, GCP's by label."""
    st = fake.state()
    left = [i["name"] for i in st["instances"] if i["name"].startswith("skyhost-%s-" % uid) and i["state"] != "deleting"]
    left += [k["name"] for k in st["keys"] if k["name"] == "skyhost-" + uid]
    left += [n for n, i in gcp.instances().items() if not i["deleted"] and (i.get("labels") or {}).get(
        "skyhost-pool") == uid]
    return left


def run(check, fake, gcp, skyhost, token):
    with tempfile.TemporaryDirectory() as home:
        env = _env(fake, gcp, home, token)
        hold = os.path.join(home, "release")
        live = subprocess.Popen([skyhost, "tests/e2e/clouds_pool.lua"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                env=dict(env, CLOUDS="lambda", NODES="1", HOLD_FILE=hold))
        try:
            uid, lines = None, []
            for line in live.stdout:
                lines.append(line)
                if line.startswith("uid\t"):
                    uid = line.split("\t")[1].strip()
                if line.startswith("READY"):
                    break
            check("sweep: a live Lambda pool is up (%s)" % uid, uid is not None, "".join(lines))
            t0 = time.time()
            r = subprocess.run([skyhost, "tests/e2e/clouds_plant.lua"], cwd=ROOT, env=dict(env, CLOUDS=",".join(CLOUDS)),
                               capture_output=True, text=True, timeout=120)
            planted = sorted({line.split("\t")[1] for line in r.stdout.splitlines() if line.startswith("planted\t")})
            check("sweep: one instance planted per cloud as a crash leaves it (%.1f s)" % (time.time() - t0),
                  r.returncode == 0 and planted == sorted(CLOUDS), r.stdout + r.stderr)
            for cloud in CLOUDS:
                crashed = "crashed-" + cloud
                region = ["--region", "us-east4-a"] if cloud == "gcp" else []
                before = _ours(fake, gcp, crashed)
                dry = subprocess.run([skyhost, "down", "--sweep", cloud, "--dry-run"] + region, cwd=ROOT, env=env,
                                     capture_output=True, text=True, timeout=120)
                check("sweep %s --dry-run: names pool %s, ends nothing" % (cloud, crashed),
                      dry.returncode == 0 and ("pool %s (" % crashed) in dry.stdout and "would end" in dry.stdout
                      and before and _ours(fake, gcp, crashed) == before, (dry.stdout + dry.stderr, before))
                t0 = time.time()
                sw = subprocess.run([skyhost, "down", "--sweep", cloud] + region, cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=120)
                check("sweep %s: pool %s ended, nothing of it left (%.1f s)" % (cloud, crashed, time.time() - t0),
                      sw.returncode == 0 and ("pool %s (" % crashed) in sw.stdout and ": ended" in sw.stdout
                      and not _ours(fake, gcp, crashed), (sw.stdout + sw.stderr, _ours(fake, gcp, crashed)))
                if cloud == "lambda":
                    check("sweep lambda: the live pool is left alone, and said so",
                          ("pool %s (lambda): live in the journal, left alone: 1 instance" % uid) in sw.stdout
                          and len(_ours(fake, gcp, uid)) == 2, (sw.stdout, _ours(fake, gcp, uid)))
            again = subprocess.run([skyhost, "down", "--sweep", "vast"], cwd=ROOT, env=env, capture_output=True,
                                   text=True, timeout=60)
            check("sweep vast again: nothing to sweep",
                  again.returncode == 0 and "nothing of skyhost's to sweep in vast" in again.stdout, again.stdout)
            bad = subprocess.run([skyhost, "down", "--sweep", "gcp", "--region", "mars-north1"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=60)
            check("sweep gcp --region of no zone or region: an error naming it",
                  bad.returncode != 0 and "mars-north1" in bad.stderr, bad.stdout + bad.stderr)
        finally:
            open(hold, "w").close()
            try:
                out, _ = live.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                live.kill()
                out, _ = live.communicate()
        check("sweep: the live pool ran on and ended normally afterwards", live.returncode == 0 and "closed" in out,
              out)
        check("sweep: nothing of the live pool is left", uid and not _ours(fake, gcp, uid), _ours(fake, gcp, uid or "?"))
