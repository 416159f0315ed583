"""Ctrl-C in a real process: partial results, exit 130, nothing left running."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).parent


def descendants(pid: int) -> set[int]:
    """Every live process whose parent chain leads to `pid` (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_measuring(*args: str) -> subprocess.Popen:
    """mcpool as a real process, returned once its progress says it is measuring."""
    process = subprocess.Popen([sys.executable, "-m", "mcpool_cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=TESTS)
    deadline = time.monotonic() + 30
    line = ""
    while "measuring" not in line and time.monotonic() < deadline:
        line = process.stderr.readline()
    assert "measuring" in line
    return process


def test_ctrl_c_keeps_partial_results_and_leaves_nothing(tmp_path):
    out = tmp_path / "result.json"
    process = start_measuring("bench", "--strategy", "per-thread", "--strategy", "fifo", "--threads", "3",
                              "--processes", "2", "--duration", "30s", "--warmup", "200ms", "--keys", "500",
                              "--json", str(out))
    time.sleep(1.0)
    children = descendants(process.pid)
    assert len(children) >= 3  # memcached and two workers
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "per-thread · 3 threads × 2 processes · interrupted" in stdout
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True
    (run,) = doc["runs"]  # fifo never started
    assert run["outcome"] == "interrupted" and run["ops"] > 1000
    time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)]
