"""Pieces every command shares: servers, progress, the JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Callable

import click

from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import UsageProblem
from mcpool_cli.options import DURATION, SERVER

STRATEGY_HELP = ("Client strategy: shared, fifo, thread-mapped, per-thread, all, or module:callable for your own pool "
                 "(called with the master pylibmc.Client and the thread count; must return an object with a "
                 "reserve() context manager). Repeatable. Default: fifo, thread-mapped and per-thread.")


def check_json_target(path: str | None) -> None:
    """Fail before any load if the results could not be written where asked."""
    if path in (None, "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageProblem(f"--json {path}: is a folder; give a file name")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageProblem(f"--json {path}: folder {folder} does not exist or is not writable")


def write_json(path: str, document: dict[str, Any], env: Environment) -> None:
    """Write the result document to PATH (atomically: a reader never sees half a file) or to stdout for `-`."""
    text = json.dumps(document, indent=2) + "\n"
    if path == "-":
        env.stdout.write(text)
        env.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, prefix=".mcpool-", suffix=".tmp") as handle:
            temporary = handle.name
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError, NameError):
            os.unlink(temporary)
        raise UsageProblem(f"--json {path}: cannot write the results ({exc.strerror or exc})") from exc


def make_progress(env: Environment, quiet: bool) -> Any:
    from rich.console import Console

    from mcpool_cli.progress import LiveProgress, NullProgress, PlainProgress

    if quiet:
        return NullProgress()
    if env.stderr_isatty:
        return LiveProgress(Console(file=env.stderr))
    return PlainProgress(env.stderr)


def connect(ctx: click.Context, servers: tuple[Any, ...], memory_mb: int) -> tuple[tuple[Any, ...], bool, str]:
    """The servers to use (checked), whether mcpool started them, and their version."""
    from mcpool_cli.server import EmbeddedServer, check_reachable

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
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def run_session(session: Any, env: Environment, quiet: bool, json_path: str | None) -> Any:
    """Run a command's session with progress, write its JSON on every exit path, and return the console
    the report goes to (stderr when the JSON takes stdout)."""
    from rich.console import Console

    progress = make_progress(env, quiet)
    try:
        session.run(progress)
    finally:
        progress.close()
        if json_path:
            write_json(json_path, session.to_json(), env)
    return Console(file=env.stderr if json_path == "-" else env.stdout)
