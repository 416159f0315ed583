"""The parent's memory over a long full-speed run: its RSS sampled every --every seconds.

    python benchmarks/parent_memory.py [--duration 600] [--threads 12] [--every 10]

Goal (issue 11): under 150 MB and flat. Prints each sample, the peak, and the growth between the first and the
second half of the run (the raw latencies are folded into histograms as they pile up; old intervals are sealed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcpool_cli.engine.server import EmbeddedServer


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp()) / "run.json"  # a file, not a pipe: nobody reads a pipe until the run ends
    with EmbeddedServer() as server:
        proc = subprocess.Popen([sys.executable, "-m", "mcpool_cli", "bench", "-s", server.address.spec,
                                 "--strategy", "per-thread", "--threads", str(args.threads), "--duration",
                                 f"{args.duration}s", "--quiet", "--json", str(out)])
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while proc.poll() is None:
            time.sleep(args.every)
            mb = rss_mb(proc.pid)
            if mb is not None:
                samples.append((time.monotonic() - started, mb))
                print(f"{samples[-1][0]:7.0f} s  parent RSS {mb:7.1f} MB", flush=True)
        run = json.loads(out.read_text())["runs"][0]
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    growth = (max(mb for _, mb in second) - max(mb for _, mb in first)) if first and second else 0.0
    peak = max(mb for _, mb in samples)
    print(f"{run['ops']:,} ops at {run['ops_per_s']:,.0f} ops/s, {len(run['intervals'])} intervals; "
          f"peak RSS {peak:.1f} MB (goal < 150 MB), second half minus first half peak: {growth:+.1f} MB")


if __name__ == "__main__":
    main()
