#!/usr/bin/python3
"""The Slurm provider end to end on a real Slurm cluster (tests/support/slurm-cluster.sh: slurmctld,
one slurmd per network-namespace node, munge): pools of 2 and 4 nodes, tasks and broadcast, a bad
partition, a job pending past provision_timeout, an admin's scancel of one worker and of the whole
job, a node drained mid-task, kill -9 of skyhost. After every case no job of ours is left in the
queue. Needs root; brings the cluster up and takes it down itself."""
import os
import signal
import subprocess
import sys
import time

SKYHOST = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLUSTER = os.path.join(ROOT, "tests", "support", "slurm-cluster.sh")
SCRIPT = os.path.join(HERE, "slurm_pool.lua")
ENV = dict(os.environ, SKYS_STATE="/run/skyhost-slurm")
ENV["SLURM_CONF"] = ENV["SKYS_STATE"] + "/slurm.conf"
N = 4
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from checks import case, finish  # noqa: E402


def sh(*argv, check=True):
    r = subprocess.run(list(argv), env=ENV, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        sys.exit("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def jobs(name=None):
    """Jobs still in the queue (any state but finished), as 'id state': those of the pool
    `name`, or all but the time-limit case's, which runs beside the others."""
    out = sh("squeue", "-h", "-o", "%i %T %j").stdout.split("\n")
    if name:
        return [j.rsplit(" ", 1)[0] for j in out if j.endswith(" skyhost-" + name)]
    return [j.rsplit(" ", 1)[0] for j in out if j.strip() and not j.endswith(" skyhost-timelimit")]


def no_jobs_left(within=15.0):
    deadline = time.time() + within
    while time.time() < deadline:
        if not jobs():
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs still queued {within} s later: {jobs()}")


def run(mode, timeout=90, **env):
    e = dict(ENV, **{k: str(v) for k, v in env.items()})
    # from the repository root: the torchrun case names scripts/ and tests/support/ relatively
    return subprocess.run([SKYHOST, SCRIPT, mode], env=e, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def start(mode, **env):
    e = dict(ENV, **{k: str(v) for k, v in env.items()})
    return subprocess.Popen([SKYHOST, SCRIPT, mode], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_ready(p, within=30.0):
    line = p.stdout.readline()
    assert line.strip() == "ready", f"expected 'ready', got {line!r}; stderr: {p.stderr.read()[-2000:]}"


def running_job():
    running = [j.split()[0] for j in jobs() if j.endswith("RUNNING")]
    assert len(running) == 1, jobs()
    return running[0]


up = sh(CLUSTER, "up", str(N), check=False)
if up.returncode != 0:
    sh(CLUSTER, "down", check=False)  # a half-made cluster is removed too
    sys.exit("slurm-cluster.sh up %d exited %d:\n%s%s" % (N, up.returncode, up.stdout[-3000:], up.stderr[-3000:]))
# The time-limit case takes a minute of Slurm's time: it runs beside the others, on one node.
timelimit = start("timelimit")
try:
    @case("2 nodes: broadcast on each node, map, one task, head address")
    def _():
        r = run("tasks", NODES=2)
        assert r.returncode == 0, r.stderr
        assert "srun" not in r.stderr, r.stderr  # a clean close: no step reported killed
        lines = r.stdout.splitlines()
        assert lines[0] == "n1 n2", lines
        assert lines[1] == "1 4 9 16 25 36 49 64 81", lines
        assert lines[2] == "49", lines
        assert lines[3] == "10.207.0.11\t2", lines  # head_addr is n1's NodeAddr; total_nodes
        no_jobs_left()

    @case("4 nodes, provider = \"slurm\" by name: one worker per node, as job steps")
    def _():
        r = run("tasks", NODES=4, BYNAME=1)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "n1 n2 n3 n4", r.stdout
        no_jobs_left()

    @case("accelerator = A100: only the nodes whose GRES has it (n1, n2 of 4)")
    def _():
        r = run("tasks", NODES=2, ACCEL="A100")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "n1 n2", r.stdout
        no_jobs_left()

    @case("more A100 nodes than the cluster has: a clear error, nothing queued")
    def _():
        r = run("bad", NODES=3, ACCEL="A100")
        assert r.returncode == 0, r.stderr
        assert "has 2 nodes with gpu:a100:1, the pool asks for 3" in r.stdout, r.stdout
        assert not jobs(), jobs()

    @case("pool:torchrun on 2 Slurm nodes: all-reduce and a DDP step (python3-torch, gloo)")
    def _():
        r = run("torch", timeout=240)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "0\tallreduce rank 0 node 0: 3 (expected 3)" in lines, r.stdout
        assert "1\tallreduce rank 1 node 1: 3 (expected 3)" in lines, r.stdout
        assert "rank result\t0\t0" in lines and "rank result\t1\t0" in lines, r.stdout
        no_jobs_left()

    @case("bad partition: a clear error, nothing queued")
    def _():
        r = run("bad", PARTITION="nosuch")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("false\tNoOffers"), r.stdout
        assert "partition 'nosuch' does not exist" in r.stdout, r.stdout
        assert "debug" in r.stdout and "gpu" in r.stdout, r.stdout  # names the real ones
        assert not jobs(), jobs()

    @case("a constraint no node has: sbatch refuses, nothing queued")
    def _():
        r = run("bad", CONSTRAINT="nosuchfeature")
        assert r.returncode == 0, r.stderr
        assert "sbatch refused the allocation (nothing was queued)" in r.stdout, r.stdout
        assert not jobs(), jobs()

    @case("pending past provision_timeout: reason reported, job cancelled")
    def _():
        t0 = time.time()
        r = run("pending", PARTITION="closed", NODES=2, PT=3)
        assert r.returncode == 0, r.stderr
        assert "pending PartitionDown" in r.stdout, r.stdout
        assert "false\tProvisionFailed" in r.stdout, r.stdout
        assert time.time() - t0 < 30, time.time() - t0
        no_jobs_left()

    @case("admin scancel of one worker step mid-task: node lost, its task retried elsewhere")
    def _():
        p = start("hold", NODES=2, SLOW=4, RETRIES=1)
        try:
            wait_ready(p)
            job = running_job()
            time.sleep(1)
            steps = [s for s in sh("squeue", "-h", "-s", "-j", job, "-o", "%i").stdout.split()
                     if not s.endswith((".batch", ".extern"))]
            assert len(steps) == 2, steps
            sh("scancel", sorted(steps)[0])
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "result\ttrue" in out, out + err
            assert "lost node" in err, err
        finally:
            if p.poll() is None:
                p.kill()
        no_jobs_left()

    @case("admin scancel of the whole job mid-task: the tasks fail, the script goes on")
    def _():
        p = start("hold", NODES=2, SLOW=6, RETRIES=1)
        try:
            wait_ready(p)
            job = running_job()
            time.sleep(1)
            sh("scancel", job)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "result\tfalse" in out, out + err
        finally:
            if p.poll() is None:
                p.kill()
        no_jobs_left()

    @case("a node drained mid-task: running work finishes (Slurm drains, it does not kill)")
    def _():
        p = start("hold", NODES=2, SLOW=3)
        try:
            wait_ready(p)
            sh("scontrol", "update", "nodename=n1", "state=drain", "reason=skyhost-test")
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert "result\ttrue" in out, out + err
        finally:
            sh("scontrol", "update", "nodename=n1", "state=resume", check=False)
            if p.poll() is None:
                p.kill()
        no_jobs_left()

    @case("Ctrl-C mid-task: the script is interrupted, the job cancelled")
    def _():
        p = start("hold", NODES=2, SLOW=60)
        try:
            wait_ready(p)
            assert len(jobs()) == 1, jobs()
            time.sleep(1)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 130, (p.returncode, err)
            assert "Killed" not in err, err
        finally:
            if p.poll() is None:
                p.kill()
        no_jobs_left(within=5)

    @case("kill -9 of skyhost: no job left after ttl")
    def _():
        ttl = 6
        p = start("hold", NODES=2, SLOW=120, TTL=ttl)
        try:
            wait_ready(p)
            assert len(jobs()) == 1, jobs()
            t0 = time.time()
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
            no_jobs_left(within=ttl + 15)
            print(f"kill -9: job gone {time.time() - t0:.1f} s after (ttl {ttl} s)")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    @case("the job's time limit (time = 1 minute): the node is lost, the task fails, nothing left")
    def _():
        out, err = timelimit.communicate(timeout=200)
        assert timelimit.returncode == 0, err
        fields = out.split()
        assert fields[:2] == ["result", "false"], out + err
        assert 55 <= int(fields[-1]) <= 150, out
        assert "lost node 0" in err, err
        deadline = time.time() + 15
        while jobs("timelimit") and time.time() < deadline:
            time.sleep(0.2)
        assert not jobs("timelimit"), jobs("timelimit")
finally:
    if timelimit.poll() is None:
        timelimit.kill()
        timelimit.wait()
    for j in jobs() + jobs("timelimit"):
        sh("scancel", j.split()[0], check=False)
    sh(CLUSTER, "down", check=False)
finish()
