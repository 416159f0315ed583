"""The pacer: when each op of a paced thread is due (bench's `--rate`, check-stale's steady load).

A thread's intended start times follow a cycle of gaps: all equal (constant spacing), or drawn from an
exponential distribution (Poisson arrivals) and scaled so that the cycle's mean gap is exactly the asked
one, so the rate a run offers is the rate it was asked for, not the luck of a random draw. The first due
time is spread over the first gap, so that the threads of a run do not all fire together.

Both loops read the gaps the same way: `due += gaps[k & GAP_MASK]`. bench inlines that in its hot loop;
check-stale calls `Pacer.advance`. Late ops are never skipped by the pacer itself: bench starts a late op as
soon as it can (its latency then counts from the intended start); check-stale counts whole missed gaps as
ops lost (`Pacer.skip_missed`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import time

GAP_CYCLE = 4096  # a power of two, so a loop can index with a mask
GAP_MASK = GAP_CYCLE - 1
ARRIVALS = ("constant", "poisson")
PR_SET_TIMERSLACK = 29
TIMER_SLACK_NS = 1_000  # the kernel's default, 50 µs, would add up to 50 µs of lateness to every sleep


def gap_cycle(rate_per_s: float, arrival: str, rng: random.Random) -> list[int]:
    """GAP_CYCLE gaps in ns whose sum is GAP_CYCLE times the mean gap (1e9 / rate), to the nanosecond."""
    if rate_per_s <= 0:
        raise ValueError("a rate must be above 0")
    total = round(GAP_CYCLE * 1e9 / rate_per_s)
    if arrival == "constant":
        weights = [1.0] * GAP_CYCLE
    elif arrival == "poisson":
        weights = [rng.expovariate(1.0) for _ in range(GAP_CYCLE)]
    else:
        raise ValueError(f"unknown arrival {arrival!r}: use one of {', '.join(ARRIVALS)}")
    scale = total / sum(weights)
    gaps = [int(weight * scale) for weight in weights]
    for index in range(total - sum(gaps)):  # the rounding remainder, a nanosecond each, spread from the start
        gaps[index % GAP_CYCLE] += 1
    return gaps


def first_due(start_ns: int, gaps: list[int], rng: random.Random) -> int:
    """A thread's first intended start: somewhere in the first mean gap after `start_ns`."""
    return start_ns + rng.randrange(max(1, sum(gaps) // GAP_CYCLE))


def lower_timer_slack() -> None:
    """Wake this thread within a microsecond of when it asked (Linux; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def sleep_until(due_ns: int, now_ns: int) -> None:
    """Sleep until `due_ns` on the perf_counter/monotonic clock (both CLOCK_MONOTONIC on Linux)."""
    if due_ns > now_ns:
        time.sleep((due_ns - now_ns) / 1e9)


def still_due(due_ns: int, k: int, gaps: list[int], end_ns: int) -> int:
    """How many ops were due before `end_ns` from the one due at `due_ns` (the k-th) on: a backlog never
    started because the run ended."""
    count = 0
    while due_ns < end_ns:
        count += 1
        due_ns += gaps[k & GAP_MASK]
        k += 1
    return count


class Pacer:
    """One thread's schedule of intended start times, for loops that are not hot enough to inline it."""

    def __init__(self, rate_per_s: float, start_ns: int, arrival: str = "constant", seed: int = 0) -> None:
        rng = random.Random(seed)
        self.gaps = gap_cycle(rate_per_s, arrival, rng)
        self.cycle_ns = sum(self.gaps)  # one whole cycle of gaps, whichever gap it starts from
        self.due = first_due(start_ns, self.gaps, rng)
        self.k = 0

    @property
    def mean_gap_ns(self) -> int:
        return self.cycle_ns // GAP_CYCLE

    def advance(self) -> int:
        """The next op's intended start."""
        self.due += self.gaps[self.k & GAP_MASK]
        self.k += 1
        return self.due

    def restart(self, start_ns: int) -> None:
        """Go on from `start_ns` (after a pause that is not lateness)."""
        self.due = start_ns

    def skip_missed(self, now_ns: int) -> int:
        """Drop the ops whose whole gap has passed without them starting (a stuck thread): how many. The op due
        last before `now_ns` stays due, and starts now."""
        skipped = 0
        if now_ns - self.due >= 2 * self.cycle_ns:  # a long stall at a high rate: whole cycles at once, same result
            cycles = (now_ns - self.due) // self.cycle_ns - 1
            self.due += cycles * self.cycle_ns
            self.k += cycles * GAP_CYCLE
            skipped = cycles * GAP_CYCLE
        while now_ns - self.due >= self.gaps[self.k & GAP_MASK]:
            self.advance()
            skipped += 1
        return skipped
