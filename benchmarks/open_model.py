"""How faithfully the open model keeps its schedule: achieved rate against the target, and start lateness.

For each thread count, a closed-loop run measures what per-thread can do (its ops/s); then open-model runs at
that throughput divided by 1.5 and by 3 check that the achieved rate is within 2% of the target (goal: whenever
the closed loop does at least 1.5x the target). A last run at 1,000 ops/s per thread on an unloaded server
measures how late ops start (goal: p99 of lateness under 100 µs). Everything runs against one embedded
memcached; numbers are medians of --rounds runs (the machine is noisy).

    python benchmarks/open_model.py [--threads 4,12] [--rounds 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from mcpool_cli.engine.server import EmbeddedServer


def bench(server: str, threads: int, duration: float, rate: float | None = None) -> dict:
    args = [sys.executable, "-m", "mcpool_cli", "bench", "-s", server, "--strategy", "per-thread", "--threads",
            str(threads), "--duration", f"{duration}s", "--quiet", "--json", "-"]
    if rate:
        args += ["--rate", f"{rate:.0f}"]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mcpool exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)["runs"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="4,12")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    met = True
    with EmbeddedServer() as server:
        spec = server.address.spec
        print(f"memcached at {spec}; per-thread; medians of {args.rounds} rounds of {args.duration:g} s")
        print(f"{'threads':>7} {'closed ops/s':>12} {'target':>8} {'achieved':>9} {'ratio':>6} "
              f"{'late p99':>9} {'p99':>9} {'p99 uncorr.':>11}")
        for threads in (int(t) for t in args.threads.split(",")):
            closed = statistics.median(bench(spec, threads, args.duration)["ops_per_s"] for _ in range(args.rounds))
            for divisor in (3.0, 1.5):
                target = closed / divisor
                runs = [bench(spec, threads, args.duration, target) for _ in range(args.rounds)]
                ratio = statistics.median(r["rate"]["achieved_ratio"] for r in runs)
                late = statistics.median(r["rate"]["lateness_us"]["p99"] for r in runs)
                p99 = statistics.median(r["latency_us"]["p99"] for r in runs)
                p99_u = statistics.median(r["uncorrected_latency_us"]["p99"] for r in runs)
                met &= ratio >= 0.98
                print(f"{threads:>7} {closed:>12,.0f} {target:>8,.0f} {ratio * target:>9,.0f} {ratio:>6.3f} "
                      f"{late:>7.0f}µs {p99:>7.0f}µs {p99_u:>9.0f}µs")
        runs = [bench(spec, 4, args.duration, 4_000) for _ in range(args.rounds)]
        late = statistics.median(r["rate"]["lateness_us"]["p99"] for r in runs)
        met_late = late < 100
        print(f"lateness at 1,000 ops/s per thread (4 threads, 4,000 ops/s): p99 {late:.0f} µs (goal < 100 µs): "
              f"{'met' if met_late else 'missed'}")
        print(f"achieved within 2% of the target at 1/3 and 2/3 of the closed loop's throughput: "
              f"{'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
