"""Scenarios: a TOML file naming the commands to run, each with its options and thresholds.

```toml
description = "one line for `mcpool scenarios`"
servers = ["127.0.0.1:11211"]          # optional; else MCPOOL_SERVERS, else the embedded memcached

[bench]                                # and/or [races], [leaks], [stale], [failover]
strategies = ["fifo", "per-thread"]
threads = 12
duration = "10s"
mix = { get = 8, set = 1, get_multi = 1 }
behaviors = { tcp_nodelay = 1 }
thresholds = ["p99<2ms", "errors==0"]
```

A section's keys are its command's options, spelled with underscores (`--pool-size` is `pool_size`,
`--duration` is `duration`, `--strategy` is `strategies`). The file is checked whole, against the commands'
own option types, before any load: a bad key or value is exit 2 naming the file, the key and what it expects.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import Kind, registered
from mcpool_cli.report.thresholds import check_metrics, parse_threshold

NOT_IN_FILES = ("json_path", "quiet", "junit_path", "html_path", "servers", "hdr_log", "metrics_port")  # set by `mcpool run` itself
RENAMED = {"strategies": "strategies", "behaviors": "behaviors", "duration": "duration_s", "warmup": "warmup_s",
           "hang_timeout": "hang_timeout_s", "outage": "outage_s", "idle_timeout": "idle_timeout_s",
           "before": "before_s", "after": "after_s", "recover_within": "recover_within_s", "rate": "rates", "interval": "interval_s"}


def top_keys() -> tuple[str, ...]:
    return ("description", "servers", *(kind.name for kind in registered()))


@dataclass(frozen=True)
class Phase:
    kind: Kind  # its section is the kind's name: [bench], [races], [leaks], [stale], [failover]
    args: tuple[str, ...]  # the command's options, as on the command line
    thresholds: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)  # the same, parsed by the command's click options

    @property
    def section(self) -> str:
        return self.kind.name

    @property
    def command(self) -> str:
        return self.kind.command


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str
    servers: tuple[str, ...]
    phases: tuple[Phase, ...]


def shipped_folder() -> Path:
    return Path(str(resources.files("mcpool_cli") / "scenarios"))


def shipped() -> list[tuple[str, str]]:
    """(name, description) of every scenario that comes with mcpool."""
    found = []
    for path in sorted(shipped_folder().glob("*.toml")):
        try:
            description = tomllib.loads(path.read_text()).get("description", "")
        except tomllib.TOMLDecodeError:
            description = "(unreadable)"
        found.append((path.stem, description))
    return found


def locate(spec: str) -> Path:
    """A path to a file, or the name of a shipped scenario."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        raise UsageProblem(f"scenario {spec!r} is a folder; give a scenario file (.toml) or the name of a shipped one")
    if path.exists():  # a device, a FIFO, a socket: nothing a scenario is read from
        raise UsageProblem(f"scenario {spec!r} is not a regular file; give a scenario file (.toml) or the name of a "
                           "shipped one")
    candidate = shipped_folder() / f"{spec}.toml"
    if "/" not in spec and candidate.is_file():
        return candidate
    names = ", ".join(name for name, _ in shipped())
    raise UsageProblem(f"scenario {spec!r}: no such file, and no shipped scenario of that name ({names})")


def load(spec: str, commands: dict[str, click.Command], quick_s: float | None = None) -> Scenario:
    path = locate(spec)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"{path}: cannot read it ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise UsageProblem(f"{path}: not a scenario (nested too deep)") from exc
    except ValueError as exc:  # an integer of more digits than Python reads (4,300 by default)
        raise UsageProblem(f"{path}: not a scenario ({str(exc).split(';')[0]})") from exc
    for key in data:
        if key not in top_keys():
            raise UsageProblem(f"{path}: unknown key {key!r}; expected {', '.join(top_keys())}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UsageProblem(f"{path}: description: expected a string")
    servers = data.get("servers", [])
    if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
        raise UsageProblem(f"{path}: servers: expected a list of \"host:port\" strings")
    phases = []
    for kind in registered():
        if kind.name not in data:
            continue
        table = data[kind.name]
        if not isinstance(table, dict):
            raise UsageProblem(f"{path}: {kind.name}: expected a table [{kind.name}]")
        phases.append(_phase(path, kind, table, commands[kind.command], quick_s))
    if not phases:
        raise UsageProblem(f"{path}: nothing to run; add a [bench], [races], [leaks], [stale] or [failover] table")
    return Scenario(path.stem, str(path), description, tuple(servers), tuple(phases))


def _phase(path: Path, kind: Kind, table: dict[str, Any], command: click.Command, quick_s: float | None) -> Phase:
    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    args: list[str] = []
    single: list[str] = []  # the args click parses: all but the repeatable options
    repeated: dict[str, list[str]] = {}  # a repeatable option's values, judged apart from the parser (linear)
    thresholds = table.get("thresholds", [])
    section = kind.name
    where = f"{path}: [{section}]"
    if not isinstance(thresholds, list) or not all(isinstance(t, str) for t in thresholds):
        raise UsageProblem(f"{where} thresholds: expected a list of strings such as [\"p99<2ms\", \"errors==0\"]")
    try:
        check_metrics(tuple(parse_threshold(t) for t in thresholds), kind)
    except UsageProblem as exc:
        raise UsageProblem(f"{where} thresholds: {exc}") from exc
    for key, value in table.items():
        if key == "thresholds":
            continue
        name = RENAMED.get(key, key)
        param = params.get(name)
        internal = key in RENAMED.values() and key not in RENAMED  # duration_s is spelled duration in files
        if param is None or internal or name in NOT_IN_FILES or name == "thresholds":
            known = sorted(k for k in (_key_of(p) for p in params.values()) if k not in (*NOT_IN_FILES, "thresholds"))
            raise UsageProblem(f"{where} unknown key {key!r}; expected one of {', '.join(known)}, thresholds")
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageProblem(f"{where} {key}: expected a finite number, got {value!r}")
        option_args = _option_args(where, key, value, param)
        args += option_args
        if param.multiple and param.name:
            repeated[param.name] = option_args[1::2]
        else:
            single += option_args
    if quick_s is not None:
        for key in kind.quick_keys:
            param = params[RENAMED[key]]
            current = table.get(key, param.default)
            try:
                longer = _seconds(current) > quick_s
            except UsageProblem as exc:
                raise UsageProblem(f"{where} {key}: {exc}") from exc
            if longer:
                args += [param.opts[0], f"{quick_s * 1000:.3f}ms"]
                single += [param.opts[0], f"{quick_s * 1000:.3f}ms"]
    if thresholds:
        repeated["thresholds"] = list(thresholds)
    return Phase(kind, tuple(args), tuple(thresholds), _parse(where, command, single, repeated))


def _key_of(param: click.Option) -> str:
    for key, name in RENAMED.items():
        if name == param.name:
            return key
    return param.name or ""


def _seconds(value: Any) -> float:
    from mcpool_cli.units import parse_duration_s

    return value if isinstance(value, (int, float)) else parse_duration_s(str(value))


def _option_args(where: str, key: str, value: Any, param: click.Option) -> list[str]:
    flag = param.opts[0]
    if param.is_flag and param.secondary_opts:  # --relinquish/--no-relinquish
        if not isinstance(value, bool):
            raise UsageProblem(f"{where} {key}: expected true or false, got {value!r}")
        return [flag if value else param.secondary_opts[0]]
    if param.is_flag:
        if not isinstance(value, bool):
            raise UsageProblem(f"{where} {key}: expected true or false, got {value!r}")
        return [flag] if value else []
    if isinstance(value, dict):  # mix = {get = 8, ...}; behaviors = {tcp_nodelay = 1}
        if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value.values()):
            raise UsageProblem(f"{where} {key}: expected a table of names to numbers, got {value!r}")
        pairs = [f"{k}={v}" for k, v in value.items()]
        return [part for pair in pairs for part in (flag, pair)] if param.multiple else [flag, ",".join(pairs)]
    if param.multiple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageProblem(f"{where} {key}: expected a list of strings, got {value!r}")
        return [part for item in value for part in (flag, item)]
    if isinstance(value, (list, dict)) or isinstance(value, bool):
        raise UsageProblem(f"{where} {key}: expected a single {_expected(param)}, got {value!r}")
    if isinstance(param.type, (click.IntRange,)) or param.type is click.INT:
        if not isinstance(value, int):
            raise UsageProblem(f"{where} {key}: expected an integer, got {value!r}")
    elif isinstance(param.type, click.FloatRange) or param.type is click.FLOAT:
        if not isinstance(value, (int, float)):
            raise UsageProblem(f"{where} {key}: expected a number, got {value!r}")
    elif isinstance(value, (int, float)) and _expected(param) in ("duration", "size"):
        return [flag, str(value)]  # duration = 10 is ten seconds; value_size = 64 is 64 bytes
    elif not isinstance(value, str):
        raise UsageProblem(f"{where} {key}: expected a string ({_expected(param)}), got {value!r}")
    return [flag, str(value)]


def _expected(param: click.Option) -> str:
    return getattr(param.type, "name", "value")


def _parse(where: str, command: click.Command, args: list[str], repeated: dict[str, list[str]]) -> dict[str, Any]:
    """The command's params from `args` (all but the repeatable options) and `repeated`, judged by its own option types, without running anything.

    The values of repeatable options (`repeated`, by param name) are converted by their option's own type, not
    passed through click's parser, which takes time quadratic in the number of arguments."""
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    try:
        ctx = command.make_context(command.name or "", list(args), resilient_parsing=False)
        params = dict(ctx.params)
        for name, values in repeated.items():
            params[name] = options[name].process_value(ctx, tuple(values))
        return params
    except click.BadParameter as exc:
        key = _key_of(exc.param) if isinstance(exc.param, click.Option) else "?"
        raise UsageProblem(f"{where} {key}: {exc.message}") from exc
    except click.ClickException as exc:
        raise UsageProblem(f"{where}: {exc.format_message()}") from exc
