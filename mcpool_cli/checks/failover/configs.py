"""The client configurations check-failover compares: presets, the user's own, and how each routes keys.

A configuration is a client library with its settings: pylibmc with behaviors (its hashing, ejection and
retry settings), pymemcache's HashClient or python-memcached with keyword arguments. `--config` takes a preset
name, or `LIBRARY:KEY=VALUE,...` (LIBRARY pylibmc, pymemcache or memcache; pylibmc when left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcpool_cli.errors import UsageProblem
from mcpool_cli.units import parse_behavior

Settings = tuple[tuple[str, int | str], ...]
LIBRARIES = {"pylibmc": "", "pymemcache": "pymemcache-hash-per-thread", "memcache": "memcache-shared"}
# the setting that keeps an ejected node out, and its default, per library
DEAD_TIMEOUT = {"pylibmc": ("dead_timeout", 0), "pymemcache": ("dead_timeout", 60), "memcache": ("dead_retry", 30)}


@dataclass(frozen=True)
class Config:
    """One client configuration: its name in the report, its library and settings, and what it is."""

    name: str
    library: str  # pylibmc, pymemcache or memcache
    settings: Settings = ()  # pylibmc behaviors, or the client's keyword arguments
    summary: str = ""

    def strategy(self, pylibmc_strategy: str) -> str:
        """The strategy its load runs through: the given one for pylibmc, a client per thread otherwise."""
        return LIBRARIES[self.library] or pylibmc_strategy

    @property
    def behaviors(self) -> Settings:
        return self.settings if self.library == "pylibmc" else ()

    @property
    def client_options(self) -> Settings:
        return () if self.library == "pylibmc" else self.settings

    def setting(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)

    @property
    def dead_timeout(self) -> tuple[str, float]:
        """(name, seconds) of the setting that keeps an ejected node out, as this configuration has it."""
        name, default = DEAD_TIMEOUT[self.library]
        return name, float(self.setting(name, default))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "library": self.library, "settings": dict(self.settings), "summary": self.summary}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Config":
        return cls(str(data["name"]), str(data["library"]), tuple((data.get("settings") or {}).items()),
                   str(data.get("summary") or ""))


EJECT = (("ketama", 1), ("remove_failed", 1), ("retry_timeout", 1))
PRESETS: tuple[Config, ...] = (
    Config("modula", "pylibmc", (), "pylibmc's defaults: modula hashing; a failed server is never taken out"),
    Config("ketama", "pylibmc", (("ketama", 1),), "consistent hashing (ketama), no ejection"),
    Config("ketama-eject", "pylibmc", (*EJECT, ("dead_timeout", 60)),
           "what pylibmc's docs recommend: ketama, remove_failed=1, retry_timeout=1, dead_timeout=60"),
    Config("ketama-eject-2s", "pylibmc", (*EJECT, ("dead_timeout", 2)),
           "the same, with an ejected node retried after 2 s (dead_timeout=2)"),
    Config("hashclient", "pymemcache", (),
           "pymemcache HashClient per thread, its defaults: retry_attempts=2, retry_timeout=1, dead_timeout=60"),
    Config("hashclient-2s", "pymemcache", (("dead_timeout", 2),),
           "pymemcache HashClient per thread, a dead server retried after 2 s"),
    Config("memcache", "memcache", (), "python-memcached, its defaults: a dead server is retried after 30 s"),
    Config("memcache-1s", "memcache", (("dead_retry", 1),), "python-memcached, a dead server retried after 1 s"),
)
DEFAULT = ("modula", "ketama", "ketama-eject", "ketama-eject-2s", "hashclient")


def preset(name: str) -> Config | None:
    return next((config for config in PRESETS if config.name == name), None)


def parse_config(spec: str) -> Config:
    """A preset by name, or `LIBRARY:KEY=VALUE,...` (pylibmc when no library is named)."""
    spec = spec.strip()
    found = preset(spec)
    if found is not None:
        return found
    library, _, rest = spec.rpartition(":") if ":" in spec.split("=", 1)[0] else ("pylibmc", "", spec)
    if library not in LIBRARIES:
        raise UsageProblem(f"--config {spec}: unknown library {library!r} (use pylibmc, pymemcache or memcache)")
    if not rest.strip() or "=" not in rest:
        names = ", ".join(config.name for config in PRESETS)
        raise UsageProblem(f"--config {spec}: not a preset ({names}) nor LIBRARY:KEY=VALUE,...")
    settings = tuple(parse_behavior(part) for part in rest.split(",") if part.strip())
    keys = [key for key, _ in settings]
    if len(set(keys)) != len(keys):
        raise UsageProblem(f"--config {spec}: a setting is given twice")
    return Config(spec, library, settings, f"{library} with " + ", ".join(f"{k}={v}" for k, v in settings))


def expand_configs(specs: tuple[str, ...]) -> tuple[Config, ...]:
    """The configurations to compare: the given ones, else the defaults (hashclient only when pymemcache is
    installed); the same one twice is refused."""
    from mcpool_cli.engine.families import MEMCACHE, PYMEMCACHE

    families = {"pymemcache": PYMEMCACHE, "memcache": MEMCACHE}
    if not specs:
        return tuple(config for config in map(parse_config, DEFAULT)
                     if config.library not in families or families[config.library].installed())
    configs = tuple(parse_config(spec) for spec in specs)
    names = [config.name for config in configs]
    for name in names:
        if names.count(name) > 1:
            raise UsageProblem(f"--config {name} is given twice")
    for config in configs:
        family = families.get(config.library)
        if family is not None and not family.installed():
            raise UsageProblem(f"--config {config.name} needs {family.distribution}, which is not installed: "
                               f"{family.pip}")
    return configs


def route_client(config: Config, specs: list[str]) -> Any:
    """One client of the configuration over `specs`, to write keys through and see where they go."""
    from mcpool_cli.engine.families import hash_client, memcache_client

    if config.library == "pylibmc":
        import pylibmc

        return pylibmc.Client(specs, behaviors=dict(config.behaviors))
    if config.library == "pymemcache":  # sets wait for the server, so the proxy has seen them when they return
        return hash_client(tuple(specs), False, 1, {"default_noreply": False, **dict(config.client_options)})
    return memcache_client(tuple(specs), dict(config.client_options))


def close_client(client: Any) -> None:
    for name in ("disconnect_all", "close"):
        if callable(getattr(client, name, None)):
            getattr(client, name)()
            return


def check_config(config: Config) -> None:
    """Build the configuration's client without connecting: a setting its library refuses is one line now; the
    setting that keeps an ejected node out must be whole seconds."""
    name, _ = DEAD_TIMEOUT[config.library]
    value = config.setting(name)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise UsageProblem(f"--config {config.name}: {name} is whole seconds (e.g. {name}=5), not {value!r}")
    try:
        close_client(route_client(config, ["127.0.0.1:11211", "127.0.0.1:11212"]))
    except UsageProblem:
        raise
    except Exception as exc:  # pylibmc's own errors, TypeError for an unknown keyword, ValueError for a value
        raise UsageProblem(f"--config {config.name}: {config.library} refused it ({type(exc).__name__}: {exc})") from exc
