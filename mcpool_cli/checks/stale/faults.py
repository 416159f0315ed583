"""`mcpool check-stale` as a library: the faults the parent injects, and when they struck and ended.

The parent injects the fault from its main thread while it pumps the workers' snapshots (a memcached
started from another thread would die with it: the embedded server asks for SIGTERM when its parent
thread exits). Worker times and fault times are both `time.monotonic_ns()`, one clock on Linux.
"""

from __future__ import annotations

import time
from typing import Any

from mcpool_cli.engine.faults import Fault
from mcpool_cli.engine.server import EmbeddedServer, ServerAddress, server_stats
from mcpool_cli.errors import UsageProblem

FAULTS = ("restart", "idle", "drop", "freeze")
EMBEDDED_ONLY = ("restart", "idle")
FAULT_HELP = {
    "restart": "stop the embedded memcached, keep it down for --outage, start it again on the same port",
    "idle": "start the embedded memcached with -o idle_timeout=N; the load pauses until it drops the idle "
            "connections",
    "drop": "mcpool's loopback proxy closes every client connection at once (any server)",
    "freeze": "mcpool's loopback proxy stops forwarding for --outage (any server)",
}
IDLE_SETTLE_S = 0.3  # after the first idle kick: the server closes every idle connection in one sweep


class RestartFault(Fault):
    """Stop the embedded memcached, wait, start it on the same port and write the key space back."""

    name = "restart"

    def __init__(self, before_s: float, server: EmbeddedServer, down_s: float, refill: dict[str, bytes],
                 ttl_s: int) -> None:
        super().__init__(before_s)
        self.server, self.down_ns, self.refill_values, self.ttl_s = server, int(down_s * 1e9), refill, ttl_s
        self.old_pid: int | None = None
        self.exited_ns = 0
        self.failure = ""  # why the server could not be started again

    def step(self, now_ns: int, workers: list[Any]) -> None:
        if self.state == "waiting" and self.due:
            self.old_pid = self.server.pid
            self.times.start_ns = time.monotonic_ns()
            self.server.stop()
            self.exited_ns = time.monotonic_ns()
            self.times.detail = (f"SIGTERM to memcached (pid {self.old_pid}), which served on until it exited "
                                 f"{(self.exited_ns - self.times.start_ns) / 1e6:.0f} ms later")
            self.state = "down"
        elif self.state == "down" and now_ns >= self.exited_ns + self.down_ns:
            try:
                self.server.start_again()
            except UsageProblem as exc:
                self.failure = str(exc)
                self.times.detail += f"; {exc}"
                self.state = "failed"
                return
            up = self.times.back_ns = time.monotonic_ns()
            self._refill()
            self.times.refill = (up, time.monotonic_ns())
            self.times.detail += (f"; down {(up - self.exited_ns) / 1e9:.2f} s, then started again (pid "
                                  f"{self.server.pid}); keys written back in {(self.times.refill[1] - up) / 1e6:.0f} ms")
            self.state = "done"

    def _refill(self) -> None:
        """Write the key space to the new, empty server, so that a miss after this is a false one."""
        import pylibmc

        assert self.server.address is not None
        client = pylibmc.Client([self.server.address.spec])
        try:
            items = list(self.refill_values.items())
            for start in range(0, len(items), 500):
                client.set_multi(dict(items[start:start + 500]), time=self.ttl_s)
        finally:
            client.disconnect_all()


class DropFault(Fault):
    name = "drop"

    def __init__(self, before_s: float, proxies: list[Any]) -> None:
        super().__init__(before_s)
        self.proxies = proxies

    def step(self, now_ns: int, workers: list[Any]) -> None:
        if self.due:
            self.times.start_ns = self.times.back_ns = time.monotonic_ns()
            dropped = sum(proxy.drop() for proxy in self.proxies)
            self.times.detail = f"the proxy closed {dropped} client connections at once"
            self.state = "done"


class FreezeFault(Fault):
    name = "freeze"

    def __init__(self, before_s: float, proxies: list[Any], freeze_s: float) -> None:
        super().__init__(before_s)
        self.proxies, self.freeze_ns = proxies, int(freeze_s * 1e9)

    def step(self, now_ns: int, workers: list[Any]) -> None:
        if self.state == "waiting" and self.due:
            self.times.start_ns = time.monotonic_ns()
            for proxy in self.proxies:
                proxy.freeze()
            self.state = "frozen"
        elif self.state == "frozen" and now_ns >= self.times.start_ns + self.freeze_ns:
            for proxy in self.proxies:
                proxy.thaw()
            self.times.back_ns = time.monotonic_ns()
            self.times.detail = (f"the proxy forwarded nothing for {(self.times.back_ns - self.times.start_ns) / 1e9:.2f}"
                                 " s, then resumed")
            self.state = "done"


class IdleFault(Fault):
    """The workers pause at `before_s`; once memcached has kicked their idle connections, they resume."""

    name = "idle"

    def __init__(self, before_s: float, address: ServerAddress, idle_timeout_s: int, max_wait_s: float) -> None:
        super().__init__(before_s)
        self.address, self.idle_timeout_s, self.max_wait_ns = address, idle_timeout_s, int(max_wait_s * 1e9)
        self.kicks_before = 0
        self.kicked_ns: int | None = None
        self.next_read_ns = 0

    def step(self, now_ns: int, workers: list[Any]) -> None:
        if self.state == "waiting":
            self.kicks_before = self._kicks()
            self.state = "armed"
        elif self.state == "armed" and self.due:
            self.times.start_ns = self.t0_ns + self.before_ns  # type: ignore[operator]
            self.state = "paused"
        elif self.state == "paused":
            if self.kicked_ns is None and now_ns >= self.next_read_ns:
                self.next_read_ns = now_ns + 50_000_000
                if self._kicks() > self.kicks_before:
                    self.kicked_ns = now_ns
            settled = self.kicked_ns is not None and now_ns >= self.kicked_ns + int(IDLE_SETTLE_S * 1e9)
            if settled or now_ns >= self.times.start_ns + self.max_wait_ns:
                kicks = self._kicks() - self.kicks_before
                for worker in workers:
                    worker.send(b"resume\n")
                self.times.back_ns = time.monotonic_ns()
                paused = (self.times.back_ns - self.times.start_ns) / 1e9
                self.times.detail = (f"the load paused {paused:.1f} s; memcached (idle_timeout={self.idle_timeout_s}) "
                                     f"closed {kicks} idle connections" if kicks else
                                     f"the load paused {paused:.1f} s, but memcached closed no idle connection")
                self.state = "done"

    def _kicks(self) -> int:
        return int(server_stats(self.address).get("idle_kicks", 0))
