"""The baseline: a bare pylibmc loop, a client per thread, timed with perf_counter_ns. Prints one JSON line.

Same key space, values, TTL and op schedule as `mcpool bench` (built by mcpool's pure workload module), and the
same recording cost per op (two perf_counter_ns reads and a list append), written as lean as mcpool's own
loop (bound methods and locals, each step's key and value resolved once), so the only difference left is
mcpool's machinery: worker process, strategy layer, checks and streaming. Percentiles are read the way mcpool
reads its own: the raw timings folded into an HdrHistogram of the same precision, so the two p99s compare.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from array import array

import pylibmc

from mcpool_cli.engine.histograms import latency_summary_us, new_histogram, quantize_counts
from mcpool_cli.engine.plan import Workload
from mcpool_cli.engine.workload import GET, SCHEDULE_LENGTH, build_key_space, build_schedule


def summary_us(latencies_ns: list[list[int]]) -> dict[str, float | None]:
    """Percentiles in µs over every thread's timings, from an HdrHistogram as mcpool builds its own."""
    histogram = new_histogram()
    for per_thread in latencies_ns:
        for value, count in quantize_counts(array("q", per_thread)).items():
            histogram.record_value(value, count)
    return latency_summary_us(histogram)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()

    workload = Workload(keys=args.keys, key_prefix="bare:")
    space, ttl_s = build_key_space(workload), workload.ttl_s
    master = pylibmc.Client([args.server])
    for start in range(0, args.keys, 500):
        master.set_multi(dict(zip(space.keys[start:start + 500], space.values[start:start + 500])), time=ttl_s)
    begin = time.perf_counter_ns() + int(args.warmup * 1e9)
    end = begin + int(args.duration * 1e9)
    latencies: list[list[int]] = [[] for _ in range(args.threads)]

    def body(index: int) -> None:
        client, schedule = master.clone(), build_schedule(workload, index)
        get, set_, record, clock = client.get, client.set, latencies[index].append, time.perf_counter_ns
        steps = [(op, space.keys[key], space.values[key]) for op, key in schedule]  # resolved once, as mcpool does
        mask, n = SCHEDULE_LENGTH - 1, 0
        while True:
            t0 = clock()
            if t0 >= end:
                return
            op, key, value = steps[n & mask]
            n += 1
            if op == GET:
                get(key)
            else:
                set_(key, value, ttl_s)
            if t0 >= begin:
                record(clock() - t0)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ops = sum(len(per_thread) for per_thread in latencies)
    summary = summary_us(latencies)
    print(json.dumps({"ops": ops, "ops_per_s": ops / args.duration, "p50_us": summary["p50"],
                      "p99_us": summary["p99"]}))


if __name__ == "__main__":
    main()
