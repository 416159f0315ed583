"""`mcpool strategies`: every strategy mcpool knows, what it is, which package it needs and whether it is here."""

from __future__ import annotations

import click

from mcpool_cli.environment import Environment


def strategy_rows() -> list[tuple[str, str, str, str]]:
    """(name, library, installed, what it is) for pylibmc's strategies, then every other library's."""
    from mcpool_cli.engine.families import PYLIBMC, REGISTRY
    from mcpool_cli.engine.strategies import BUILTIN, DESCRIPTIONS

    def here(family: object) -> str:
        version = family.version()  # type: ignore[attr-defined]
        return version if version else f"no: {family.pip}"  # type: ignore[attr-defined]

    rows = [(name, "pylibmc", here(PYLIBMC), DESCRIPTIONS[name]) for name in BUILTIN]
    rows += [(item.name, item.family.name, here(item.family), item.summary) for item in REGISTRY]
    return rows


@click.command("strategies")
@click.pass_context
def strategies(ctx: click.Context) -> None:
    """List every client strategy: what it is, the package it needs, and whether that is installed.

    Any of them goes to --strategy of bench and the checks, and to a scenario's strategies; `all` means
    pylibmc's four. module:callable names your own pool (see --help of bench).

    \b
    Examples:
      mcpool strategies
      mcpool bench --strategy per-thread --strategy pymemcache-pooled --threads 12
    """
    from rich.console import Console
    from rich.table import Table

    env: Environment = ctx.obj
    table = Table(box=None, pad_edge=False)
    for header in ("strategy", "library", "installed", "what it is"):
        table.add_column(header, style="bold" if header == "strategy" else None, no_wrap=header != "what it is")
    for row in strategy_rows():
        table.add_row(*row)
    console = Console(file=env.stdout)
    console.print(table)
