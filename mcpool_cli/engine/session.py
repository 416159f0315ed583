"""What every command's session shares: where it ran, its run id and times, running in turn, its JSON skeleton.

A kind's session subclasses `Session`, says what one run of it is (`run_one`) and what a result is, and gets
the document header, the server block, the exit code and the loading back for free.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, TypeVar

from mcpool_cli import __version__
from mcpool_cli.engine import interrupts
from mcpool_cli.engine.runner import RunListener, run_in_turn
from mcpool_cli.engine.server import ServerAddress, parse_server
from mcpool_cli.errors import ExitCode
from mcpool_cli.kinds import Kind

T = TypeVar("T")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Servers:
    """The memcached servers a session ran against; `embedded` means mcpool started them (in every kind)."""

    addresses: tuple[ServerAddress, ...]
    embedded: bool
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"addresses": [s.spec for s in self.addresses], "embedded": self.embedded, "version": self.version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Servers":
        return cls(tuple(parse_server(str(spec)) for spec in data["addresses"]), bool(data["embedded"]),
                   str(data.get("version") or ""))


class Judged(Protocol):
    """A result that carries its verdict: one strategy's run or check."""

    verdict: str

    def to_json(self) -> dict[str, Any]: ...


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def fields_of(cls: type[T], data: dict[str, Any], required: bool = False) -> dict[str, Any]:
    """The entries of `data` that are fields of dataclass `cls`, lists as tuples, plain fields checked for type (a
    ValueError names a mistyped one). `required`: every field must be there (a KeyError names the first one
    missing); otherwise unknown keys are ignored and missing ones default."""
    found = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data or required:
            found[f.name] = _checked(f.name, str(f.type), _tuples(data[f.name]))
    return found


PLAIN_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _checked(name: str, declared: str, value: Any) -> Any:
    """`value` when it suits a field declared `int`, `float`, `bool` or `str` (others are not checked)."""
    expected = PLAIN_TYPES.get(declared)
    if expected is None:
        return value
    if not isinstance(value, expected) or (declared != "bool" and isinstance(value, bool)):
        raise ValueError(f"{name} is {json.dumps(value)}, not a {declared}")
    return float(value) if declared == "float" else value


LOCAL_OPTIONS = ("import_path", "hdr_log", "metrics_port", "run_id")  # this machine's paths and ports, and what the
# header holds: not kept in documents


def options_json(options: Any) -> dict[str, Any]:
    """A session's options as its document keeps them: all but this machine's paths (import path, log files)."""
    return {key: value for key, value in dataclasses.asdict(options).items() if key not in LOCAL_OPTIONS}


@dataclass
class Session:
    """One command invocation: its options, servers and results, run strategy by strategy."""

    KIND: ClassVar[Kind]
    OPTIONS: ClassVar[type]  # its options dataclass
    RESULT: ClassVar[Any]  # its judged result class, with to_json and from_json
    options: Any
    servers: Servers
    run_id: str = field(default_factory=new_run_id)
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    interrupted: bool = False
    results: list[Any] = field(default_factory=list)
    stopped_early: str = ""  # why it stopped before running everything, when that was no Ctrl-C

    def run(self, listener: RunListener) -> None:
        """Each of `names()` in turn; stops early on Ctrl-C (or `stopped_early`), keeping what was measured.
        A session interrupted before it ran (while connecting) runs nothing."""
        def run_one(name: str) -> bool:
            return self.run_one(name, listener) or bool(self.stopped_early)

        interrupts.begin()  # in a library, an earlier session's Ctrl-C is not this one's
        if not (self.interrupted or interrupts.received()):
            self.interrupted = run_in_turn(self.names(), run_one) and not self.stopped_early
        self.interrupted = self.interrupted or interrupts.received()
        self.finished_at = utc_now()

    @classmethod
    def cut_short(cls, options: Any, servers: tuple[ServerAddress, ...]) -> "Session":
        """The session of a command interrupted before it could connect: nothing ran, nothing was measured."""
        return cls(options, Servers(tuple(servers), not servers), interrupted=True)

    def names(self) -> tuple[str, ...]:
        return tuple(self.options.strategies)

    def run_one(self, name: str, listener: RunListener) -> bool:
        """Run one and append its result; returns whether it was interrupted."""
        raise NotImplementedError

    @property
    def key_prefix(self) -> str:
        return f"mcpool:{self.run_id}:"

    def exit_code(self) -> ExitCode:
        """130 when interrupted; 0 when every result has a good verdict; else 1."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.stopped_early:
            return ExitCode.PROBLEM
        passed = all(result.verdict in self.KIND.good_verdicts for result in self.results)
        return ExitCode.OK if passed else ExitCode.PROBLEM

    def header(self) -> dict[str, Any]:
        kind = self.KIND
        named = {"check": kind.check} if kind.check else {"command": kind.command}
        return {"schema": kind.schema, **named, "mcpool_version": __version__, "run_id": self.run_id,
                "started_at": self.started_at, "finished_at": self.finished_at or utc_now(),
                "interrupted": self.interrupted}

    def extras(self) -> dict[str, Any]:
        """Document fields of this kind's own, between the options and the results."""
        return {}

    def other_outputs(self) -> list[tuple[str, bytes, str, str]]:
        """Files of this kind's own to write with the JSON: (path, bytes, option, what it is)."""
        return []

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "server": self.servers.to_json(), "options": options_json(self.options),
                **self.extras(), self.KIND.rows: [result.to_json() for result in self.results]}

    @classmethod
    def header_fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments every session reads back from its document's header."""
        return {"servers": Servers.from_json(data["server"]), "run_id": str(data.get("run_id") or ""),
                "started_at": str(data.get("started_at") or ""), "finished_at": data.get("finished_at"),
                "interrupted": bool(data.get("interrupted")), "stopped_early": str(data.get("stopped_early") or "")}

    @classmethod
    def options_from_json(cls, data: dict[str, Any]) -> Any:
        known = fields_of(cls.OPTIONS, data)
        for name in LOCAL_OPTIONS:
            known.pop(name, None)
        return cls.OPTIONS(**known)

    @classmethod
    def extras_from_json(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of this kind's own, read back from its document."""
        return {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Session":
        """A saved document as the session that wrote it."""
        header = cls.header_fields(data)  # first: a document without its header is named by what it lacks
        return cls(cls.options_from_json(data["options"]), **header, **cls.extras_from_json(data),
                   results=[cls.RESULT.from_json(row) for row in data[cls.KIND.rows]])


@dataclass
class ProxiedSession(Session):
    """A session whose workers reach the servers through mcpool's fault proxies (engine/proxy.py): the proxies'
    addresses are saved with the server block, and read back."""

    proxies: list[Any] = field(default_factory=list)  # FaultProxy objects, one in front of each server
    proxy_addresses: tuple[str, ...] = ()  # their specs, as saved

    def __post_init__(self) -> None:
        if self.proxies and not self.proxy_addresses:
            self.proxy_addresses = tuple(proxy.address.spec for proxy in self.proxies)

    def to_json(self) -> dict[str, Any]:
        document = super().to_json()
        document["server"] = {**document["server"], "proxies": list(self.proxy_addresses)}
        return document

    @classmethod
    def extras_from_json(cls, data: dict[str, Any]) -> dict[str, Any]:
        return {"proxy_addresses": tuple(str(spec) for spec in data["server"].get("proxies") or ())}


def connect(servers: tuple[ServerAddress, ...], memory_mb: int, enter: Callable[[Any], Any], binary: bool = False,
            behaviors: tuple[tuple[str, int | str], ...] = ()) -> Servers:
    """The servers to use, checked by a socket and by pylibmc itself: the given ones, or a memcached started here
    (entered with `enter`, so that it stops on every exit path) with room for `memory_mb` of data."""
    from mcpool_cli.engine.prechecks import check_client
    from mcpool_cli.engine.server import EmbeddedServer, check_reachable

    if servers:
        reached = Servers(servers, False, ", ".join(sorted({check_reachable(s) for s in servers})))
    else:
        embedded = enter(EmbeddedServer(memory_mb=max(256, 2 * memory_mb)))
        reached = Servers((embedded.address,), True, check_reachable(embedded.address))
    check_client(reached.addresses, binary, behaviors)
    return reached
