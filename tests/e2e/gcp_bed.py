"""GCP's fake (tests/support/gcp_fake.py: a Compute API and token endpoint whose instances are netns
OpenSSH hosts of bed `skyg`, 10.209.0.0/16) behind `prism proxy --errors` with the Compute spec,
for a test that needs GCP beside other clouds (tests/e2e/test_clouds.py puts it in one provider
list with the REST clouds' fakes, bed `skyc`: the two beds' ranges differ, so both live at once).

    with GcpBed(exhausted=["us-west4-a"]) as gcp:   # starts both; .ready() waits for Prism
        env.update(gcp.env(["us-west4-a", "us-east4-a"]))  # what clouds_pool.lua's sky.gcp reads
        gcp.instances()                                    # every instance ever made
        gcp.violations()                                   # Prism's findings

Needs root, /usr/bin/python3 (python3-jwt), openssl and Prism. Everything started is stopped on
the way out (the fake removes its hosts).
"""
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRISM = os.path.join(os.environ.get("SKYHOST_PRISM_DIR", "/opt/skyhost-prism"), "node_modules/.bin/prism")
SPEC = os.path.join(ROOT, "tests/data/gcp/compute-v1.swagger.json")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcpBed:
    def __init__(self, exhausted=()):
        self.exhausted = list(exhausted)
        self.fake = self.prism = None

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        key = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                             capture_output=True, text=True, check=True).stdout
        pub = subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True, text=True,
                             check=True).stdout
        with open(os.path.join(d, "sa.pub"), "w") as f:
            f.write(pub)
        self.fake_err = open(os.path.join(d, "fake.log"), "w+")
        args = ["/usr/bin/python3", os.path.join(ROOT, "tests/support/gcp_fake.py"), "--public-key",
                os.path.join(d, "sa.pub"), "--lifetime", "500"]
        if self.exhausted:
            args += ["--exhausted", ",".join(self.exhausted)]
        self.fake = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.fake_err, text=True)
        line = self.fake.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the GCP fake did not start:\n" + self.log())
        self.info = json.loads(line)
        self.control = "http://127.0.0.1:%d" % self.info["port"]
        port = _free_port()
        self.prism_log = open(os.path.join(d, "prism.log"), "w+")
        self.prism = subprocess.Popen([PRISM, "proxy", "-h", "127.0.0.1", "-p", str(port), "--errors", SPEC,
                                       self.control], stdout=self.prism_log, stderr=subprocess.STDOUT)
        self.endpoint = "http://127.0.0.1:%d" % port
        self.creds = os.path.join(d, "sa.json")
        with open(self.creds, "w") as f:
            json.dump({"type": "service_account", "project_id": "skyhost-test", "private_key_id": "k1",
                       "private_key": key, "client_email": "skyhost@skyhost-test.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": self.info["token_uri"]}, f)
        return self

    def ready(self, timeout=60):
        """Waits until Prism listens (it starts while the other fakes do)."""
        deadline = time.time() + timeout
        while "listening" not in open(self.prism_log.name).read():
            if time.time() > deadline or self.prism.poll() is not None:
                raise RuntimeError("GCP's Prism did not start:\n" + open(self.prism_log.name).read()[-2000:])
            time.sleep(0.1)

    def env(self, zones):
        """What skyhost needs to reach the fake: the key file, and GCP for clouds_pool.lua."""
        return {"GOOGLE_APPLICATION_CREDENTIALS": self.creds,
                "GCP": json.dumps({"endpoint": self.endpoint, "zones": list(zones)})}

    def instances(self):
        with urllib.request.urlopen(self.control + "/_fake/instances", timeout=10) as r:
            return json.loads(r.read())

    def log(self):
        self.fake_err.seek(0)
        return self.fake_err.read()

    def violations(self):
        """Prism's findings other than 'status code not in the spec' (the discovery document declares
        only 200, so every Google error answer is one), and whether it forwarded any insert."""
        self.prism_log.seek(0)
        text = self.prism_log.read()
        bad = [line for line in text.splitlines() if "Violation" in line and "returned status code" not in line
               or "UNPROCESSABLE_ENTITY" in line or "Invalid request" in line]
        return bad, "Forwarding \"post\"" in text

    def __exit__(self, *exc):
        if self.prism:
            self.prism.terminate()
            self.prism.wait(10)
        if self.fake:
            self.fake.terminate()
            try:
                self.fake.wait(60)
            except subprocess.TimeoutExpired:
                self.fake.kill()
                self.fake.wait()
            self.final_log = self.log()
        self.dir.cleanup()
