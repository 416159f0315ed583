"""Click parameter types over the pure parsers in `units`, so bad input is one line and exit 2."""

from __future__ import annotations

from typing import Any, Callable

import click

from mcpool_cli import units
from mcpool_cli.errors import UsageProblem
from mcpool_cli.engine.server import parse_server
from mcpool_cli.report.thresholds import parse_threshold


class ParsedType(click.ParamType):
    """A click type that delegates to a parser raising UsageProblem."""

    def __init__(self, name: str, parser: Callable[[str], Any]) -> None:
        self.name = name
        self._parser = parser

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except UsageProblem as exc:
            self.fail(str(exc), param, ctx)


DURATION = ParsedType("duration", units.parse_duration_s)
VALUE_SIZE = ParsedType("size", units.parse_value_size)
RATIO = ParsedType("get:set", units.parse_ratio)
MIX = ParsedType("op=weight,...", units.parse_mix)
RATES = ParsedType("ops/s[,ops/s...]", units.parse_rates)
BEHAVIOR = ParsedType("key=value", units.parse_behavior)
SERVER = ParsedType("host:port", parse_server)
THRESHOLD = ParsedType("expr", parse_threshold)
