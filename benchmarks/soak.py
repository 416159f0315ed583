"""A long bench with live metrics: does memory stay flat, and does the endpoint answer throughout?

Runs `mcpool bench --metrics-port` for --duration against an embedded memcached, and every --every seconds
scrapes http://127.0.0.1:PORT/metrics and reads the resident memory of mcpool's parent and of its worker
processes from /proc. Prints one line per sample, then the memory at the start (after a minute's settling), the
middle and the end, the growth per ten minutes over the last two thirds, and how many scrapes failed.

    python benchmarks/soak.py --duration 30m --rate 4000 --threads 8
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcpool_cli.engine.server import free_loopback_port  # noqa: E402
from mcpool_cli.units import parse_duration_s  # noqa: E402


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def scrape(port: int) -> tuple[bool, float, float]:
    """(answered, seconds it took, ops so far)."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return False, time.monotonic() - start, 0.0
    ops = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("mcpool_ops_total{") and 'outcome="ok"' in line)
    return True, time.monotonic() - start, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="30m")
    parser.add_argument("--rate", default="4000")
    parser.add_argument("--threads", default="8")
    parser.add_argument("--strategy", default="fifo")
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--csv", default="soak.csv")
    args = parser.parse_args()
    duration_s, port = parse_duration_s(args.duration), free_loopback_port()
    command = [sys.executable, "-m", "mcpool_cli", "bench", "--strategy", args.strategy, "--threads", args.threads,
               "--rate", args.rate, "--duration", args.duration, "--metrics-port", str(port), "--quiet",
               "--json", "soak.json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started, rows = time.monotonic(), []
    while process.poll() is None:
        time.sleep(args.every)
        answered, took_s, ops = scrape(port)
        workers = [pid for pid in children(process.pid) if Path(f"/proc/{pid}/cmdline").read_bytes().find(
            b"mcpool_cli.engine.worker") >= 0]
        row = {"t_s": round(time.monotonic() - started, 1), "answered": answered, "scrape_ms": round(took_s * 1e3, 1),
               "ops": ops, "parent_mb": round(rss_mb(process.pid), 1),
               "workers_mb": round(sum(rss_mb(pid) for pid in workers), 1)}
        if process.poll() is None and (row["workers_mb"] or not rows):  # the worker ends a moment before mcpool
            rows.append(row)
            print(row, flush=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["t_s"])
        writer.writeheader()
        writer.writerows(rows)
    summarize(rows, duration_s, process.returncode, process.stderr.read() if process.stderr else "")


def summarize(rows: list[dict], duration_s: float, code: int, stderr: str) -> None:
    settled = [row for row in rows if row["t_s"] >= 60] or rows
    if not settled:
        print(f"no sample (exit {code}): {stderr.strip()[-300:]}")
        return
    third = [row for row in settled if row["t_s"] >= settled[0]["t_s"] + (settled[-1]["t_s"] - settled[0]["t_s"]) / 3]
    first, middle, last = settled[0], settled[len(settled) // 2], settled[-1]
    span_min = max(1e-9, (last["t_s"] - third[0]["t_s"]) / 60)
    for key in ("parent_mb", "workers_mb"):
        growth = (last[key] - third[0][key]) / span_min * 10
        print(f"{key}: {first[key]} at {first['t_s']:.0f} s, {middle[key]} at {middle['t_s']:.0f} s, "
              f"{last[key]} at {last['t_s']:.0f} s; {growth:+.2f} MB per 10 min over the last two thirds")
    failed = sum(1 for row in rows if not row["answered"])
    slowest = max(row["scrape_ms"] for row in rows)
    print(f"scrapes: {len(rows)}, failed {failed}, slowest {slowest} ms; mcpool exit {code}; "
          f"ops {last['ops']:,.0f} in {duration_s:g} s asked")


if __name__ == "__main__":
    main()
