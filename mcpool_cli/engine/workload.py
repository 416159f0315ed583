"""The pure, seeded workload: keys, values that carry their key, and each thread's op schedule."""

from __future__ import annotations

import functools
import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable

from mcpool_cli.engine.plan import Workload

SCHEDULE_LENGTH = 4096  # a power of two, so the loop can index with a mask
GET, SET, DELETE, GET_MULTI = 0, 1, 2, 3  # op codes: the loop indexes its latency lists with them
OP_NAMES = ("get", "set", "delete", "get_multi")
MULTI_KEYS = 4  # a get_multi fetches the chosen key and the next three
DISTRIBUTIONS = ("uniform", "zipf")


@dataclass(frozen=True)
class KeySpace:
    """Keys and the exact value each key must hold."""

    keys: tuple[str, ...]
    values: tuple[bytes, ...]


def key_name(prefix: str, index: int) -> str:
    return f"{prefix}k{index}"


def make_value(key: str, size: int) -> bytes:
    """A value that starts with its own key, padded to `size` bytes (never shorter than key + 1)."""
    head = key.encode() + b"|"
    if size <= len(head):
        return head
    return head + b"." * (size - len(head))


def build_key_space(workload: Workload) -> KeySpace:
    """All keys and values of a workload; the same seed always gives the same sizes."""
    rng = random.Random(workload.seed)
    keys = tuple(key_name(workload.key_prefix, i) for i in range(workload.keys))
    sizes = [rng.randint(workload.value_min, workload.value_max) for _ in keys]
    return KeySpace(keys=keys, values=tuple(make_value(k, s) for k, s in zip(keys, sizes)))


def op_weights(workload: Workload) -> list[int]:
    """The weight of each op code: from `mix` when given, else from the GET:SET weights."""
    if not workload.mix:
        return [workload.get_weight, workload.set_weight]
    named = dict(workload.mix)
    return [named.get(name, 0) for name in OP_NAMES]


def cumulative_shares(weights: list[int]) -> list[float]:
    """Running shares of `weights`, the last exactly 1.0, for `bisect_right(shares, rng.random())`."""
    total = sum(weights)
    shares = [running / total for running in accumulate(weights)]
    shares[-1] = 1.0
    return shares


@functools.lru_cache(maxsize=1)
def zipf_cumulative(keys: int, s: float) -> array:
    """Running sums of 1/(k+1)^s over the key space.

    Cached (one table) because every thread of a worker asks for the same one, and over 10M keys it takes
    about 1.5 s to build.
    """
    return array("d", accumulate((k + 1) ** -s for k in range(keys)))


def key_picker(workload: Workload, rng: random.Random) -> Callable[[], int]:
    """A function drawing one key index from the workload's distribution."""
    if workload.distribution == "uniform":
        return functools.partial(rng.randrange, workload.keys)
    cumulative = zipf_cumulative(workload.keys, workload.zipf_s)
    total, last = cumulative[-1], workload.keys - 1
    return lambda: min(bisect_right(cumulative, rng.random() * total), last)


def build_schedule(workload: Workload, thread_token: int) -> list[tuple[int, int]]:
    """A repeating list of (op code, key index) for one thread, seeded by the workload seed and the thread.

    Key index 0 is the hottest key under zipf. A get/set uniform workload gives the same schedule as
    before ops other than get and set existed.
    """
    if workload.distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown key distribution {workload.distribution!r}")
    rng = random.Random(workload.seed * 1_000_003 + thread_token)
    shares, pick_key = cumulative_shares(op_weights(workload)), key_picker(workload, rng)
    return [(bisect_right(shares, rng.random()), pick_key()) for _ in range(SCHEDULE_LENGTH)]


def multi_keys(index: int, keys: int) -> list[int]:
    """The key indexes a get_multi on `index` fetches: it and the next ones, wrapping, never twice."""
    return [(index + step) % keys for step in range(min(MULTI_KEYS, keys))]


def owner_of_value(value: bytes) -> str | None:
    """The key a value claims to belong to, or None when it carries no key."""
    head, sep, _ = value.partition(b"|")
    if not sep:
        return None
    try:
        return head.decode()
    except UnicodeDecodeError:
        return None


def classify_get(key: str, expected: bytes, got: object) -> str:
    """'ok', 'miss', 'wrong' (another key's value) or 'corrupt' for one get's reply."""
    if got == expected:
        return "ok"
    if got is None:
        return "miss"
    if isinstance(got, bytes):
        owner = owner_of_value(got)
        if owner is not None and owner != key:
            return "wrong"
    return "corrupt"
