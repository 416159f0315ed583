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
import stat
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
COMMON = ("servers", "json_path", "quiet", "thresholds", "junit_path", "html_path")  # what run_command takes off params

STRATEGY_HELP = ("Client strategy: shared, fifo, thread-mapped, per-thread, all, or module:callable for your own pool "
                 "(called with the master pylibmc.Client and the thread count; must return an object with a "
                 "reserve() context manager). Repeatable. Default: fifo, thread-mapped and per-thread.")

OPS_PER_REQUEST = click.option(
    "--ops-per-request", type=click.IntRange(1, 1_000_000), default=10, show_default=True,
    help="Framework strategies (django-*, flask-memcached): ops per request, after which the framework's "
         "end-of-request step runs (Django's request_finished, Flask's app-context teardown).")


@dataclass(frozen=True)
class Outputs:
    """Where a command's results go, and the thresholds judged on them."""

    json_path: str | None = None
    junit_path: str | None = None
    quiet: bool = False
    thresholds: tuple[Any, ...] = ()
    html_path: str | None = None

    def check(self, kind: Kind) -> None:
        """Before any load: the files can be written, and every threshold names a metric of this kind."""
        from mcpool_cli.report.thresholds import check_metrics

        check_targets(self.json_path, self.junit_path, self.html_path)
        check_metrics(self.thresholds, kind)


def split_params(params: dict[str, Any]) -> tuple[tuple[Any, ...], Outputs, dict[str, Any]]:
    """(servers, outputs, the kind's own params) from a command's click params; servers from MCPOOL_SERVERS
    when none was given."""
    own = {key: value for key, value in params.items() if key not in COMMON}
    outputs = Outputs(params.get("json_path"), params.get("junit_path"), bool(params.get("quiet")),
                      tuple(params.get("thresholds") or ()), params.get("html_path"))
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
    document, console, failures = run_session(session, env, outputs)
    if session.interrupted and not session.results:
        env.stderr.write("mcpool: interrupted before any run started\n")
    code = report(kind, session, document, console)
    code = interrupted_late(session, document, env, outputs) or code
    ctx.exit(tell_write_failures(env, failures, code))


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
    fd = descriptor_of(path)
    if fd is not None:  # /dev/stdout, /dev/fd/N: written to as it is
        try:
            os.fstat(fd)
        except OSError as exc:
            raise UsageProblem(f"{option} {path}: descriptor {fd} is not open") from exc
        return
    real = os.path.realpath(path)  # a symlink is written through
    if os.path.isdir(real):
        raise UsageProblem(f"{option} {path}: is a folder; give a file name")
    mode = existing_mode(real)
    if mode is not None and stat.S_ISSOCK(mode):
        raise UsageProblem(f"{option} {path}: is a socket; give a file name")
    if mode is not None and not stat.S_ISREG(mode):  # a device or a FIFO: written to as it is
        if not os.access(real, os.W_OK):
            raise UsageProblem(f"{option} {path}: is not writable")
        return
    folder = os.path.dirname(real)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageProblem(f"{option} {path}: folder {folder} does not exist or is not writable")


def check_targets(json_path: str | None, junit_path: str | None, html_path: str | None = None) -> None:
    """The output files can be written, no two are the same file, and --html has what it draws with."""
    targets = [("--json", json_path), ("--junit", junit_path), ("--html", html_path)]
    for option, path in targets:
        check_json_target(path, option)
        if option != "--json" and path == "-":
            raise UsageProblem(f"{option} needs a file name")
    given = [(option, path) for option, path in targets if path]
    for index, (option, path) in enumerate(given):
        for other, other_path in given[index + 1:]:
            if same_target(path, other_path):
                raise UsageProblem(f"{option} {path} and {other} {other_path} are the same file; give two")
    if html_path:
        from mcpool_cli.report.html import plotly_js

        plotly_js()  # a UsageProblem now, before any load, when plotly is missing


def descriptor_of(path: str) -> int | None:
    """The open descriptor a path such as /dev/stdout, /dev/fd/3 or /proc/self/fd/3 (or a symlink to one)
    names, else None."""
    current = os.path.abspath(path)
    own_fd = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
    fd_folders = (os.path.realpath("/proc/self/fd"), f"/proc/{os.getpid()}/fd")
    for _ in range(40):
        if current in own_fd:
            return own_fd[current]
        folder, name = os.path.split(current)
        folder = os.path.realpath(folder)
        if folder in fd_folders and name.isdigit():
            return int(name)
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(folder, os.readlink(current)))
    return None


def existing_mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def same_target(first: str, second: str) -> bool:
    """Whether two output paths would write the same file (a character device such as /dev/null may take both)."""
    fds = tuple(1 if path == "-" else descriptor_of(path) for path in (first, second))
    if fds != (None, None):
        return fds[0] == fds[1]
    real = os.path.realpath(first)
    mode = existing_mode(real)
    if mode is not None and stat.S_ISCHR(mode):
        return False
    if real == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def to_stdout(path: str | None) -> bool:
    """Whether --json PATH takes stdout (`-`, /dev/stdout): the report then goes to stderr."""
    return path == "-" or (bool(path) and descriptor_of(path) == 1)  # type: ignore[arg-type]


def write_json(path: str, document: dict[str, Any], env: Environment) -> str:
    """Write the result document to PATH or to stdout for `-`; "" when written, else the line saying why not."""
    return write_output(path, (json.dumps(document, indent=2) + "\n").encode(), "--json", "the results", env)


def write_output(path: str, data: bytes, option: str, what: str, env: Environment) -> str:
    """Write DATA where PATH points: a regular file (or a new one) through a temporary file and a rename, so that
    a reader never sees half of it; a device, a FIFO or an open descriptor (/dev/stdout, /dev/fd/N) as it is; a
    symlink's target. Returns "" when written, else one line naming OPTION, PATH and why (the run goes on)."""
    try:
        fd = -1 if path == "-" else descriptor_of(path)
        if fd in (-1, 1):
            env.stdout.write(data.decode())
            env.stdout.flush()  # a failure here is stdout's, told once at the end
        elif fd is not None:
            if fd == 2:
                env.stderr.flush()
            write_all(fd, data)
        else:
            real = os.path.realpath(path)
            mode = existing_mode(real)
            if mode is None or stat.S_ISREG(mode):
                replace_file(real, data, mode)
            else:
                target = os.open(real, os.O_WRONLY)
                try:
                    write_all(target, data)
                finally:
                    os.close(target)
    except OSError as exc:
        return f"{option} {path}: cannot write {what} ({exc.strerror or exc})"
    return ""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_file(path: str, data: bytes, mode: int | None) -> None:
    """Write PATH through a temporary file in its folder and a rename; with the permissions (and, when allowed,
    the owner) open() would have left it: an existing file's own, else 0666 less the umask."""
    folder = os.path.dirname(path)
    temporary = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False, prefix=".mcpool-", suffix=".tmp") as handle:
            temporary = handle.name
            handle.write(data)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)  # not the temporary file's 0600
        else:
            old = os.stat(path)
            with contextlib.suppress(OSError):
                os.chown(temporary, old.st_uid, old.st_gid)
            os.chmod(temporary, stat.S_IMODE(old.st_mode))
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise


def tell_write_failures(env: Environment, failures: list[str], code: int) -> int:
    """One line on stderr per output that could not be written; exit 2 for them unless the run's code is worse."""
    for line in failures:
        env.stderr.write(f"mcpool: error: {line}\n")
    env.stderr.flush()
    return ExitCode.USAGE if failures and code == ExitCode.OK else code


def make_progress(env: Environment, quiet: bool) -> Any:
    from rich.console import Console

    from mcpool_cli.engine.progress import LiveProgress, NullProgress, PlainProgress

    if quiet:
        return NullProgress()
    if env.stderr_isatty:
        return LiveProgress(Console(file=env.stderr))
    return PlainProgress(env.stderr)


def run_session(session: Any, env: Environment, outputs: Outputs) -> tuple[dict[str, Any], Any, list[str]]:
    """Run a session with progress; judge its thresholds; write its JSON and JUnit on every exit path.
    Returns its document, the console its report goes to (stdout, or stderr when the JSON takes stdout) and a
    line for each output that could not be written (told at once when the run itself raised)."""
    from rich.console import Console

    progress = make_progress(env, outputs.quiet)
    failures: list[str] = []
    finished = False
    try:
        session.run(progress)
        finished = True
    finally:
        progress.close()
        document, failures = save(session, env, outputs)
        if not finished:
            tell_write_failures(env, failures, ExitCode.OK)
    return document, Console(file=env.stderr if to_stdout(outputs.json_path) else env.stdout), failures


def save(session: Any, env: Environment, outputs: Outputs) -> tuple[dict[str, Any], list[str]]:
    """The session's judged document, written as JSON and JUnit when asked for, and a line for each output that
    could not be written; a Ctrl-C noted so far (see engine/interrupts.py) makes it interrupted first."""
    from mcpool_cli.engine import interrupts
    from mcpool_cli.report import junit

    if interrupts.received():
        session.interrupted = True
    document = judged_document(session, outputs)
    failures = [write_json(outputs.json_path, document, env) if outputs.json_path else "",
                write_output(outputs.junit_path, junit.render([document]), "--junit", "the JUnit report", env)
                if outputs.junit_path else ""]
    failures += [write_output(path, text, option, what, env) for path, text, option, what in session.other_outputs()]
    if outputs.html_path:
        failures.append(write_html(outputs.html_path, document, env))
    return document, [line for line in failures if line]


def write_html(path: str, document: dict[str, Any], env: Environment) -> str:
    """The document's HTML report written to PATH; "" when written, else the line saying why not."""
    from mcpool_cli.report.html import html_of

    try:
        page = html_of(document, path)
    except UsageProblem as exc:  # a document this mcpool cannot read back: a defect, told without a traceback
        return f"--html {path}: cannot draw the report ({exc})"
    return write_output(path, page, "--html", "the HTML report", env)


def judged_document(session: Any, outputs: Outputs) -> dict[str, Any]:
    """The session's document, with its thresholds judged on it."""
    from mcpool_cli.report.thresholds import evaluate

    document = session.to_json()
    if outputs.thresholds:
        document["thresholds"] = evaluate(document, outputs.thresholds)
    return document


THRESHOLD_EXAMPLES = "p99<2ms, get.p99_9<5ms, errors==0, ops_per_s>20000, false_misses==0"


def shared_options(schema: str, threshold_examples: str = THRESHOLD_EXAMPLES
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command takes: servers, hang timeout, JSON output, quiet; `threshold_examples`: metrics of
    the command's own, for --threshold's help."""
    decorators = [
        click.option("--server", "-s", "servers", type=SERVER, multiple=True,
                     help="memcached HOST:PORT to use instead of the embedded server; repeat for several (pylibmc "
                          "hashes keys across them). Also read from MCPOOL_SERVERS=host:port,host:port."),
        click.option("--hang-timeout", "hang_timeout_s", type=DURATION, default="10s", show_default=True,
                     help="Kill a worker that makes no progress for this long and report it as hung."),
        click.option("--json", "json_path", metavar="FILE", help=f"Write results as JSON ({schema}) to FILE, - for stdout."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output; print only the report."),
        click.option("--threshold", "thresholds", type=THRESHOLD, multiple=True, metavar="EXPR",
                     help=f"A condition that must hold, k6-style: {threshold_examples} (units us, ms, s). "
                          "Repeatable; any that fails exits 1."),
        click.option("--junit", "junit_path", metavar="FILE",
                     help="Write a JUnit XML report to FILE: a testcase per verdict and per threshold."),
        click.option("--html", "html_path", metavar="FILE",
                     help="Write a self-contained HTML report with charts to FILE (opens offline)."),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply
