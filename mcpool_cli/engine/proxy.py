"""A loopback TCP proxy that mcpool puts between its workers and a server, to cut, freeze or refuse connections.

It never touches the server: `drop()` closes every client connection at once (as a restart or a network
blip does to a client), `freeze()` stops forwarding bytes until `thaw()` (as a stalled server or a
stop-the-world pause does), `refuse()` closes the listening socket so that connecting is refused until
`reopen()` (a dead host, a blocked port), and `cut()` closes every connection and each new one as soon as it
is accepted until `uncut()`. With `watch(prefix)`, it notes each key with that prefix of every text-protocol
command it forwards to the server, with the millisecond (monotonic clock) it received it in: where a client
really sent each key, and when (check-failover). Two threads per connection, one per direction, with blocking sockets:
simple, and fast enough for the steady, paced load of the checks.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from mcpool_cli.engine.server import ServerAddress

CHUNK = 65536
STORAGE = {b"set": 4, b"add": 4, b"replace": 4, b"append": 4, b"prepend": 4, b"cas": 4}  # the <bytes> token
ONE_KEY = frozenset({b"delete", b"incr", b"decr", b"touch", b"mg", b"md", b"ma"})
MAX_LINE = 8192


class KeyReader:
    """Reads the keys off one connection's text-protocol commands, across chunk boundaries; skips data blocks.

    `feed(data)` returns the keys of the commands that data completes. A command it cannot read (binary
    protocol, a garbled line) stops it for good: `broken` is then set, and the connection's keys go unseen.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.skip = 0  # bytes of a data block still to come
        self.broken = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken:
            return []
        self.buffer += data
        keys: list[bytes] = []
        while self.buffer:
            if self.skip:
                taken = min(self.skip, len(self.buffer))
                self.skip -= taken
                self.buffer = self.buffer[taken:]
                continue
            if self.buffer[:1] == b"\x80":  # a binary-protocol request: nothing here is a text command
                self.broken = True
                break
            end = self.buffer.find(b"\r\n")
            if end < 0:
                self.broken = len(self.buffer) > MAX_LINE
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            keys += self.command(line.split())
        return [] if self.broken else keys

    def command(self, tokens: list[bytes]) -> list[bytes]:
        if not tokens:
            return []
        verb = tokens[0]
        try:
            if verb in (b"get", b"gets"):
                return tokens[1:]
            if verb in (b"gat", b"gats"):
                return tokens[2:]
            if verb in STORAGE:
                self.skip = int(tokens[STORAGE[verb]]) + 2
                return tokens[1:2]
            if verb == b"ms":
                self.skip = int(tokens[2]) + 2
                return tokens[1:2]
        except (IndexError, ValueError):
            self.broken = True
            return []
        return tokens[1:2] if verb in ONE_KEY else []


class _Pair:
    """A client connection and its own connection to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class FaultProxy:
    """Listens on a free 127.0.0.1 port and forwards each connection to `target`. A context manager."""

    def __init__(self, target: ServerAddress) -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.listener.settimeout(0.2)  # so the acceptor sees stop() promptly
        self.address = ServerAddress("127.0.0.1", self.listener.getsockname()[1])
        self.flowing = threading.Event()
        self.flowing.set()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.pairs: list[_Pair] = []
        self.accepted = 0
        self.dropped = 0
        self.cutting = False  # cut(): each new connection is closed as soon as it is accepted
        self.prefix = b""  # watch(): the keys noted start with this
        self.seen: list[tuple[int, bytes]] = []  # (ms, key without the prefix) of each key forwarded
        self.unread = 0  # connections whose commands could not be read while watching
        self.acceptor = threading.Thread(target=self._accept, name="mcpool-proxy", daemon=True)

    def start(self) -> "FaultProxy":
        self.acceptor.start()
        return self

    def watch(self, prefix: bytes) -> None:
        """From now on, note every forwarded key that starts with `prefix` (forgetting what was noted)."""
        with self.lock:
            self.prefix, self.seen, self.unread = prefix, [], 0

    def take_seen(self) -> list[tuple[int, bytes]]:
        """The keys noted since the last call, as (ms of the monotonic clock, key less the prefix)."""
        with self.lock:
            seen, self.seen = self.seen, []
        return seen

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listener was closed: the proxy is stopping, or refusing (refuse())
            if self.cutting:
                _Pair(client, client).close()
                with self.lock:
                    self.dropped += 1
                continue
            self.flowing.wait()  # a frozen server accepts nothing either (the kernel's backlog does)
            try:
                upstream = socket.create_connection((self.target.host, self.target.port), timeout=5.0)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream)
            with self.lock:
                if self.stopped.is_set():
                    pair.close()
                    return
                self.pairs.append(pair)
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._forward, args=(pair, source, sink), daemon=True).start()

    def _forward(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        reader = KeyReader() if source is pair.client else None
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                ms = time.monotonic_ns() // 1_000_000  # when the client sent it (a frozen proxy holds it until thawed)
                self.flowing.wait()
                if pair.closed:
                    break
                if reader is not None and self.prefix:  # noted before it goes on: noted by the time it is answered
                    self._note(reader, data, ms)
                sink.sendall(data)
        except OSError:
            pass
        pair.close()
        with self.lock, contextlib.suppress(ValueError):
            self.pairs.remove(pair)

    def _note(self, reader: KeyReader, data: bytes, ms: int) -> None:
        """Note the watched keys of the commands `data` completed, before it goes on to the server; `ms`: when
        the proxy received it (the client sent it to this node then, even if a freeze held it back)."""
        was_broken = reader.broken
        keys = reader.feed(data)
        prefix = self.prefix
        with self.lock:
            if reader.broken and not was_broken:
                self.unread += 1
            self.seen += [(ms, key[len(prefix):]) for key in keys if key.startswith(prefix)]

    def drop(self) -> int:
        """Close every open connection at once; returns how many. New connections are accepted as before."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
            self.dropped += len(pairs)
        for pair in pairs:
            pair.close()
        return len(pairs)

    def freeze(self) -> None:
        """Stop forwarding: bytes already sent wait in the proxy, new connections wait in the backlog."""
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def refuse(self) -> None:
        """Refuse connections (the listening socket closes) and close every open one: a dead host."""
        with contextlib.suppress(OSError):
            self.listener.close()
        self.drop()
        self.acceptor.join(timeout=2.0)  # it sees the closed listener within its 0.2 s accept timeout
        self.drop()  # a connection it accepted meanwhile

    def reopen(self) -> None:
        """After refuse(): listen on the same port again. OSError when another program took it meanwhile."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.address.port))
        except OSError:
            listener.close()
            raise
        listener.listen(512)
        listener.settimeout(0.2)
        self.listener = listener
        self.acceptor = threading.Thread(target=self._accept, name="mcpool-proxy", daemon=True)
        self.acceptor.start()

    def cut(self) -> None:
        """Close every open connection, and each new one as soon as it is accepted, until uncut()."""
        self.cutting = True
        self.drop()

    def uncut(self) -> None:
        self.cutting = False

    def stop(self) -> None:
        self.stopped.set()
        self.flowing.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.drop()
        if self.acceptor.is_alive():
            self.acceptor.join(timeout=2.0)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
