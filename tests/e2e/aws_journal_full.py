"""The journal's disk full, on the AWS local cloud (run by test_aws_faults.py, in its cloud): the
journal's directory is a small tmpfs this module mounts and fills (needs root).

- full before the pool starts: skyhost refuses to create anything billable (JournalFailed, naming
  the journal and how to fix it); not one create call reaches the API;
- full once the intents are recorded (filled while RunInstances is held by the fault proxy): the
  pool runs and is torn down as usual, every instance is terminated, and skyhost says what the
  journal could not record; once there is room again `skyhost down --orphans` settles the pool
  the journal still lists. Both end with 0 instances, groups and key pairs in the API, 0 pools
  in the journal."""
import errno
import json
import os
import subprocess
import tempfile
import time

from awslib import KEY_ID, ROOT, SECRET, run_pool, start_pool

CREATES = {"RunInstances", "CreateSecurityGroup", "ImportKeyPair", "CreateKeyPair"}


def fill(directory):
    """Writes a file in `directory` until its file system is full; returns its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return path


def live_instances(cloud):
    return [i["InstanceId"] for r in cloud.ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]


def run_cases(skyhost, cloud, proxy, check):
    state = tempfile.mkdtemp(prefix="skyhost-journal-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", state], check=True)
    try:
        _cases(skyhost, cloud, proxy, check, state)
    finally:
        subprocess.run(["umount", state], check=False)
        os.rmdir(state)


def _sky(skyhost, cloud, state, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SKYHOST_STATE_DIR=state, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_REGION=cloud.info["region"], AWS_ENDPOINT_URL_EC2=cloud.info["endpoint"],
               AWS_EC2_METADATA_DISABLED="true")
    return subprocess.run([skyhost, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _pools(skyhost, cloud, state):
    r = _sky(skyhost, cloud, state, "ls", "--json")
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def _cases(skyhost, cloud, proxy, check, state):
    journal = os.path.join(state, "state.db")
    # 1. full from the start: nothing is created
    filler = fill(state)
    proxy.set_rules([])
    rc, out, _, text = run_pool(skyhost, cloud, proxy.endpoint, nodes=1, env_extra={"SKYHOST_STATE_DIR": state})
    made = [e["action"] for e in proxy.log() if e["action"] in CREATES]
    check("journal disk full: the script fails with JournalFailed, naming the journal and the fix",
          rc != 0 and "uid" not in out and journal in text and "SKYHOST_STATE_DIR" in text
          and "nothing was created on aws" in text, text)
    check("and no create call reached the API, nothing is live", not made and not live_instances(cloud),
          (made, live_instances(cloud)))

    # 2. full once the intents are recorded: the pool runs, is torn down, and says what was lost
    os.remove(filler)
    proxy.set_rules([{"action": "RunInstances", "delay": 2.0}])

    def intent():
        return any(i["state"] == "intent" for p in _pools(skyhost, cloud, state) for i in p["instances"])

    with tempfile.TemporaryDirectory() as home:
        p = start_pool(skyhost, cloud, home, proxy.endpoint, nodes=1, env_extra={"SKYHOST_STATE_DIR": state})
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and not intent():
            time.sleep(0.05)
        recorded = intent()
        filler = fill(state)  # RunInstances is held 2 s after its intent: its answer cannot be recorded
        text = p.communicate(timeout=120)[0]
    uid = next((l.split("\t")[1] for l in text.splitlines() if l.startswith("uid\t")), "?")
    check("journal disk full after the intents: the pool ran and closed",
          recorded and p.returncode == 0 and "one\t42" in text and "closed" in text, text)
    check("and skyhost said what the journal could not record",
          "could not record the launch of i-" in text and "skyhost down --orphans" in text, text)
    check("every instance of it was terminated, no group or key pair left",
          cloud.instances(uid) and not cloud.leftovers(uid), cloud.leftovers(uid))
    os.remove(filler)
    listed = [p for p in _pools(skyhost, cloud, state) if p["id"] == uid]
    check("the journal still lists the pool whose end it could not record", len(listed) == 1, listed)
    r = _sky(skyhost, cloud, state, "down", "--orphans")
    check("once there is room, down --orphans confirms it through the API",
          r.returncode == 0 and not _pools(skyhost, cloud, state), (r.returncode, r.stdout, r.stderr))
    check("journal disk full: 0 instances, groups, key pairs left", not cloud.leftovers(uid) and not live_instances(cloud),
          cloud.leftovers(uid))
