"""The pure, seeded workload: keys, values that carry their key, and each thread's op schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mcpool_cli.plan import Workload

SCHEDULE_LENGTH = 4096  # a power of two, so the loop can index with a mask
GET, SET = 0, 1
OP_NAMES = ("get", "set")


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


def build_schedule(workload: Workload, thread_token: int) -> list[tuple[int, int]]:
    """A repeating list of (op, key index) for one thread, seeded by the workload seed and the thread."""
    rng = random.Random(workload.seed * 1_000_003 + thread_token)
    total = workload.get_weight + workload.set_weight
    get_share = workload.get_weight / total
    return [
        (GET if rng.random() < get_share else SET, rng.randrange(workload.keys))
        for _ in range(SCHEDULE_LENGTH)
    ]


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
