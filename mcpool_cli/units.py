"""Pure parsers for the textual option values: durations, sizes, ratios, behaviors."""

from __future__ import annotations

import copy
import math
import re
from typing import Any, Iterable

from mcpool_cli.errors import UsageProblem

MAX_VALUE_BYTES = 1_000_000
LATENCY_UNITS = (("s", 1_000_000.0), ("ms", 1000.0), ("µs", 1.0))  # (name, µs in one)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$")
_SECONDS_PER_UNIT = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration_s(text: str) -> float:
    """Parse `500ms`, `10s`, `2m`, `1.5` (seconds) into seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise UsageProblem(f"{text!r} is not a duration; use e.g. 500ms, 10s or 2m")
    return float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]


_RATE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")
_RATE_UNITS = {"": 1.0, "k": 1e3, "m": 1e6}


def parse_rates(text: str) -> tuple[float, ...]:
    """Parse `5000`, `20k`, `1.5k` or a list `2k,5k,10k` (a sweep) into ops per second, lowest first."""
    rates = []
    for part in str(text).split(","):
        match = _RATE.match(part)
        if not match:
            raise UsageProblem(f"{part.strip()!r} is not a rate; use ops per second such as 5000, 20k or 2k,5k,10k")
        rate = float(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
        if not rate > 0:
            raise UsageProblem(f"{part.strip()!r}: a rate must be above 0 ops per second")
        rates.append(rate)
    if len(set(rates)) != len(rates):
        raise UsageProblem(f"{text!r} names a rate twice; give each rate of a sweep once")
    return tuple(sorted(rates))


def parse_value_size(text: str) -> tuple[int, int]:
    """Parse `100` or a range `32-4096` into (min_bytes, max_bytes)."""
    match = re.match(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$", str(text))
    if not match:
        raise UsageProblem(f"{text!r} is not a value size; use bytes like 100 or a range like 32-4096")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low < 1 or high < low:
        raise UsageProblem(f"value size {text!r} must be at least 1 byte, and a range must go from low to high")
    if high > MAX_VALUE_BYTES:
        raise UsageProblem(f"value size {text!r} is too close to memcached's default 1 MiB item limit "
                           f"(key and item header count too); use at most {MAX_VALUE_BYTES:,}")
    return low, high


def parse_ratio(text: str) -> tuple[int, int]:
    """Parse `GET:SET` such as `9:1` into (get_weight, set_weight)."""
    match = re.match(r"^\s*(\d+)\s*:\s*(\d+)\s*$", str(text))
    if not match or int(match.group(1)) + int(match.group(2)) == 0:
        raise UsageProblem(f"{text!r} is not a GET:SET ratio; use e.g. 9:1, 1:1 or 0:1")
    return int(match.group(1)), int(match.group(2))


MIX_OPS = ("get", "get_multi", "set", "delete")


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """Parse an op mix such as `get=7,get_multi=2,set=1` into (op, weight) pairs."""
    pairs: list[tuple[str, int]] = []
    for part in str(text).split(","):
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or name not in MIX_OPS or not raw.strip().isdigit():
            raise UsageProblem(f"{text!r} is not an op mix; use OP=WEIGHT,... with ops {', '.join(MIX_OPS)} "
                               "(e.g. get=7,get_multi=2,set=1)")
        if name in dict(pairs):
            raise UsageProblem(f"{text!r}: {name} is given twice")
        pairs.append((name, int(raw)))
    if sum(weight for _, weight in pairs) == 0:
        raise UsageProblem(f"{text!r}: the weights add up to 0")
    return tuple(pairs)


def parse_behavior(text: str) -> tuple[str, int | str]:
    """Parse a pylibmc behavior `KEY=VALUE`; numbers and true/false become ints."""
    name, sep, raw = str(text).partition("=")
    if not sep or not name.strip() or not raw.strip():
        raise UsageProblem(f"{text!r} is not a behavior; use KEY=VALUE such as tcp_nodelay=1")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "yes", "on"):
        return name.strip(), 1
    if lowered in ("false", "no", "off"):
        return name.strip(), 0
    try:
        return name.strip(), int(raw)
    except ValueError:
        return name.strip(), raw


def format_duration_us(value_us: float) -> str:
    """Render a latency with a unit chosen for its size (µs, ms or s), 3 significant digits."""
    if value_us >= 1_000_000:
        return f"{value_us / 1_000_000:.3g} s"
    if value_us >= 1000:
        return f"{value_us / 1000:.3g} ms"
    return f"{value_us:.3g} µs"


def format_seconds(value_s: float | None) -> str:
    """Render a time as check-stale prints it: ms under a second, else s; `never` for None (no recovery)."""
    if value_s is None:
        return "never"
    return f"{value_s * 1000:,.0f} ms" if value_s < 1 else f"{value_s:,.2f} s"


def format_number(value: float) -> str:
    """At least 3 significant digits, never in scientific notation."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    if value <= 0:
        return "0"
    return f"{value:.{2 - math.floor(math.log10(value))}f}"


def unit_for(value_us: float | None) -> tuple[str, float]:
    """The largest unit in which `value_us` is at least 1."""
    if value_us is None:
        return LATENCY_UNITS[-1]
    return next(((name, scale) for name, scale in LATENCY_UNITS if value_us >= scale), LATENCY_UNITS[-1])


def pick_unit(values_us: Iterable[float | None]) -> tuple[str, float]:
    """One unit for a whole column, chosen by the column's median value."""
    present = sorted(v for v in values_us if v is not None)
    return unit_for(present[len(present) // 2] if present else None)


# ---------------------------------------------------------------- text from outside, shown as text

_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # C0, DEL, C1 and lone surrogates
_CONTROL_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # the same, tab and newline kept


def printable(value: object, lines: bool = False) -> str:
    """Text from outside (a strategy name, a saved file, a server's reply, a worker's stderr) made safe to print:
    every control character (ESC, BEL, a carriage return, …) and lone surrogate shown as `\\x1b`, `\\ud800`, so
    nothing reaches the terminal as a command. `lines`: keep newlines and tabs. Rich markup is not interpreted
    in a Text; use `outside` for a Text, or rich.markup.escape where a markup string is needed."""
    pattern = _CONTROL_LINES if lines else _CONTROL_LINE
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       str(value))


def outside(value: object, style: str = "", lines: bool = False) -> Any:
    """A rich Text of outside text: no markup interpreted, no control character printed."""
    from rich.text import Text

    return Text(printable(value, lines), style=style)


# ---------------------------------------------------------------- tables that fit a narrow terminal


class Fitted:
    """A rich Table that fits the width it is printed in, a number never cut to `26…`: when it is too wide,
    headers wrap at their spaces and text columns (no_wrap=False) fold, then the columns headed `drop` (by the
    header's first word) go, in that order, until the numbers (no_wrap=True columns) fit whole."""

    TEXT_MIN = 5  # a text column is counted this wide at least (or its longest word, when shorter)

    def __init__(self, table: Any, drop: Iterable[str] = ()) -> None:
        self.table = table
        self.drop = tuple(drop)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        width = options.max_width
        if Measurement.get(console, options.update_width(10_000), self.table).maximum <= width:
            yield self.table
            return
        table = copy.copy(self.table)
        table.columns = [copy.copy(column) for column in table.columns]
        for column in table.columns:
            column.min_width = None
            if isinstance(column.header, str):
                column.header = column.header.replace(" ", "\n")
            if not column.no_wrap:
                column.overflow = "fold"
        dropped = []
        for name in (None, *self.drop):
            if name is not None:
                kept = [c for c in table.columns if header_word(c.header) != name]
                dropped += [" ".join(header_text(c.header).split()) for c in table.columns if c not in kept]
                table.columns = kept or table.columns
            for index, column in enumerate(table.columns):
                column._index = index
            if self.needed(table, console, options) <= width:
                break
        yield table
        if dropped:
            from rich.text import Text

            yield Text(f"(too narrow for {', '.join(dropped)})", style="dim")

    def needed(self, table: Any, console: Any, options: Any) -> int:
        """The width the numbers need whole, with a little for each text column, padding and edges."""
        from rich.measure import Measurement

        total = table._extra_width
        for column in table.columns:
            cells = [column.header, *column._cells] if table.show_header else list(column._cells)
            sizes = [Measurement.get(console, options.update_width(10_000), cell) for cell in cells]
            total += (max((s.maximum for s in sizes), default=0) if column.no_wrap
                      else min(max((s.minimum for s in sizes), default=0), self.TEXT_MIN))
            total += table._get_padding_width(column._index)
        return total


def header_text(header: Any) -> str:
    return header.plain if hasattr(header, "plain") else str(header)


def header_word(header: Any) -> str:
    """A column's header up to its first space or newline: `p99.9 ms` → `p99.9`."""
    text = header_text(header)
    return text.split(None, 1)[0] if text.strip() else ""


SPARKS = "▁▂▃▄▅▆▇█"
TIMELINE_WIDTH = 48  # marks at most in a sparkline: with its label and range, a timeline fits 80 columns


def sparkline(values: list[float | None], log: bool = False) -> Any:
    """One character per value, from ▁ to █, on a scale from 0 (or, with `log`, the least value) to the
    greatest; a missing value is a dim dot, a zero a blank (a stall shows as a gap)."""
    from rich.text import Text  # rich loads with a report, not with `mcpool --help`

    present = [v for v in values if v]
    text = Text()
    if not present:
        return text.append("·" * len(values), style="dim")
    top, bottom = max(present), (min(present) if log else 0.0)
    for value in values:
        if value is None:
            text.append("·", style="dim")
        elif value == 0:
            text.append(" ")
        else:
            if log:
                share = 0.0 if top == bottom else math.log(value / bottom) / math.log(top / bottom)
            else:
                share = value / top
            text.append(SPARKS[min(len(SPARKS) - 1, int(share * len(SPARKS)))], style="cyan")
    return text


def format_seconds_short(value_s: float) -> str:
    return f"{value_s:g} s" if value_s < 120 else f"{value_s / 60:g} min"


def timeline_marks(rows: list[dict[str, Any]]) -> tuple[int, list[list[dict[str, Any]]]]:
    """Intervals of a timeline's JSON grouped into at most TIMELINE_WIDTH marks: (intervals a mark, the marks)."""
    group = -(-len(rows) // TIMELINE_WIDTH)
    return group, [rows[i:i + group] for i in range(0, len(rows), group)]


def per_second(marks: list[list[dict[str, Any]]], key: str) -> list[float]:
    """A count of the intervals (`ops`, `failed_ops`) per second, per mark."""
    return [sum(row[key] for row in mark) / sum(row["length_s"] for row in mark) for mark in marks]


def worst_p99(marks: list[list[dict[str, Any]]]) -> list[float | None]:
    """The highest p99 of each mark's intervals in µs (None when nothing succeeded in it)."""
    return [max((row["latency_us"]["p99"] for row in mark if row["latency_us"]["p99"] is not None), default=None)
            for mark in marks]


def sparkline_rows(rows: list[tuple[str, Any, str]]) -> Any:
    """A borderless table of (label, sparkline, legend) rows."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(no_wrap=True, style="dim")
    table.add_column(no_wrap=True, overflow="crop")
    table.add_column(no_wrap=True, style="dim")
    for row in rows:
        table.add_row(*row)
    return table


def p99_spread(p99s: list[float | None], none: str) -> str:
    known = [p for p in p99s if p is not None]
    return f"{format_duration_us(min(known))}–{format_duration_us(max(known))}" if known else none
