"""The `mcpool` command line: parse, build a plan, call the library, render, map errors to exit codes."""

from __future__ import annotations

import sys
from typing import Any

import click

from mcpool_cli import __version__
from mcpool_cli.environment import Environment, guarded_streams
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.kinds import registered
from mcpool_cli.report.command import compare, report
from mcpool_cli.report.merge import merge
from mcpool_cli.scenarios.command import run, scenarios
from mcpool_cli.strategies_command import strategies


class McpoolGroup(click.Group):
    """Turns every user-facing failure into one line on stderr and the documented exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        with guarded_streams() as streams:  # stdout full, closed, a broken pipe or ASCII-only: no traceback
            code = streams.settle(self.exit_code(*args, **kwargs))
        sys.exit(code)

    def exit_code(self, *args: Any, **kwargs: Any) -> int:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)  # a command's ctx.exit(N) comes back as N
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # bare `mcpool`: just the help
            click.echo(exc.format_message(), err=True)
            return ExitCode.USAGE
        except click.ClickException as exc:
            click.echo(f"mcpool: error: {exc.format_message()}", err=True)
            return ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code
        except UsageProblem as exc:
            click.echo(f"mcpool: error: {exc}", err=True)
            return ExitCode.USAGE
        except (KeyboardInterrupt, click.Abort):
            click.echo("mcpool: interrupted", err=True)
            return ExitCode.INTERRUPTED
        return code if isinstance(code, int) else ExitCode.OK


@click.group(cls=McpoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcpool")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Load-test and diagnose how a threaded Python program shares pylibmc clients.

    \b
    Example:
      mcpool bench --strategy fifo --threads 12
    """
    ctx.obj = ctx.obj or Environment()


def main() -> None:
    """Console-script entry point; SIGTERM and SIGHUP clean up like Ctrl-C (engine/interrupts.py)."""
    from mcpool_cli.engine.interrupts import install, settle

    install()
    try:
        cli(prog_name="mcpool")
    finally:
        settle()


for kind in registered():  # bench and every check: each kind's command.py holds its click command
    cli.add_command(getattr(kind.module("command"), kind.command.replace("-", "_")))
for command in (run, scenarios, strategies, report, compare, merge):
    cli.add_command(command)
