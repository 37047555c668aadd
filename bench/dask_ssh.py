#!/usr/bin/python3
"""The peer for bench/ssh_tasks.lua's round trip: Dask distributed's SSHCluster on the same test
hosts (Debian's python3-distributed and python3-asyncssh; run with /usr/bin/python3).
usage: dask_ssh.py STATE_DIR N ROUND_TRIPS
The scheduler runs on h1 and one single-threaded worker process on each of h1..hN, so the
workers sit on the same N hosts as skyhost's N nodes. Prints "name value unit" lines."""
import sys
import time


def inc(x):
    return x + 1


def main():
    state, n, round_trips = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    import dask
    from distributed import Client, SSHCluster

    dask.config.set({"distributed.worker.daemon": False,
                     "distributed.comm.timeouts.connect": "30s"})
    names = [f"h{i}" for i in range(1, n + 1)]
    connect = {"config": [f"{state}/ssh_config"], "username": "root",
               "client_keys": [f"{state}/id_ed25519"], "known_hosts": f"{state}/known_hosts"}
    t0 = time.perf_counter()
    # interface="eth0": the hosts have no default route, so Dask's own address guess (a UDP
    # route lookup towards a public address) fails there.
    with SSHCluster([names[0]] + names, connect_options=connect,
                    worker_options={"nthreads": 1, "n_workers": 1, "interface": "eth0"},
                    scheduler_options={"port": 0, "dashboard": False, "interface": "eth0"},
                    remote_python="/usr/bin/python3") as cluster, Client(cluster) as c:
        c.wait_for_workers(n, timeout=300)
        print("startup_s %.3f s" % (time.perf_counter() - t0))
        for i in range(200):
            assert c.submit(inc, i, pure=False).result() == i + 1
        lat = []
        for i in range(round_trips):
            t = time.perf_counter()
            assert c.submit(inc, i, pure=False).result() == i + 1
            lat.append(time.perf_counter() - t)
        lat.sort()
        print("round_trip_p50 %.1f us" % (lat[max(0, -(-len(lat) // 2) - 1)] * 1e6))
        print("round_trip_p99 %.1f us" % (lat[max(0, -(-len(lat) * 99 // 100) - 1)] * 1e6))
        print("round_trips %d" % round_trips)


if __name__ == "__main__":
    main()
