"""Where output goes, injected so tests can replace it (httpie-style); standard streams that never raise."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, TextIO

from mcpool_cli.engine.server import ServerAddress, parse_server


@dataclass
class Environment:
    """Where output goes; tests replace it (httpie-style)."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def stderr_isatty(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())


def servers_from_env() -> tuple[ServerAddress, ...]:
    """Servers named in MCPOOL_SERVERS (comma-separated), if any."""
    raw = os.environ.get("MCPOOL_SERVERS", "")
    return tuple(parse_server(part) for part in raw.split(",") if part.strip())


class GuardedStream:
    """A text stream whose write and flush never raise: the first OSError (a full disk, a closed or broken pipe)
    is kept in `error`, and from then on output is dropped. Its descriptor is pointed at /dev/null so that the
    interpreter's last flush is quiet too. No `buffer`: click then writes through it, not around it."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self.inner.write(text)
            except OSError as exc:
                self._failed(exc)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.error is None:
            try:
                self.inner.flush()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        self.error = exc
        with contextlib.suppress(OSError, ValueError):
            fd = self.inner.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.inner, name)


def reserve_standard_descriptors() -> None:
    """A closed 0, 1 or 2 gets /dev/null, so that no file or socket opened later lands on it; 1 is opened for
    reading, so that writing to a closed stdout still fails (EBADF) instead of vanishing."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY if fd == 2 else os.O_RDONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)


def lenient(stream: TextIO | None, fd: int) -> TextIO:
    """The stream, replacing what its encoding cannot hold (an ASCII-only stdout and the report's µ, ≤, █)."""
    if stream is None:  # the descriptor was closed when Python started
        return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="replace",
                                write_through=True)
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        with contextlib.suppress(OSError, ValueError):
            stream.reconfigure(errors="replace")
    return stream


@dataclass
class GuardedStreams:
    stdout: GuardedStream
    stderr: GuardedStream

    def settle(self, code: int) -> int:
        """The exit code once stdout is flushed: a broken pipe (the reader had enough) keeps the run's code; any
        other failure to write stdout is one line on stderr and exit 2, unless the run's own code is worse."""
        self.stdout.flush()
        error = self.stdout.error
        if error is None or error.errno == errno.EPIPE:
            return code
        why = "it is closed" if error.errno == errno.EBADF else error.strerror or str(error)
        self.stderr.write(f"mcpool: error: cannot write to stdout ({why})\n")
        self.stderr.flush()
        return 2 if code == 0 else code


@contextlib.contextmanager
def guarded_streams() -> Iterator[GuardedStreams]:
    """sys.stdout and sys.stderr as GuardedStreams for the life of a command; restored afterwards."""
    saved = sys.stdout, sys.stderr
    reserve_standard_descriptors()
    streams = GuardedStreams(GuardedStream(lenient(sys.stdout, 1)), GuardedStream(lenient(sys.stderr, 2)))
    sys.stdout, sys.stderr = streams.stdout, streams.stderr  # type: ignore[assignment]
    try:
        yield streams
    finally:
        streams.stdout.flush()
        streams.stderr.flush()
        sys.stdout, sys.stderr = saved
