"""Checks every command makes before any load: strategies, pylibmc behaviors, custom pools, the servers."""

from __future__ import annotations

from mcpool_cli.engine.probe import check_importable
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.engine.strategies import BUILTIN, is_custom, split_spec
from mcpool_cli.errors import UsageProblem

SAFE_DEFAULT = ("fifo", "thread-mapped", "per-thread")  # the strategies a command runs without --strategy
MIN_HANG_TIMEOUT_S = 1.0


def expand_strategies(names: tuple[str, ...], default: tuple[str, ...] = SAFE_DEFAULT) -> tuple[str, ...]:
    """Resolve `all`, drop repeats, reject unknown names; `default` when none is given."""
    from mcpool_cli.engine.families import info

    expanded: list[str] = []
    for name in names or default:
        for one in BUILTIN if name == "all" else (name,):
            other = info(one)
            if one not in BUILTIN and not is_custom(one) and other is None:
                raise UsageProblem(f"unknown strategy {one!r}: use one of {', '.join(BUILTIN)}, all, one of "
                                   "`mcpool strategies`, or module:callable for your own pool")
            if other is not None:
                check_project(one)
            missing = None if other is None else other.missing()
            if missing is not None:
                raise UsageProblem(f"strategy {one} needs {missing.distribution}, which is not installed: "
                                   f"{other.family.pip}")  # the strategy's extra installs all it needs
            if one not in expanded:
                expanded.append(one)
    return tuple(expanded)


def check_families(strategies: tuple[str, ...], servers: tuple[ServerAddress, ...], binary: bool = False,
                   behaviors: tuple[tuple[str, int | str], ...] = (),
                   client_options: tuple[tuple[str, int | str], ...] = ()) -> None:
    """Strategies of other libraries than pylibmc take no pylibmc option, and one server unless they hash;
    --client-option goes to other libraries only, and each client takes it (built here, not connected)."""
    from mcpool_cli.engine.families import info

    for name in strategies:
        other = info(name)
        if other is None:
            if client_options:
                raise UsageProblem(f"--client-option is for other libraries' clients; strategy {name} is pylibmc's: "
                                   "use --behavior, or run it in a separate command")
            continue
        if client_options and not other.client_options:
            raise UsageProblem(f"--client-option is for other libraries' clients; strategy {name} is configured as "
                               f"a typical {other.family.name} settings file is: run it without, or in a separate "
                               "command")
        check_client_options(name, servers, client_options)
        if behaviors or binary:
            option = "--behavior" if behaviors else "--binary"
            raise UsageProblem(f"{option} sets pylibmc's behaviors; strategy {name} uses {other.family.name}: "
                               "run it without, or in a separate command")
        if other.single_server and len(servers) > 1:
            raise UsageProblem(f"strategy {name} talks to one server, and {len(servers)} were given: use "
                               "pymemcache-hash for several")


def check_behaviors(behaviors: tuple[tuple[str, int | str], ...], binary: bool) -> None:
    """Let pylibmc judge the behaviors now, before any load, rather than in every worker."""
    import pylibmc

    try:
        pylibmc.Client(["127.0.0.1:11211"], binary=binary, behaviors=dict(behaviors))
    except (ValueError, TypeError, KeyError, pylibmc.Error) as exc:
        raise UsageProblem(f"--behavior: {exc}; see pylibmc's behaviors list") from exc


def validate_custom(strategies: tuple[str, ...], import_path: tuple[str, ...], hang_timeout_s: float) -> None:
    """Checks every command shares: custom strategies import, the hang timeout is workable.

    Each custom strategy is imported in a child process (engine/probe.py), under a watchdog of --hang-timeout:
    a module that exits, crashes, hangs or prints at import cannot take mcpool (or its stdout) with it."""
    if hang_timeout_s < MIN_HANG_TIMEOUT_S:
        raise UsageProblem(f"--hang-timeout must be at least {MIN_HANG_TIMEOUT_S:g}s: workers report progress "
                           "a few times a second and need a moment to start")
    for name in strategies:
        if is_custom(name):
            split_spec(name)
            check_importable(name, import_path, hang_timeout_s)


def check_client(servers: tuple[ServerAddress, ...], binary: bool = False,
                 behaviors: tuple[tuple[str, int | str], ...] = ()) -> None:
    """One get through pylibmc itself, from this process and one thread: the server may answer a socket yet
    be unusable to pylibmc (its bundled libmemcached cannot look up IPv6 addresses, for one)."""
    import pylibmc

    for server in servers:
        client = pylibmc.Client([server.spec], binary=binary, behaviors=dict(behaviors))
        try:
            client.get("mcpool:probe")
        except pylibmc.Error as exc:
            hint = " (this pylibmc's libmemcached cannot use IPv6 addresses: give an IPv4 one)" \
                if ":" in server.host else ""
            raise UsageProblem(f"server {server.spec}: pylibmc cannot use it: {exc}{hint}") from exc
        finally:
            client.disconnect_all()


def check_client_options(name: str, servers: tuple[ServerAddress, ...],
                         client_options: tuple[tuple[str, int | str], ...]) -> None:
    """Build the strategy's client with the options, without connecting: an unknown keyword is one line."""
    from mcpool_cli.engine.families import build_other

    if not client_options:
        return
    specs = tuple(server.spec for server in servers) or ("127.0.0.1:11211",)
    try:
        build_other(name, specs, 1, 1, client_options).close()
    except (TypeError, ValueError) as exc:
        raise UsageProblem(f"--client-option for {name}: {exc}") from exc


def check_project(name: str) -> None:
    """A strategy that runs the user's own project needs the variable that names it."""
    import os

    from mcpool_cli.engine.families import PROJECT_ENV

    variable = PROJECT_ENV.get(name)
    if variable and not os.environ.get(variable):
        example = "mysite.settings" if variable == "DJANGO_SETTINGS_MODULE" else "app:app"
        raise UsageProblem(f"strategy {name} measures your project's cache: set {variable} (e.g. "
                           f"{variable}={example}) and run from the folder that holds it")
