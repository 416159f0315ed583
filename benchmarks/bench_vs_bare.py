"""Compare `mcpool bench --strategy per-thread` with a bare pylibmc loop at several thread counts, in one run.

Both load the same embedded memcached, one after the other, in pairs (alternating which goes first, so neither
always meets a warmer server); prints each pair and, per thread count, the median ratios against the goals:
mcpool >= 0.95x the bare loop's ops/s and its p99 <= 1.2x the loop's (issue 11).

Each run's CPU is sampled from /proc while the load runs (the intervals in which memcached works): the cores
used by memcached, the loop (bare), and mcpool's parent and worker, so where mcpool's cost goes shows too; and
the cores everything else on the machine used meanwhile ("others"): a pair run beside other load is noise.

    python benchmarks/bench_vs_bare.py [--threads 4,12,32] [--pairs 3] [--duration 10] [--mcpool-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import sys
import time
from pathlib import Path
from typing import Callable

from mcpool_cli.engine.server import EmbeddedServer

HERE = Path(__file__).parent
OPS_GOAL, P99_GOAL = 0.95, 1.2
SAMPLE_S = 0.25
BUSY_SHARE = 0.10  # an interval in which memcached used over 10% of a core is one in which the load runs
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = open("/proc/stat").readline().split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / TICK


def children(pid: int) -> list[int]:
    try:
        return [int(p) for task in os.listdir(f"/proc/{pid}/task")
                for p in open(f"/proc/{pid}/task/{task}/children").read().split()]
    except OSError:
        return []


class CpuSampler:
    """CPU seconds per role (memcached, the run's process, its worker), summed over the intervals of load, and
    `others`: what the rest of the machine used meanwhile (other people's runs: noise to read the pair by)."""

    def __init__(self, server_pid: int, process_pid: int) -> None:
        self.roles: dict[str, Callable[[], list[int]]] = {
            "memcached": lambda: [server_pid], "main": lambda: [process_pid],
            "worker": lambda: children(process_pid)}
        self.last: dict[str, dict[int, float]] = {role: {} for role in self.roles}
        self.busy = {role: 0.0 for role in (*self.roles, "others")}
        self.busy_s = 0.0
        self.at = time.monotonic()
        self.machine_at = machine_busy_s()

    def sample(self) -> None:
        now = time.monotonic()
        used = {role: self._used(role) for role in self.roles}
        machine, self.machine_at = self.machine_at, machine_busy_s()
        used["others"] = max(0.0, self.machine_at - machine - sum(used.values()))
        if used["memcached"] > BUSY_SHARE * (now - self.at):
            self.busy_s += now - self.at
            for role, seconds in used.items():
                self.busy[role] += seconds
        self.at = now

    def _used(self, role: str) -> float:
        """CPU seconds the role's processes used since the last sample; a process seen for the first time counts
        from 0 (it started after the sampler did), except memcached, which was running long before."""
        total = 0.0
        for pid in self.roles[role]():
            now = cpu_s(pid)
            if now is not None:
                total += now - self.last[role].get(pid, now if role == "memcached" else 0.0)
                self.last[role][pid] = now
        return total

    def cores(self) -> dict[str, float]:
        """Cores used by each role while the load ran."""
        return {role: seconds / self.busy_s if self.busy_s else 0.0 for role, seconds in self.busy.items()}


def run_sampled(command: list[str], server_pid: int, env: dict[str, str] | None = None) -> tuple[str, dict[str, float]]:
    """Run a command to its end, sampling CPU; its stdout and the cores each role used while loading."""
    with tempfile.TemporaryFile("w+") as stdout:  # a file, not a pipe: a document bigger than the pipe would block
        proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.DEVNULL, text=True, env=env)
        sampler = CpuSampler(server_pid, proc.pid)
        sampler.sample()
        while proc.poll() is None:
            time.sleep(SAMPLE_S)
            sampler.sample()
        stdout.seek(0)
        out = stdout.read()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{command[1:3]} exited with status {proc.returncode}")
    return out, sampler.cores()


def run_bare(server: str, server_pid: int, threads: int, duration_s: float) -> dict:
    out, cores = run_sampled([sys.executable, str(HERE / "bare_loop.py"), "--server", server, "--threads",
                              str(threads), "--duration", str(duration_s)], server_pid)
    return {**json.loads(out), "cores": cores}


def run_mcpool(server: str, server_pid: int, threads: int, duration_s: float, source: str | None) -> dict:
    env = None if source is None else dict(os.environ, PYTHONPATH=source)  # the worker inherits it
    out, cores = run_sampled([sys.executable, "-m", "mcpool_cli", "bench", "-s", server, "--strategy",
                              "per-thread", "--threads", str(threads), "--duration", f"{duration_s}s", "--quiet",
                              "--json", "-"], server_pid, env)
    run = json.loads(out)["runs"][0]
    return {"ops": run["ops"], "ops_per_s": run["ops_per_s"], "p50_us": run["latency_us"]["p50"],
            "p99_us": run["latency_us"]["p99"], "cores": cores}


HEADER = (f"{'pair':>4} {'first':>6} {'bare ops/s':>11} {'mcpool ops/s':>13} {'ratio':>6} {'bare p99':>9} "
          f"{'mcpool p99':>11} {'ratio':>6}   cores while loading: bare (loop, mc, others) | "
          f"mcpool (parent, worker, mc, others)")


def pair_line(index: int, first: str, bare: dict, ours: dict) -> str:
    b, m = bare["cores"], ours["cores"]
    return (f"{index:>4} {first:>6} {bare['ops_per_s']:>11,.0f} {ours['ops_per_s']:>13,.0f} "
            f"{ours['ops_per_s'] / bare['ops_per_s']:>6.3f} {bare['p99_us']:>7.1f}µs {ours['p99_us']:>9.1f}µs "
            f"{ours['p99_us'] / bare['p99_us']:>6.3f}   {b['main']:.2f} {b['memcached']:.2f} {b['others']:.2f} | "
            f"{m['main']:.2f} {m['worker']:.2f} {m['memcached']:.2f} {m['others']:.2f}")


def bench_threads(spec: str, server_pid: int, threads: int, args: argparse.Namespace) -> tuple[float, float]:
    """Run the pairs at one thread count; the median ops/s ratio and the median p99 ratio."""
    print(f"\n{threads} threads, per-thread, {args.pairs} pairs of {args.duration:g} s")
    print(HEADER)
    ops_ratios, p99_ratios = [], []
    for index in range(1, args.pairs + 1):
        for attempt in range(args.retries + 1):
            bare, ours = run_pair(spec, server_pid, threads, index % 2 == 1, args)
            noisy = max(bare["cores"]["others"], ours["cores"]["others"]) > args.max_others
            retry = noisy and attempt < args.retries
            note = " (others above --max-others: run again)" if retry else " (noisy, kept)" if noisy else ""
            print(pair_line(index, "bare" if index % 2 else "mcpool", bare, ours) + note, flush=True)
            if not retry:
                break
        ops_ratios.append(ours["ops_per_s"] / bare["ops_per_s"])
        p99_ratios.append(ours["p99_us"] / bare["p99_us"])
    return statistics.median(ops_ratios), statistics.median(p99_ratios)


def run_pair(spec: str, server_pid: int, threads: int, bare_first: bool, args: argparse.Namespace
             ) -> tuple[dict, dict]:
    """(bare, mcpool), run in the order asked."""
    bare = lambda: run_bare(spec, server_pid, threads, args.duration)  # noqa: E731
    ours = lambda: run_mcpool(spec, server_pid, threads, args.duration, args.mcpool_src)  # noqa: E731
    if bare_first:
        first = bare()
        return first, ours()
    first = ours()
    return bare(), first


def verdict_line(threads: int, ops_ratio: float, p99_ratio: float) -> str:
    met = ops_ratio >= OPS_GOAL and p99_ratio <= P99_GOAL
    return (f"{threads:>3} threads: median ops/s ratio {ops_ratio:.3f} (goal >= {OPS_GOAL}), median p99 ratio "
            f"{p99_ratio:.3f} (goal <= {P99_GOAL}): {'goal met' if met else 'goal missed'}")


def thread_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=thread_counts, default=[4, 12, 32], help="thread counts, e.g. 4,12,32")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each, alternating which goes first")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--max-others", type=float, default=0.15,
                        help="a pair in which the rest of the machine used more cores than this is run again")
    parser.add_argument("--retries", type=int, default=2, help="how many times a noisy pair is run again")
    parser.add_argument("--mcpool-src", help="run mcpool from this source tree (e.g. a worktree of an older commit)")
    args = parser.parse_args()
    verdicts = []
    with EmbeddedServer() as server:
        print(f"memcached at {server.address.spec} (pid {server.pid}); python {sys.version.split()[0]}; "
              f"mcpool from {args.mcpool_src or 'the installed tree'}")
        for threads in args.threads:
            verdicts.append(verdict_line(threads, *bench_threads(server.address.spec, server.pid, threads, args)))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
