"""Pure race detection: values that carry key, writer and sequence, and the classes of anomaly they reveal."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from types import TracebackType

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
DESYNC_CLASSES = frozenset({"UnknownReadFailure", "ProtocolError", "SocketCreateError", "DataExists",  # pylibmc
                            # pymemcache: a reply it did not expect (another command's: STORED to a get), and
                            # the server's ERROR or CLIENT_ERROR to a request two threads' writes garbled
                            "MemcacheUnknownError", "MemcacheUnknownCommandError", "MemcacheClientError"})
_CODE = re.compile(r"error (\d+) from ")
# Exceptions a client library raises from its own Python code when two threads share its state: a dict entry
# another thread removed, a half-read reply, an assertion on protocol state, a socket in the wrong state. Against
# a healthy server only concurrency explains them (OSError covers socket errors and timeouts).
CONCURRENCY_ERRORS = (KeyError, AttributeError, AssertionError, IndexError, TypeError, ValueError, OSError)
MAX_SITES = 20  # distinct error sites kept per trial; the rest are counted under OTHER_SITES
OTHER_SITES = "other sites"
_MCPOOL_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # mcpool_cli/


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


def short_path(filename: str) -> str:
    """A source file as its module path reads: after site-packages, else relative to the longest sys.path entry."""
    path = os.path.abspath(filename)
    for marker in ("site-packages", "dist-packages"):
        head, sep, tail = path.rpartition(os.sep + marker + os.sep)
        if sep:
            return tail
    roots = [os.path.abspath(entry or os.getcwd()) for entry in sys.path]
    roots = [root for root in roots if path.startswith(root.rstrip(os.sep) + os.sep)]
    return os.path.relpath(path, max(roots, key=len)) if roots else os.path.basename(path)


def innermost_frame(tb: TracebackType | None) -> tuple[str, str] | None:
    """(file, function) of the frame that raised, the traceback's last; None without a traceback."""
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename, tb.tb_frame.f_code.co_name


def error_site(exc: BaseException) -> tuple[str, bool]:
    """(where an error was raised, whether only concurrency explains it).

    The site is the exception's class and the module and function of its innermost Python frame, e.g.
    `KeyError at pymemcache/client/base.py:_fetch_cmd`; an exception raised by C code (pylibmc) comes out of
    mcpool's own call, so it is named by the class's module instead (`Timeout at pylibmc`). Concurrency alone
    explains it when it is a KeyError, AttributeError, AssertionError, IndexError, TypeError, ValueError or OSError
    (socket errors, timeouts) raised from the client library's own Python code, not from mcpool's.
    """
    cls = type(exc)
    name = cls.__name__
    frame = innermost_frame(exc.__traceback__)
    if frame is None or os.path.abspath(frame[0]).startswith(_MCPOOL_DIR + os.sep):
        return f"{name} at {cls.__module__.lstrip('_')}", False
    return f"{name} at {short_path(frame[0])}:{frame[1]}", isinstance(exc, CONCURRENCY_ERRORS)


def add_site(sites: dict[str, int], site: str, count: int = 1) -> None:
    """Count `site` in `sites`, at most MAX_SITES distinct ones; the rest under OTHER_SITES."""
    if site in sites or len(sites) < MAX_SITES:
        sites[site] = sites.get(site, 0) + count
    else:
        sites[OTHER_SITES] = sites.get(OTHER_SITES, 0) + count


def verdict(outcomes: list[str], anomalies: int, checked: int = 1, errors: int = 0, ops: int = 0,
            library_errors: int = 0) -> str:
    """crashed, hung, error, racy, or safe over all trials of one strategy (the worst wins).

    `errors` are the calls that failed with no server event to explain them, `library_errors` those of them that
    only concurrency explains (raised inside the client library: see `error_site`): they are evidence of a race
    as much as a wrong reply is. Safe needs evidence of safety: replies were really compared, no call failed
    unexplained, no trial was cut short. Otherwise the verdict is `inconclusive` (or `interrupted`), never `safe`.
    """
    for bad in ("crashed", "hung", "error"):
        if bad in outcomes:
            return bad
    if anomalies or library_errors:
        return "racy"
    if "interrupted" in outcomes:
        return "interrupted"
    if checked == 0 or errors:
        return "inconclusive"
    return "safe"
