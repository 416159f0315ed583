"""Ctrl-C in a real process: partial results, exit 130, nothing left running."""

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def interrupt_at(moment_s: float, *args: str, tmp_path: Path) -> None:
    """Start mcpool with --json, send SIGINT `moment_s` later: 130, a document that parses and says interrupted,
    no run cut short that says ok, and no process left. A command that had finished before the signal reached
    it exits 0 with a document that says it was not interrupted."""
    out = tmp_path / f"at-{moment_s:.1f}-{args[0]}.json"
    process = subprocess.Popen([sys.executable, "-m", "mcpool_cli", *args, "--json", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TESTS)
    time.sleep(moment_s)
    children = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    where = f"SIGINT at {moment_s:.1f} s into {' '.join(args)}: exit {process.returncode}\n{stderr[-2000:]}"
    in_site = process.returncode == 1 and "KeyboardInterrupt" in stderr and "<frozen site>" in stderr
    if (process.returncode == -signal.SIGINT or in_site) and "mcpool_cli" not in stderr and not out.exists():
        return  # it came while Python itself was starting (site, runpy), before any line of mcpool ran
    assert process.returncode in (130, 0), where
    assert "Traceback" not in stderr, where
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is (process.returncode == 130), where
    documents = doc["documents"] if "documents" in doc else [doc]
    for document in documents:
        for row in document.get("runs", document.get("results", [])):
            cut = row.get("interrupted") or row.get("verdict") == "interrupted"
            assert not (cut and row.get("outcome") == "ok"), where
            assert process.returncode == 130 or not cut, where
    for _ in range(50):
        left = [pid for pid in children if alive(pid)]
        if not left:
            break
        time.sleep(0.05)
    assert not left, where


def test_ctrl_c_at_any_moment_of_a_bench_is_saved_as_interrupted(memcached, tmp_path):
    bench = ("bench", "--strategy", "per-thread", "--threads", "2", "--duration", "1s", "--warmup", "200ms",
             "--keys", "200", "--quiet")
    moments = [(step / 10, ("-s", memcached.spec)) for step in range(1, 21)]
    moments += [(moment, ()) for moment in (0.2, 0.4, 0.6)]  # while the embedded memcached starts
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(interrupt_at, moment, *bench, *server, tmp_path=tmp_path)
                       for moment, server in moments]:
            future.result()


def test_ctrl_c_at_a_few_moments_of_each_check_and_a_scenario(memcached, tmp_path):
    server = ("-s", memcached.spec)
    runs = [(moment, ("check-races", *server, "--strategy", "fifo", "--threads", "4", "--duration", "500ms",
                      "--trials", "2", "--quiet")) for moment in (0.3, 0.9, 1.4)]
    runs += [(moment, ("check-leaks", *server, "--strategy", "fifo", "--churn", "100", "--concurrency", "10",
                       "--quiet")) for moment in (0.3, 0.8)]
    runs += [(moment, ("check-stale", "--fault", "drop", "--threads", "4", "--rate", "200", "--keys", "200",
                       "--before", "500ms", "--quiet")) for moment in (0.3, 1.0, 2.0)]
    runs += [(moment, ("run", "ci-smoke", *server, "--duration", "1s", "--quiet")) for moment in (0.3, 1.5, 3.0)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(interrupt_at, moment, *args, tmp_path=tmp_path) for moment, args in runs]:
            future.result()
