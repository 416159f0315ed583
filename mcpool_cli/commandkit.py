"""What every command's click layer shares: the common options, and the one flow each command runs.

A command is `validate(params) -> options` (pure: raises UsageProblem) and `start(options, servers, enter)`
(connects, returns the session); `run_command` does the rest the same way for every kind: checks the output
files and thresholds, runs the session with progress, writes JSON and JUnit on every exit path, renders the
report with the kind's renderer and exits with the session's code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, TypeVar

import click

from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.kinds import Kind
from mcpool_cli.options import DURATION, SERVER, THRESHOLD

T = TypeVar("T")
Enter = Callable[[ContextManager[T]], T]  # ctx.with_resource, or an ExitStack's enter_context
COMMON = ("servers", "json_path", "quiet", "thresholds", "junit_path")  # what run_command takes off params

STRATEGY_HELP = ("Client strategy: shared, fifo, thread-mapped, per-thread, all, or module:callable for your own pool "
                 "(called with the master pylibmc.Client and the thread count; must return an object with a "
                 "reserve() context manager). Repeatable. Default: fifo, thread-mapped and per-thread.")


@dataclass(frozen=True)
class Outputs:
    """Where a command's results go, and the thresholds judged on them."""

    json_path: str | None = None
    junit_path: str | None = None
    quiet: bool = False
    thresholds: tuple[Any, ...] = ()

    def check(self, kind: Kind) -> None:
        """Before any load: the files can be written, and every threshold names a metric of this kind."""
        from mcpool_cli.report.thresholds import check_metrics

        check_json_target(self.json_path)
        check_json_target(self.junit_path, "--junit")
        if self.junit_path == "-":
            raise UsageProblem("--junit needs a file name")
        check_metrics(self.thresholds, kind)


def split_params(params: dict[str, Any]) -> tuple[tuple[Any, ...], Outputs, dict[str, Any]]:
    """(servers, outputs, the kind's own params) from a command's click params; servers from MCPOOL_SERVERS
    when none was given."""
    own = {key: value for key, value in params.items() if key not in COMMON}
    outputs = Outputs(params.get("json_path"), params.get("junit_path"), bool(params.get("quiet")),
                      tuple(params.get("thresholds") or ()))
    return tuple(params.get("servers") or ()) or servers_from_env(), outputs, own


def run_command(ctx: click.Context, kind: Kind, params: dict[str, Any]) -> None:
    """The body of every bench and check command."""
    from mcpool_cli.engine import interrupts

    interrupts.begin()
    env: Environment = ctx.obj
    servers, outputs, own = split_params(params)
    command = kind.module("command")
    options = command.validate(own, servers)
    outputs.check(kind)
    session = start_session(kind, options, servers, ctx.with_resource)
    document, console = run_session(session, env, outputs)
    if session.interrupted and not session.results:
        env.stderr.write("mcpool: interrupted before any run started\n")
    code = report(kind, session, document, console)
    ctx.exit(interrupted_late(session, document, env, outputs) or code)


def start_session(kind: Kind, options: Any, servers: tuple[Any, ...], enter: Enter[Any]) -> Any:
    """The kind's session, connected; on Ctrl-C while connecting (or before), one that ran nothing and says
    it was interrupted (what `enter` started is stopped by its owner)."""
    from mcpool_cli.engine import interrupts

    try:
        with interrupts.armed():
            return kind.module("command").start(options, servers, enter)
    except KeyboardInterrupt:
        session_class = kind.module("session").from_json.__self__  # each session module's from_json is its class's
        return session_class.cut_short(options, servers)


def interrupted_late(session: Any, document: dict[str, Any], env: Environment, outputs: Outputs) -> ExitCode | None:
    """A Ctrl-C that came after the document was made (while reporting): 130, and the files say interrupted.
    None when there was none."""
    from mcpool_cli.engine import interrupts

    if not interrupts.received():
        return None
    if not document.get("interrupted"):  # stdout's copy has gone out: only files are written again
        session.interrupted = True
        files_only = None if outputs.json_path == "-" else outputs.json_path
        save(session, env, dataclasses.replace(outputs, json_path=files_only))
    return ExitCode.INTERRUPTED


def report(kind: Kind, session: Any, document: dict[str, Any], console: Any) -> ExitCode:
    """Print the kind's report and the thresholds; the exit code (a failed threshold makes a clean run 1)."""
    from mcpool_cli.report.thresholds import render

    kind.module("render").render(session, console)
    code = session.exit_code()
    judged = document.get("thresholds") or []
    if judged:
        console.print(render(judged))
        if code == ExitCode.OK and not all(result["ok"] for result in judged):
            code = ExitCode.PROBLEM
    return code


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


def run_session(session: Any, env: Environment, outputs: Outputs) -> tuple[dict[str, Any], Any]:
    """Run a session with progress; judge its thresholds; write its JSON and JUnit on every exit path.
    Returns its document and the console its report goes to: stdout, or stderr when the JSON takes stdout."""
    from rich.console import Console

    progress = make_progress(env, outputs.quiet)
    try:
        session.run(progress)
    finally:
        progress.close()
        document = save(session, env, outputs)
    return document, Console(file=env.stderr if outputs.json_path == "-" else env.stdout)


def save(session: Any, env: Environment, outputs: Outputs) -> dict[str, Any]:
    """The session's judged document, written as JSON and JUnit when asked for; a Ctrl-C noted so far (see
    engine/interrupts.py) makes it interrupted first."""
    from mcpool_cli.engine import interrupts
    from mcpool_cli.report import junit

    if interrupts.received():
        session.interrupted = True
    document = judged_document(session, outputs)
    if outputs.json_path:
        write_json(outputs.json_path, document, env)
    if outputs.junit_path:
        write_atomically(outputs.junit_path, junit.render([document]), "--junit", "the JUnit report")
    return document


def judged_document(session: Any, outputs: Outputs) -> dict[str, Any]:
    """The session's document, with its thresholds judged on it."""
    from mcpool_cli.report.thresholds import evaluate

    document = session.to_json()
    if outputs.thresholds:
        document["thresholds"] = evaluate(document, outputs.thresholds)
    return document


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
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply
