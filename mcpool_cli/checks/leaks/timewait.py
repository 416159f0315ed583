"""Sockets in TIME_WAIT to the memcached servers, read from Linux's /proc/net/tcp and /proc/net/tcp6.

The side that closes a TCP connection first keeps its socket in TIME_WAIT for about a minute, holding its local
port. When clients close (pylibmc when a client is freed, a library's disconnect), those are client-side sockets:
local port ephemeral, remote address the server's. A program that opens and closes a connection per request piles
them up until connect() fails with "Cannot assign requested address" (Errno 99).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from typing import Iterable

from mcpool_cli.engine.server import ServerAddress

TIME_WAIT = "06"  # the `st` column: include/net/tcp_states.h numbers TCP_TIME_WAIT 6
PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")

Endpoint = tuple[str, int]  # (address in ipaddress's compressed notation, port)


def decode_address(hex_address: str, byteorder: str = sys.byteorder) -> str:
    """An address as /proc/net/tcp writes it: each 32-bit word of the network-order address printed as a number
    of the host's byte order (`%08X`), so 127.0.0.1 is 0100007F on a little-endian host, 7F000001 on a big-endian
    one. An IPv4-mapped IPv6 address comes back as its IPv4 address."""
    fmt = "<I" if byteorder == "little" else ">I"
    raw = b"".join(struct.pack(fmt, int(hex_address[i:i + 8], 16)) for i in range(0, len(hex_address), 8))
    address = ipaddress.ip_address(raw)
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def decode_endpoint(text: str, byteorder: str = sys.byteorder) -> Endpoint:
    """`ADDRESS:PORT` of /proc/net/tcp: the port is the number itself in hex (:2B67 is 11111)."""
    hex_address, _, hex_port = text.partition(":")
    return decode_address(hex_address, byteorder), int(hex_port, 16)


def count_time_wait(table: str, remotes: frozenset[Endpoint], byteorder: str = sys.byteorder) -> int:
    """Sockets of a /proc/net/tcp(6) table in TIME_WAIT whose remote endpoint is one of `remotes`; the heading
    line and lines that are not sockets are skipped."""
    count = 0
    for line in table.splitlines():
        columns = line.split()
        if len(columns) < 4 or not columns[0].endswith(":") or columns[3] != TIME_WAIT:
            continue
        count += decode_endpoint(columns[2], byteorder) in remotes
    return count


def server_endpoints(servers: Iterable[ServerAddress]) -> frozenset[Endpoint]:
    """Every address each server's name resolves to, with its port (a name may resolve to IPv4 and IPv6)."""
    endpoints = set()
    for server in servers:
        try:
            infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
        except OSError:
            infos = []
        endpoints |= {(str(ipaddress.ip_address(info[4][0].split("%")[0])), server.port) for info in infos}
    return frozenset(endpoints)


def read_time_wait(remotes: frozenset[Endpoint], tables: tuple[str, ...] = PROC_TABLES) -> int | None:
    """Sockets in this network namespace in TIME_WAIT to `remotes`; None when no table can be read (not Linux)."""
    counts = []
    for path in tables:
        try:
            with open(path, encoding="ascii") as table:
                counts.append(count_time_wait(table.read(), remotes))
        except OSError:
            continue  # no tcp6 without IPv6; no /proc at all off Linux
    return sum(counts) if counts else None
