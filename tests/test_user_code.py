"""User code (custom strategies) never runs in the process that reports, and never outlives it.

Every test runs mcpool as a real process (cwd tests/, where the usercode_*.py modules are), since the point is
what happens to that process: a module that exits, crashes, hangs or prints at import, a worker stuck with the
GIL held when mcpool is killed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import QUICK, TESTS, run_mcpool
from tests.test_cli_errors import one_line_error
from tests.test_interrupt import alive, descendants


def test_a_module_that_exits_at_import_is_one_line_and_exit_2():
    one_line_error(run_mcpool("bench", "--duration", "1s", "--strategy", "usercode_exits_at_import:make"),
                   "custom strategy 'usercode_exits_at_import:make'", "exited with status 5 while importing")


def test_a_module_that_segfaults_at_import_is_one_line_and_exit_2():
    one_line_error(run_mcpool("bench", "--duration", "1s", "--strategy", "usercode_segfaults_at_import:make"),
                   "custom strategy 'usercode_segfaults_at_import:make'", "killed the process (SIGSEGV)")


def test_a_module_that_hangs_at_import_is_stopped_by_the_hang_timeout():
    result = run_mcpool("bench", "--duration", "1s", "--hang-timeout", "1s",
                        "--strategy", "usercode_hangs_at_import:make", timeout=30)
    one_line_error(result, "custom strategy 'usercode_hangs_at_import:make'", "did not finish importing within 1s")


def test_a_module_is_never_imported_by_mcpool_and_its_prints_stay_off_stdout(memcached, tmp_path):
    log = tmp_path / "imports.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpool_cli", "bench", "-s", memcached.spec, *QUICK, "--json", "-",
         "--strategy", "usercode_prints_at_import:make"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TESTS,
        env={**os.environ, "MCPOOL_TEST_IMPORT_LOG": str(log)})
    try:
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    document = json.loads(out)  # pure JSON: the module's print() went elsewhere
    assert document["runs"][0]["strategy"] == "usercode_prints_at_import:make"
    importers = [int(line) for line in log.read_text().split()]
    assert importers, "the module was never imported (neither to check it nor in a worker)"
    assert process.pid not in importers


def test_workers_die_with_mcpool_even_when_their_threads_hold_the_gil(tmp_path):
    marker = tmp_path / "spinning"
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpool_cli", "bench", "--duration", "120s", "--warmup", "0s", "--keys", "100",
         "--threads", "2", "--hang-timeout", "120s", "--quiet", "--strategy", "usercode_spins:spinning_pool"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=TESTS,
        env={**os.environ, "MCPOOL_TEST_SPIN_MARKER": str(marker)})
    left: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the worker never started spinning"
        left = descendants(process.pid)  # the worker(s) and the memcached this mcpool started
        worker = int(marker.read_text().split()[0])
        assert worker in left
        assert any(b"memcached" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left if alive(pid))
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in left if alive(pid)], "processes outlived mcpool's kill -9"
    finally:
        process.kill()
        process.wait()
        for pid in left:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
