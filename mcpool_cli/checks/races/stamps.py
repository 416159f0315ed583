"""Pure race detection: values that carry key, writer and sequence, and the classes of anomaly they reveal."""

from __future__ import annotations

import re
from dataclasses import dataclass

ANOMALIES = ("other_key", "stale_own", "false_miss", "corrupt", "protocol_desync")
ANOMALY_WORDS = {
    "other_key": "value of another key",
    "stale_own": "stale own value (older than this thread last wrote)",
    "false_miss": "false miss (a key known to be present answered as missing)",
    "corrupt": "corrupt value (unreadable, or written by no one who could)",
    "protocol_desync": "protocol desync (an error that is another command's reply)",
}
# libmemcached return codes that, raised from a plain get or set, mean the client read a reply meant for
# another command: UNKNOWN READ FAILURE, PROTOCOL ERROR, ERROR (pylibmc's SocketCreateError), DATA EXISTS,
# NOT STORED, STORED, NOT FOUND, END, DELETED, VALUE, STAT, ITEM, parse error.
DESYNC_CODES = frozenset({7, 8, 11, 12, 14, 15, 16, 21, 22, 23, 24, 25, 43})
DESYNC_CLASSES = frozenset({"UnknownReadFailure", "ProtocolError", "SocketCreateError", "DataExists"})
_CODE = re.compile(r"error (\d+) from ")


@dataclass(frozen=True)
class Stamp:
    """What a race-check value says about itself."""

    key: str
    writer: int  # the writing thread's token, never reused within a run
    seq: int


def encode_value(key: str, writer: int, seq: int) -> bytes:
    return f"{key}|{writer}|{seq}|".encode()


def decode_value(raw: object) -> Stamp | None:
    """The stamp of a value, or None when it is not one mcpool wrote."""
    if not isinstance(raw, bytes):
        return None
    parts = raw.split(b"|")
    if len(parts) != 4 or parts[3] != b"":
        return None
    try:
        return Stamp(parts[0].decode(), int(parts[1]), int(parts[2]))
    except (UnicodeDecodeError, ValueError):
        return None


def _stamp_of(key: str, got: object) -> tuple[str | None, Stamp | None]:
    """(anomaly, stamp) for any key: a miss, an unreadable value, or another key's value."""
    if got is None:
        return "false_miss", None
    stamp = decode_value(got)
    if stamp is None:
        return "corrupt", None
    return ("other_key" if stamp.key != key else None), stamp


def check_own(key: str, writer: int, last_seq: int, got: object) -> str | None:
    """The anomaly in a get of a key only this thread writes, after it last wrote `last_seq`; None if fine."""
    anomaly, stamp = _stamp_of(key, got)
    if anomaly or stamp is None:
        return anomaly
    if stamp.writer != writer or stamp.seq > last_seq:
        return "corrupt"
    return "stale_own" if stamp.seq < last_seq else None


def check_shared(key: str, got: object) -> str | None:
    """The anomaly in a get of a key written once before the load and only read since; None if fine."""
    return _stamp_of(key, got)[0]


def classify_error(exc: BaseException) -> str:
    """`protocol_desync` for an error that is really another command's reply, else `error`."""
    if type(exc).__name__ in DESYNC_CLASSES:
        return "protocol_desync"
    match = _CODE.search(str(exc))
    if match and int(match.group(1)) in DESYNC_CODES:
        return "protocol_desync"
    return "error"


def verdict(outcomes: list[str], anomalies: int, checked: int = 1, errors: int = 0, ops: int = 0) -> str:
    """crashed, hung, error, racy, or safe over all trials of one strategy (the worst wins).

    Safe needs evidence of safety: replies were really compared, few calls failed, no trial was cut short.
    Otherwise the verdict is `inconclusive` (or `interrupted`), never `safe`.
    """
    for bad in ("crashed", "hung", "error"):
        if bad in outcomes:
            return bad
    if anomalies:
        return "racy"
    if "interrupted" in outcomes:
        return "interrupted"
    if checked == 0 or errors > max(10, ops // 100):
        return "inconclusive"
    return "safe"
