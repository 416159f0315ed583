"""Pieces every command shares: servers, progress, the JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import click

from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.options import DURATION, SERVER, THRESHOLD

STRATEGY_HELP = ("Client strategy: shared, fifo, thread-mapped, per-thread, all, or module:callable for your own pool "
                 "(called with the master pylibmc.Client and the thread count; must return an object with a "
                 "reserve() context manager). Repeatable. Default: fifo, thread-mapped and per-thread.")


def check_json_target(path: str | None, option: str = "--json") -> None:
    """Fail before any load if the results could not be written where asked."""
    if path == "":
        raise UsageProblem(f"{option} needs a file name (or - for stdout)")
    if path in (None, "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageProblem(f"{option} {path}: is a folder; give a file name")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageProblem(f"{option} {path}: folder {folder} does not exist or is not writable")


def write_json(path: str, document: dict[str, Any], env: Environment) -> None:
    """Write the result document to PATH (atomically: a reader never sees half a file) or to stdout for `-`."""
    text = json.dumps(document, indent=2) + "\n"
    if path == "-":
        env.stdout.write(text)
        env.stdout.flush()
        return
    write_atomically(path, text.encode(), "--json", "the results")


def write_atomically(path: str, data: bytes, option: str, what: str) -> None:
    """Write PATH through a temporary file and a rename; a UsageProblem naming OPTION when it cannot."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False, prefix=".mcpool-", suffix=".tmp") as handle:
            temporary = handle.name
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would have made it, not the temporary file's 0600
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError, NameError):
            os.unlink(temporary)
        raise UsageProblem(f"{option} {path}: cannot write {what} ({exc.strerror or exc})") from exc


def make_progress(env: Environment, quiet: bool) -> Any:
    from rich.console import Console

    from mcpool_cli.engine.progress import LiveProgress, NullProgress, PlainProgress

    if quiet:
        return NullProgress()
    if env.stderr_isatty:
        return LiveProgress(Console(file=env.stderr))
    return PlainProgress(env.stderr)


def connect(ctx: click.Context, servers: tuple[Any, ...], memory_mb: int) -> tuple[tuple[Any, ...], bool, str]:
    """The servers to use (checked), whether mcpool started them, and their version."""
    from mcpool_cli.engine.server import EmbeddedServer, check_reachable

    servers = servers or servers_from_env()
    if servers:
        return servers, False, ", ".join(sorted({check_reachable(s) for s in servers}))
    embedded = ctx.with_resource(EmbeddedServer(memory_mb=max(256, 2 * memory_mb)))
    return (embedded.address,), True, check_reachable(embedded.address)


def shared_options(schema: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command takes: servers, hang timeout, JSON output, quiet."""
    decorators = [
        click.option("--server", "-s", "servers", type=SERVER, multiple=True,
                     help="memcached HOST:PORT to use instead of the embedded server; repeat for several (pylibmc "
                          "hashes keys across them). Also read from MCPOOL_SERVERS=host:port,host:port."),
        click.option("--hang-timeout", "hang_timeout_s", type=DURATION, default="10s", show_default=True,
                     help="Kill a worker that makes no progress for this long and report it as hung."),
        click.option("--json", "json_path", metavar="FILE", help=f"Write results as JSON ({schema}) to FILE, - for stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output; print only the report."),
        click.option("--threshold", "thresholds", type=THRESHOLD, multiple=True, metavar="EXPR",
                     help="A condition that must hold, k6-style: p99<2ms, get.p99_9<5ms, errors==0, "
                          "ops_per_s>20000, false_misses==0 (units us, ms, s). Repeatable; any that fails "
                          "exits 1."),
        click.option("--junit", "junit_path", metavar="FILE",
                     help="Write a JUnit XML report to FILE: a testcase per verdict and per threshold."),
        click.option("--check-only", is_flag=True, hidden=True,
                     help="Check every input and exit 0 without load (mcpool run checks a scenario's phases so)."),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


@dataclass
class Reported:
    """What a command's session left: where its report goes, and its thresholds judged."""

    console: Any
    thresholds: list[dict[str, Any]]

    def finish(self, ctx: click.Context, code: ExitCode) -> None:
        """Close the report with the thresholds, then exit: any failed threshold makes a clean run exit 1."""
        from mcpool_cli.report.thresholds import render

        if self.thresholds:
            self.console.print(render(self.thresholds))
            if code == ExitCode.OK and not all(result["ok"] for result in self.thresholds):
                code = ExitCode.PROBLEM
        ctx.exit(code)


def check_outputs(ctx: click.Context, kind: str, json_path: str | None, thresholds: tuple[Any, ...],
                  junit_path: str | None, check_only: bool) -> None:
    """The last check before any load: the files can be written, and every threshold names a metric of this
    command. With --check-only (mcpool run checking a scenario's phases), exit 0 here."""
    from mcpool_cli.report.thresholds import check_metrics

    check_json_target(json_path)
    check_json_target(junit_path, "--junit")
    if junit_path == "-":
        raise UsageProblem("--junit needs a file name")
    check_metrics(thresholds, kind)
    if check_only:
        ctx.exit(0)


def run_session(session: Any, env: Environment, quiet: bool, json_path: str | None,
                thresholds: tuple[Any, ...] = (), junit_path: str | None = None) -> Reported:
    """Run a command's session with progress; judge its thresholds; write its JSON and JUnit on every exit
    path. The report goes to stdout, or to stderr when the JSON takes stdout."""
    from rich.console import Console

    from mcpool_cli.report import junit
    from mcpool_cli.report.thresholds import evaluate

    progress = make_progress(env, quiet)
    judged: list[dict[str, Any]] = []
    try:
        session.run(progress)
    finally:
        progress.close()
        document = session.to_json()
        if thresholds:
            judged = document["thresholds"] = evaluate(document, thresholds)
        if json_path:
            write_json(json_path, document, env)
        if junit_path:
            write_atomically(junit_path, junit.render([document]), "--junit", "the JUnit report")
    return Reported(Console(file=env.stderr if json_path == "-" else env.stdout), judged)
