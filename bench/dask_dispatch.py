#!/usr/bin/python3
"""The peer for bench/dispatch.lua: the same work on Dask distributed (Debian's
python3-distributed), LocalCluster with the same number of worker processes.
usage: dask_dispatch.py ROUND_TRIPS MAP_TASKS NODES RUNS"""
import statistics
import sys
import time

from distributed import Client, LocalCluster


def inc(x):
    return x + 1


def main():
    round_trips, map_tasks, nodes, runs = (int(a) for a in sys.argv[1:5])
    with LocalCluster(n_workers=nodes, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as c:
        for i in range(50):
            c.submit(inc, i, pure=False).result()
        lat = []
        for i in range(round_trips):
            t0 = time.perf_counter()
            assert c.submit(inc, i, pure=False).result() == i + 1
            lat.append(time.perf_counter() - t0)
        lat.sort()
        print("round_trip_p50 %.1f us" % (lat[len(lat) // 2] * 1e6))
        print("round_trip_p99 %.1f us" % (lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6))
        rates = []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = c.gather(c.map(inc, range(map_tasks), pure=False))
            rates.append(map_tasks / (time.perf_counter() - t0))
            assert out[-1] == map_tasks
        print("map_throughput %.0f tasks/s" % statistics.median(rates))
        print("map_tasks %d" % map_tasks)


if __name__ == "__main__":
    main()
