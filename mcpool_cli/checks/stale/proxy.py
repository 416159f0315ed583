"""A loopback TCP proxy that mcpool puts between its workers and a server, to cut or freeze connections.

It never touches the server: `drop()` closes every client connection at once (as a restart or a network
blip does to a client), `freeze()` stops forwarding bytes until `thaw()` (as a stalled server or a
stop-the-world pause does). Two threads per connection, one per direction, with blocking sockets: simple,
and fast enough for the steady load of `check-stale`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from mcpool_cli.engine.server import ServerAddress

CHUNK = 65536


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
        self.acceptor = threading.Thread(target=self._accept, name="mcpool-proxy", daemon=True)

    def start(self) -> "FaultProxy":
        self.acceptor.start()
        return self

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # the listener was closed: the proxy is stopping
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
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                self.flowing.wait()
                if pair.closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        pair.close()
        with self.lock, contextlib.suppress(ValueError):
            self.pairs.remove(pair)

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
