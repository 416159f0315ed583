"""Compare `mcpool bench --strategy per-thread --threads 4` with a bare pylibmc loop, in one run.

Both load the same embedded memcached, one after the other (alternating which goes first), for several rounds; prints each
round and the median ratios. Goal: mcpool >= 0.90x the loop's ops/s and its p50 within 10% of the loop's.

    python benchmarks/bench_vs_bare.py [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from mcpool_cli.engine.server import EmbeddedServer

HERE = Path(__file__).parent


def run_bare(server: str, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "bare_loop.py"), "--server", server, "--threads",
                          str(args.threads), "--duration", str(args.duration)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def run_mcpool(server: str, args: argparse.Namespace) -> dict:
    proc = subprocess.run([sys.executable, "-m", "mcpool_cli", "bench", "-s", server, "--strategy", "per-thread",
                           "--threads", str(args.threads), "--duration", f"{args.duration}s", "--quiet",
                           "--json", "-"], capture_output=True, text=True)
    run = json.loads(proc.stdout)["runs"][0]
    return {"ops": run["ops"], "ops_per_s": run["ops_per_s"], "p50_us": run["latency_us"]["p50"],
            "p99_us": run["latency_us"]["p99"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    ops_ratios, p50_ratios = [], []
    with EmbeddedServer() as server:
        spec = server.address.spec
        print(f"memcached at {spec}; {args.rounds} rounds of {args.duration:g} s, {args.threads} threads, per-thread")
        print(f"{'round':>5} {'bare ops/s':>11} {'mcpool ops/s':>13} {'ratio':>6} {'bare p50':>9} "
              f"{'mcpool p50':>11} {'p50 ratio':>9} {'bare p99':>9} {'mcpool p99':>11}")
        for index in range(1, args.rounds + 1):
            if index % 2:  # alternate which goes first, so neither always meets a warmer server
                bare, ours = run_bare(spec, args), run_mcpool(spec, args)
            else:
                ours, bare = run_mcpool(spec, args), run_bare(spec, args)
            ops_ratios.append(ours["ops_per_s"] / bare["ops_per_s"])
            p50_ratios.append(ours["p50_us"] / bare["p50_us"])
            print(f"{index:>5} {bare['ops_per_s']:>11,.0f} {ours['ops_per_s']:>13,.0f} {ops_ratios[-1]:>6.3f} "
                  f"{bare['p50_us']:>7.1f}µs {ours['p50_us']:>9.1f}µs {p50_ratios[-1]:>9.3f} "
                  f"{bare['p99_us']:>7.1f}µs {ours['p99_us']:>9.1f}µs")
    ops_ratio, p50_ratio = statistics.median(ops_ratios), statistics.median(p50_ratios)
    print(f"median: mcpool ran at {ops_ratio:.3f}x the bare loop's ops/s (goal >= 0.90); "
          f"p50 ratio {p50_ratio:.3f} (goal within 0.90-1.10)")
    met = ops_ratio >= 0.90 and abs(p50_ratio - 1) <= 0.10
    print("goal met" if met else "goal missed")


if __name__ == "__main__":
    main()
