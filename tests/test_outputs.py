"""Where results go (issue 10): output paths are written, never replaced; a write that fails after the load loses
neither the report nor the run's exit code; trouble with stdout itself never ends in a traceback.

Everything here runs mcpool as a real process (or in this one for refusals before any load) against real
files: FIFOs, device nodes made with mknod, symlinks, pipes, /dev/full.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import TESTS, invoke_mcpool, run_mcpool

NULL, FULL = os.makedev(1, 3), os.makedev(1, 7)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def quick(memcached, *args: str) -> list[str]:
    return ["bench", "-s", memcached.spec, "--strategy", "per-thread", "--threads", "2", "--duration", "300ms",
            "--warmup", "100ms", "--keys", "200", "-q", *args]


def device(path: Path, number: int) -> Path:
    os.mknod(path, stat.S_IFCHR | 0o666, number)
    os.chmod(path, 0o666)  # not less the umask
    return path


def no_traceback(process) -> None:
    assert "Traceback" not in process.stderr + (process.stdout or ""), process.stderr


def one_error_line(process, *fragments: str) -> str:
    lines = [line for line in process.stderr.splitlines() if line.startswith("mcpool: error: ")]
    assert len(lines) == 1, process.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def system_paths():
    """/dev/null and /dev/stdout as they are after the test, whatever it did (mcpool before issue 10 renamed a file
    over them)."""
    yield
    if not stat.S_ISCHR(os.lstat("/dev/null").st_mode):
        os.unlink("/dev/null")
        device(Path("/dev/null"), NULL)
    if not os.path.islink("/dev/stdout"):
        os.unlink("/dev/stdout")
        os.symlink("/proc/self/fd/1", "/dev/stdout")


def read_in_thread(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as handle:
            got.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


# 1. Output paths are written, never replaced.

def test_json_to_a_fifo_is_written_through_it(memcached, tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    reader, got = read_in_thread(fifo)
    process = run_mcpool(*quick(memcached, "--json", str(fifo)))
    reader.join(timeout=30)
    assert process.returncode == 0, process.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and json.loads(got[0])["schema"] == "mcpool.result/1"


@root_only
def test_json_to_a_device_node_is_written_to_it(memcached, tmp_path):
    null = device(tmp_path / "null", NULL)
    process = run_mcpool(*quick(memcached, "--json", str(null), "--junit", str(null)))  # a char device takes both
    assert process.returncode == 0, process.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == NULL
    assert "per-thread · 2 threads · ok" in process.stdout


def test_dev_null_stays_a_device(memcached, system_paths):
    process = run_mcpool(*quick(memcached, "--json", "/dev/null"))
    assert process.returncode == 0, process.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_dev_stdout_is_stdout_and_the_report_goes_to_stderr(memcached, system_paths):
    process = run_mcpool(*quick(memcached, "--json", "/dev/stdout"))
    assert process.returncode == 0, process.stderr
    assert os.path.islink("/dev/stdout")
    assert json.loads(process.stdout)["schema"] == "mcpool.result/1"
    assert "per-thread · 2 threads · ok" in process.stderr


def test_an_open_descriptor_is_written_as_it_is(memcached):
    """`--junit >(...)`: a process substitution is /dev/fd/N, a pipe."""
    read_end, write_end = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(read_end, "rb").read()), daemon=True)
    reader.start()
    try:
        process = subprocess.run([sys.executable, "-m", "mcpool_cli", *quick(memcached, "--junit",
                                                                                 f"/dev/fd/{write_end}")],
                                 capture_output=True, text=True, timeout=60, cwd=TESTS, pass_fds=(write_end,))
    finally:
        os.close(write_end)
    reader.join(timeout=30)
    assert process.returncode == 0, process.stderr
    assert got and got[0].startswith(b"<?xml")


def test_a_symlink_is_written_through_with_its_target_permissions(memcached, tmp_path):
    target, link = tmp_path / "real.json", tmp_path / "link.json"
    target.write_text("old")
    target.chmod(0o640)
    link.symlink_to(target.name)
    process = run_mcpool(*quick(memcached, "--json", str(link)))
    assert process.returncode == 0, process.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert json.loads(target.read_text())["schema"] == "mcpool.result/1"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".mcpool-")] == []


def test_json_and_junit_both_on_stdout_is_exit_2(memcached):
    process = invoke_mcpool(*quick(memcached, "--json", "-", "--junit", "/dev/stdout"))
    assert process.returncode == 2 and "same file" in one_error_line(process, "--junit /dev/stdout")


@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_json_and_junit_on_one_file_is_exit_2(memcached, tmp_path, how):
    first = tmp_path / "out"
    first.write_text("")
    second = {"same name": first, "symlink": tmp_path / "link", "hard link": tmp_path / "hard"}[how]
    if how == "symlink":
        second.symlink_to(first)
    elif how == "hard link":
        os.link(first, second)
    process = invoke_mcpool(*quick(memcached, "--json", str(first), "--junit", str(second)))
    assert process.returncode == 2, process.stderr
    assert process.stderr.count("\n") == 1 and "same file" in one_error_line(process, "--json", "--junit")
    assert first.read_text() == ""


# 2. A write that fails after the load loses nothing.

@root_only
@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_a_full_disk_keeps_the_report_and_says_which_file(memcached, tmp_path, option):
    full = device(tmp_path / "full", FULL)
    process = run_mcpool(*quick(memcached, option, str(full)))
    no_traceback(process)
    assert process.returncode == 2
    assert "per-thread · 2 threads · ok" in process.stdout
    one_error_line(process, option, str(full), "No space left on device")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@root_only
def test_a_failed_write_keeps_the_runs_own_worse_code(memcached, tmp_path):
    full = device(tmp_path / "full", FULL)
    process = run_mcpool(*quick(memcached, "--json", str(full), "--threshold", "ops_per_s>1e12"))
    no_traceback(process)
    assert process.returncode == 1  # the threshold failed: that is the run's outcome
    assert "per-thread · 2 threads · ok" in process.stdout
    one_error_line(process, "--json", "No space left on device")


def test_a_closed_pipe_at_the_end_keeps_the_report(memcached):
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read the results
    try:
        process = subprocess.run([sys.executable, "-m", "mcpool_cli", *quick(memcached, "--json",
                                                                                 f"/dev/fd/{write_end}")],
                                 capture_output=True, text=True, timeout=60, cwd=TESTS, pass_fds=(write_end,))
    finally:
        os.close(write_end)
    no_traceback(process)
    assert process.returncode == 2
    assert "per-thread · 2 threads · ok" in process.stdout
    one_error_line(process, "--json", "Broken pipe")


@root_only
def test_run_keeps_its_reports_when_the_bundle_cannot_be_written(memcached, tmp_path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text('description = "one phase"\n'
                        '[bench]\nstrategies = ["per-thread"]\nthreads = 2\nkeys = 200\nduration = "10s"\n')
    full = device(tmp_path / "full", FULL)
    junit = tmp_path / "junit.xml"
    process = run_mcpool("run", str(scenario), "--duration", "300ms", "-s", memcached.spec, "-q",
                         "--json", str(full), "--junit", str(junit))
    no_traceback(process)
    assert process.returncode == 2
    assert "per-thread · 2 threads · ok" in process.stdout and "mine" in process.stdout
    one_error_line(process, "--json", "No space left on device")
    assert junit.read_text().startswith("<?xml")  # the other file is still written


# 3. Trouble with stdout never gives a traceback.

def test_closed_stdout_is_one_line_and_exit_2(memcached):
    process = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", sys.executable, "-m", "mcpool_cli",
                              *quick(memcached, "--json", "-")], stdout=None, stderr=subprocess.PIPE, text=True,
                             timeout=60, cwd=TESTS)
    no_traceback(process)
    assert process.returncode == 2
    one_error_line(process, "stdout")


@pytest.mark.parametrize("what", ["help", "bench"])
def test_full_stdout_is_one_line_and_exit_2(memcached, what):
    args = ["--help"] if what == "help" else quick(memcached)
    with open("/dev/full", "w") as full:
        process = subprocess.run([sys.executable, "-m", "mcpool_cli", *args], stdout=full, stderr=subprocess.PIPE,
                                 text=True, timeout=60, cwd=TESTS)
    no_traceback(process)
    assert process.returncode == 2
    one_error_line(process, "stdout", "No space left on device")


def test_full_stdout_keeps_the_runs_worse_code(memcached):
    with open("/dev/full", "w") as full:
        process = subprocess.run([sys.executable, "-m", "mcpool_cli",
                                  *quick(memcached, "--threshold", "ops_per_s>1e12")],
                                 stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, cwd=TESTS)
    no_traceback(process)
    assert process.returncode == 1


def test_broken_pipe_ends_quietly(memcached):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -0`: the reader is gone before the report
    try:
        process = subprocess.run([sys.executable, "-m", "mcpool_cli", *quick(memcached)], stdout=write_end,
                                 stderr=subprocess.PIPE, text=True, timeout=60, cwd=TESTS)
    finally:
        os.close(write_end)
    no_traceback(process)
    assert process.returncode in (0, 141)
    assert "mcpool: error" not in process.stderr


def test_ascii_only_stdout_still_gets_the_report(memcached):
    process = run_mcpool(*quick(memcached), env={"PYTHONIOENCODING": "ascii"})
    no_traceback(process)
    assert process.returncode == 0
    assert "per-thread ? 2 threads ? ok" in process.stdout and "latency" in process.stdout
    process.stdout.encode("ascii")


@root_only
def test_an_interrupted_run_keeps_130_when_its_file_cannot_be_written(tmp_path):
    from tests.test_interrupt import start_measuring

    full = device(tmp_path / "full", FULL)
    process = start_measuring("bench", "--strategy", "per-thread", "--threads", "2", "--duration", "30s",
                              "--warmup", "100ms", "--keys", "200", "--json", str(full))
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr
    assert process.returncode == 130, stderr
    assert "per-thread · 2 threads · interrupted" in stdout
    assert f"mcpool: error: --json {full}: cannot write the results (No space left on device)" in stderr


def test_a_fifo_nobody_writes_to_is_read_as_empty_not_waited_for(tmp_path):
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    result = run_mcpool("report", str(fifo), timeout=30)  # it used to block in open() forever
    assert result.returncode == 2 and "not JSON" in result.stderr and "Traceback" not in result.stderr


def test_a_scenario_that_is_a_device_is_said_to_be_one():
    result = run_mcpool("run", "/dev/zero")
    assert result.returncode == 2 and "is not a regular file" in result.stderr
