"""Where output goes, injected so tests can replace it (httpie-style)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TextIO

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
