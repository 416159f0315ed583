"""The baseline: a bare pylibmc loop, a client per thread, timed with perf_counter_ns. Prints one JSON line.

Same key space, values and op schedule as `mcpool bench` (built by mcpool's pure workload module), so the
only difference left is mcpool's machinery: worker process, strategy layer, checks and streaming.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import pylibmc

from mcpool_cli.engine.plan import Workload
from mcpool_cli.engine.workload import GET, SCHEDULE_LENGTH, build_key_space, build_schedule


def percentile(sorted_values: list[int], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()

    workload = Workload(keys=args.keys, key_prefix="bare:")
    space = build_key_space(workload)
    master = pylibmc.Client([args.server])
    for start in range(0, args.keys, 500):
        master.set_multi(dict(zip(space.keys[start:start + 500], space.values[start:start + 500])))
    begin = time.perf_counter_ns() + int(args.warmup * 1e9)
    end = begin + int(args.duration * 1e9)
    latencies: list[list[int]] = [[] for _ in range(args.threads)]

    def body(index: int) -> None:
        client, schedule, out = master.clone(), build_schedule(workload, index), latencies[index]
        keys, values, n = space.keys, space.values, 0
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= end:
                return
            op, key = schedule[n & (SCHEDULE_LENGTH - 1)]
            n += 1
            if op == GET:
                client.get(keys[key])
            else:
                client.set(keys[key], values[key])
            if t0 >= begin:
                out.append(time.perf_counter_ns() - t0)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = sorted(v for per_thread in latencies for v in per_thread)
    print(json.dumps({"ops": len(merged), "ops_per_s": len(merged) / args.duration,
                      "p50_us": percentile(merged, 0.50) / 1000, "p99_us": percentile(merged, 0.99) / 1000}))


if __name__ == "__main__":
    main()
