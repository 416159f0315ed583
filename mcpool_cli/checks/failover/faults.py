"""`mcpool check-failover` as a library: one node's fault, through its proxy, and its return.

- kill: the node's proxy closes its listening socket and every connection: connecting is refused (a dead
  host, a blocked port). memcached behind it keeps running, with its data.
- freeze: the proxy forwards nothing, and accepts nothing new, for the outage (a stalled host).
- drop: the proxy closes every connection, and each new one as soon as it is accepted (a firewall that
  resets, a flapping network); the node itself stays up.
With `--rejoin empty`, this run's keys are deleted from the node, straight at its server, before it comes back
(as a restarted memcached comes back empty); nothing else on it is touched.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from mcpool_cli.engine.faults import Fault
from mcpool_cli.engine.proxy import FaultProxy
from mcpool_cli.engine.server import ServerAddress

FAULTS = ("kill", "freeze", "drop")
FAULT_WORDS = {"kill": "refused connections", "freeze": "forwarded nothing", "drop": "cut every connection"}


class NodeFault(Fault):
    """Fail one node's proxy at `before_s`, bring it back `outage_s` later."""

    def __init__(self, before_s: float, kind: str, proxy: FaultProxy, outage_s: float,
                 wipe: tuple[ServerAddress, list[str]] | None = None) -> None:
        super().__init__(before_s)
        self.name, self.proxy, self.outage_ns, self.wipe = kind, proxy, int(outage_s * 1e9), wipe
        self.failure = ""  # why the node could not be brought back
        self.wiped = 0

    def step(self, now_ns: int, workers: list[Any]) -> None:
        if self.state == "waiting" and self.due:
            self.times.start_ns = time.monotonic_ns()
            {"kill": self.proxy.refuse, "freeze": self.proxy.freeze, "drop": self.proxy.cut}[self.name]()
            self.state = "out"
        elif self.state == "out" and now_ns >= self.times.start_ns + self.outage_ns:
            self.bring_back()

    def bring_back(self) -> None:
        """Empty the node of this run's keys when asked, then let traffic through again."""
        try:
            if self.wipe is not None:
                self.wiped = delete_keys(*self.wipe)
            self.restore()
        except OSError as exc:  # the node's server went away while it was out, or the port was taken
            doing = (f"delete this run's keys from {self.wipe[0].spec}" if self.wipe is not None and not self.wiped
                     else f"listen again on the node's proxy port {self.proxy.address.port}")
            self.failure = f"could not {doing} ({exc.strerror or exc})"
            self.times.detail = self.failure
            self.state = "failed"
            return
        self.times.back_ns = time.monotonic_ns()
        out_s = (self.times.back_ns - self.times.start_ns) / 1e9
        emptied = f"; {self.wiped} of this run's keys deleted from it first" if self.wipe is not None else ""
        self.times.detail = f"the node's proxy {FAULT_WORDS[self.name]} for {out_s:.2f} s{emptied}"
        self.state = "done"

    def restore(self) -> None:
        if self.name == "kill":
            self.proxy.reopen()
        elif self.name == "freeze":
            self.proxy.thaw()
        else:
            self.proxy.uncut()

    def undo(self) -> None:
        """Whatever happened to the run (Ctrl-C, a crash), leave the node reachable for the next one."""
        if self.state == "out":
            try:
                self.restore()
            except OSError:
                pass
        self.proxy.thaw()
        self.proxy.uncut()


DELETE_BATCH = 500  # deletes sent before their replies are read: the socket buffers hold them whatever the key


def delete_keys(address: ServerAddress, keys: list[str], timeout_s: float = 5.0) -> int:
    """Delete `keys` on the server, pipelined in batches; how many it deleted (the others were not there)."""
    deleted = 0
    with socket.create_connection((address.host, address.port), timeout=timeout_s) as sock:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            sock.sendall(b"".join(f"delete {key}\r\n".encode() for key in batch))
            deleted += read_replies(sock, len(batch)).count(b"DELETED\r\n")
    return deleted


def read_replies(sock: socket.socket, count: int) -> bytes:
    """`count` one-line replies."""
    reply = b""
    while reply.count(b"\r\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        reply += chunk
    return reply
