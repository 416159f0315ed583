"""Fixtures: a real memcached on a free loopback port, started through mcpool's own server code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcpool_cli.cli import cli
from mcpool_cli.engine.server import EmbeddedServer, ServerAddress

TESTS = Path(__file__).parent
QUICK = ["--duration", "300ms", "--warmup", "100ms", "--keys", "500", "--threads", "3", "--quiet"]


@pytest.fixture(scope="session")
def memcached() -> ServerAddress:
    with EmbeddedServer(memory_mb=64) as server:
        assert server.address is not None
        yield server.address


@pytest.fixture
def bench(memcached: ServerAddress, monkeypatch: pytest.MonkeyPatch):
    """Run `mcpool bench` in-process (workers are real child processes) against the session server."""
    monkeypatch.chdir(TESTS)  # custom strategies import from the current folder, as for a user

    def run(*args: str, server: bool = True) -> tuple[int, str, str]:
        extra = ["-s", memcached.spec] if server else []
        result = CliRunner().invoke(cli, ["bench", *extra, *QUICK, *args])
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture
def bench_json(bench):
    """Run bench with `--json -` and return (exit code, parsed document, stderr)."""

    def run(*args: str, server: bool = True) -> tuple[int, dict, str]:
        code, out, err = bench("--json", "-", *args, server=server)
        return code, json.loads(out), err

    return run


def run_mcpool(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run mcpool as a real process, as a user would."""
    return subprocess.run([sys.executable, "-m", "mcpool_cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=TESTS)


def invoke_mcpool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run mcpool in this process (CliRunner), from the tests folder as run_mcpool does: the same exit code,
    stdout and stderr, without an interpreter start. An exception that escapes the CLI (a user would see a
    traceback) is appended to stderr as one, so tests that look for "Traceback" still find it."""
    here = os.getcwd()
    os.chdir(TESTS)
    try:
        result = CliRunner().invoke(cli, list(args), env=env)
    finally:
        os.chdir(here)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["mcpool", *args], result.exit_code, result.stdout, stderr)
