"""memcached servers: parse and check addresses, read `stats`, and run an embedded memcached on loopback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from mcpool_cli.errors import UsageProblem

INSTALL_HINT = ("install it (Debian/Ubuntu: apt-get install memcached; macOS: brew install memcached) "
                "or point mcpool at a running server with --server HOST:PORT")


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int

    @property
    def spec(self) -> str:
        """The address as pylibmc takes it."""
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_server(text: str) -> ServerAddress:
    """Parse `HOST:PORT`, `[IPv6]:PORT` or `HOST` (port 11211)."""
    text = text.strip()
    match = re.match(r"^\[([0-9a-fA-F:.]+)\](?::(\d+))?$", text) or re.match(r"^([^:\s\[\]]+)(?::(\d+))?$", text)
    if not match:
        raise UsageProblem(f"server {text!r} is not HOST:PORT (e.g. 127.0.0.1:11211 or cache1:11211)")
    port = int(match.group(2) or 11211)
    if not 0 < port < 65536:
        raise UsageProblem(f"server {text!r}: port {port} is out of range")
    return ServerAddress(match.group(1), port)


def server_command(address: ServerAddress, command: bytes, end: bytes, timeout_s: float = 2.0) -> bytes:
    """One request to the server and its reply, read until it ends with `end`."""
    return _command(address, command, end, timeout_s)


def _command(address: ServerAddress, command: bytes, end: bytes, timeout_s: float) -> bytes:
    with socket.create_connection((address.host, address.port), timeout=timeout_s) as sock:
        sock.sendall(command)
        reply = b""
        while not reply.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def check_reachable(address: ServerAddress, timeout_s: float = 2.0) -> str:
    """The server's version; a UsageProblem that says what to do when it cannot be used."""
    try:
        socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageProblem(f"server {address.spec}: cannot resolve {address.host!r} ({exc.strerror})") from exc
    try:
        reply = _command(address, b"version\r\n", b"\r\n", timeout_s)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageProblem(f"server {address.spec} is unreachable ({reason}); is memcached running there?") from exc
    if not reply.startswith(b"VERSION "):
        raise UsageProblem(f"server {address.spec} did not answer like memcached (got {reply[:40]!r})")
    return reply[len(b"VERSION "):].strip().decode(errors="replace")


def server_stats(address: ServerAddress, timeout_s: float = 2.0) -> dict[str, str]:
    """The server's `stats` as strings by name."""
    reply = _command(address, b"stats\r\n", b"END\r\n", timeout_s)
    stats = {}
    for line in reply.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: on Linux, have the kernel SIGTERM memcached if mcpool itself is killed."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


MIN_OPEN_FILES = 1024 + 64  # memcached's default 1024 connections, and its own files


def open_files_limit() -> int | None:
    """This process's soft open-files limit (its children inherit it), when the platform tells."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


class EmbeddedServer:
    """A memcached that mcpool starts on a free loopback port and always stops.

    Use as a context manager. The process runs in its own session, so a Ctrl-C sent to the terminal reaches
    mcpool, which then stops it in order.
    """

    def __init__(self, memory_mb: int = 256, threads: int = 2, extra_args: tuple[str, ...] = ()) -> None:
        self.memory_mb = memory_mb
        self.threads = threads
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.address: ServerAddress | None = None
        self.said = ""  # the last line memcached wrote on stderr when it would not start

    def start(self) -> ServerAddress:
        binary = shutil.which("memcached")
        if binary is None:
            raise UsageProblem(f"memcached is not on PATH: {INSTALL_HINT}")
        for _ in range(5):  # another program may take the free port before memcached binds it
            address = ServerAddress("127.0.0.1", free_loopback_port())
            if self._try_start(binary, address):
                self.address = address
                return address
        raise UsageProblem(f"could not start memcached on a free loopback port{self._why()}")

    def _why(self) -> str:
        """Why memcached would not start, in words: the open-files limit, or what it said, or the usual hint."""
        said = f' (memcached said: "{self.said}")' if self.said else ""
        limit = open_files_limit()
        about_files = any(words in self.said.lower() for words in ("rlimit", "open files", "file descriptor"))
        if about_files or (not self.said and limit is not None and limit < MIN_OPEN_FILES):
            return (f": the open-files limit is too low (ulimit -n is {limit}){said}; raise it (ulimit -n 4096) or "
                    f"point mcpool at a running server with --server HOST:PORT")
        if said:
            return f"{said}; point mcpool at a running server with --server HOST:PORT"
        return f"; {INSTALL_HINT}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start_again(self) -> None:
        """After stop(): start a new memcached on the same address (check-stale's restart), in the same thread."""
        binary = shutil.which("memcached")
        if self.address is None or binary is None or not self._try_start(binary, self.address):
            spec = self.address.spec if self.address else "its address"
            raise UsageProblem(f"could not start memcached again on {spec} after stopping it (port taken?)")

    def _try_start(self, binary: str, address: ServerAddress) -> bool:
        args = [binary, "-l", address.host, "-p", str(address.port), "-U", "0",
                "-m", str(self.memory_mb), "-t", str(self.threads), *self.extra_args]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without it
        try:
            with tempfile.TemporaryFile() as stderr:
                started = self._wait_started(args, address, stderr)
                if not started and self.process is not None and self.process.poll() is not None:
                    stderr.seek(0)
                    lines = stderr.read(4096).decode(errors="replace").strip().splitlines()
                    self.said = lines[-1].strip()[:300] if lines else self.said
                return started
        except OSError as exc:  # no file descriptor left for the pipe, the file or the process
            self.said = f"{exc.strerror or exc}"
            return False

    def _wait_started(self, args: list[str], address: ServerAddress, stderr: Any) -> bool:
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=stderr, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                check_reachable(address, timeout_s=0.5)
                if server_stats(address).get("pid") == str(self.process.pid):
                    return True
                self.stop()  # another memcached answers on this port: ours could not bind it
                return False
            except UsageProblem:
                time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "EmbeddedServer":
        try:
            self.start()
        except BaseException:  # Ctrl-C while starting must not leave memcached behind
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
