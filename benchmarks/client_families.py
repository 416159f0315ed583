"""Compare pylibmc's per-thread strategy with every other library's safe strategy, on one embedded memcached.

Runs `mcpool bench` with all the strategies in one command, several times, rotating their order (so no strategy
always meets a warmer server or a quieter machine), and pymemcache's again with `--client-option no_delay=true`, and prints per strategy the median ops/s, p50 and p99 over
the rounds and its ratio to pylibmc per-thread's median. This is mcpool measuring each client as it is
configured by default (see README: The strategies) — a comparison of clients, not of mcpool with a bare loop.

    python benchmarks/client_families.py [--threads 12] [--rounds 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mcpool_cli.engine.server import EmbeddedServer

STRATEGIES = ("per-thread", "fifo", "pymemcache-per-thread", "pymemcache-pooled", "pymemcache-hash-pooled",
              "memcache-shared", "django-pymemcache", "django-pylibmc", "flask-memcached")
TUNED = ("pymemcache-per-thread", "pymemcache-pooled", "pymemcache-hash-pooled")  # again with no_delay=True
TUNED_OPTION = "no_delay=true"


def one_round(server: str, order: list[str], threads: int, duration_s: float, folder: Path,
              extra: tuple[str, ...] = ()) -> dict[str, dict]:
    """{strategy: its run's JSON} of one bench command running `order` (with `extra` options)."""
    out = folder / "round.json"
    args = [sys.executable, "-m", "mcpool_cli", "bench", "-s", server, "--threads", str(threads),
            "--duration", f"{duration_s}s", "--quiet", "--json", str(out), *extra]
    for name in order:
        args += ["--strategy", name]
    subprocess.run(args, stdout=subprocess.DEVNULL, check=False)
    return {run["strategy"]: run for run in json.loads(out.read_text())["runs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    options = parser.parse_args()
    seen: dict[str, list[dict]] = {name: [] for name in (*STRATEGIES, *(f"{t} {TUNED_OPTION}" for t in TUNED))}
    with EmbeddedServer(memory_mb=256) as server, tempfile.TemporaryDirectory() as folder:
        for index in range(options.rounds):
            order = list(STRATEGIES[index % len(STRATEGIES):] + STRATEGIES[:index % len(STRATEGIES)])
            runs = one_round(server.address.spec, order, options.threads, options.duration, Path(folder))
            tuned = one_round(server.address.spec, list(TUNED), options.threads, options.duration, Path(folder),
                              ("--client-option", TUNED_OPTION))
            runs.update({f"{name} {TUNED_OPTION}": run for name, run in tuned.items()})
            for name, run in runs.items():
                seen[name].append(run)
            print(f"round {index + 1}: " + ", ".join(f"{n} {run['ops_per_s']:,.0f}" for n, run in runs.items()))
    base = statistics.median(run["ops_per_s"] for run in seen["per-thread"])
    print(f"\n{options.threads} threads, {options.rounds} rounds of {options.duration:g} s; medians")
    print(f"{'strategy':38} {'ops/s':>9} {'× per-thread':>13} {'p50 µs':>8} {'p99 ms':>8} {'errors':>7}")
    for name, runs in seen.items():
        ops = statistics.median(run["ops_per_s"] for run in runs)
        p50 = statistics.median(run["latency_us"]["p50"] or 0 for run in runs)
        p99 = statistics.median(run["latency_us"]["p99"] or 0 for run in runs) / 1000
        errors = sum(run["error_count"] for run in runs)
        print(f"{name:38} {ops:9,.0f} {ops / base:13.2f} {p50:8,.0f} {p99:8.2f} {errors:7,}")


if __name__ == "__main__":
    main()
