"""Plain-words explanations of how a run ended and what it saw."""

from __future__ import annotations

import os

from mcpool_cli.bench.results import RunResult

SHARED_HINT = ("A pylibmc.Client has no lock and releases the GIL around every call, so threads that share one "
               "corrupt each other's requests and replies. Give each thread its own client "
               "(--strategy per-thread) or use a pool (fifo, thread-mapped).")


def _seen_before(result: RunResult) -> str:
    stats = result.stats
    parts = [f"{stats.completed:,} ops ({stats.ops():,} of them after the warm-up)"]
    if result.error_count:
        top = ", ".join(f"{name} {count:,}" for name, count in stats.errors.most_common(3))
        parts.append(f"{result.error_count:,} errors ({top})")
    if stats.wrong_values:
        parts.append(f"{stats.wrong_values:,} values of another key")
    if stats.corrupt_values:
        parts.append(f"{stats.corrupt_values:,} corrupt values")
    if stats.misses:
        parts.append(f"{stats.misses:,} misses")
    return "It saw " + ", ".join(parts) + "."


def pool_words(result: RunResult) -> str:
    """Errors raised by the pool itself (its reserve(), or giving a client back), said as the pool's."""
    sites = result.stats.errors_by_site()
    parts = []
    if sites["reserve"]:
        count, top = sum(sites["reserve"].values()), ", ".join(f"{name} {n:,}" for name, n in sites["reserve"].items())
        parts.append(f"The pool's reserve() raised {count:,} times ({top}): the pool could not lend a client, which "
                     f"is the pool's failure, not memcached's (a list pool that is empty raises IndexError). Give it "
                     f"as many clients as threads, or make reserve() wait for one.")
    if sites["release"]:
        count = sum(sites["release"].values())
        parts.append(f"Giving clients back to the pool raised {count:,} times "
                     f"({', '.join(f'{name} {n:,}' for name, n in sites['release'].items())}).")
    return " ".join(parts)


DELAYED_ACK_US = 20_000  # a get's p99 above this, while sets return at once: gets wait for a delayed ACK


def delayed_ack_words(result: RunResult) -> str:
    """For a clean pymemcache run whose gets stall about 40 ms behind sets: why, and the setting that fixes it."""
    if not result.strategy.startswith("pymemcache") or not result.stats.ops("get") or not result.stats.ops("set"):
        return ""
    get_p99_us = result.stats.histogram("get").get_value_at_percentile(99) / 1000
    set_p50_us = result.stats.histogram("set").get_value_at_percentile(50) / 1000
    if get_p99_us < DELAYED_ACK_US or set_p50_us > get_p99_us / 100:
        return ""
    return (f"Gets after a set wait about 40 ms (get p99 {get_p99_us / 1000:.1f} ms) while sets return at once: "
            "pymemcache's "
            "defaults send a set without waiting for its reply (default_noreply=True) and without TCP_NODELAY "
            "(no_delay=False), so the next get on that connection waits for the server's delayed ACK. Pass "
            "no_delay=True (or default_noreply=False, as Django does) to the client.")


def explain(result: RunResult, hang_timeout_s: float) -> str:
    """Why the run ended as it did, and what to do; empty for a clean run."""
    outcome = result.outcome
    hint = " ".join(part for part in (pool_words(result), SHARED_HINT if result.strategy == "shared" else "") if part)
    if outcome.outcome == "crashed":
        said = f'; its last words on stderr were "{outcome.stderr_tail}"' if outcome.stderr_tail else ""
        text = (f"A worker process was killed by {outcome.signal} {outcome.lifetime_s:.1f} s after it started"
                f"{said}. That is the interpreter dying, "
                f"typically memory corruption inside libmemcached. {_seen_before(result)}")
    elif outcome.outcome == "hung" and outcome.message and "starved" in outcome.message:
        cpus = os.cpu_count() or 1
        text = (f"A worker made too little progress for {hang_timeout_s:g} s ({outcome.message}) and was killed: "
                f"it was busy, not stuck in calls — {result.threads:,} threads × {result.processes:,} processes "
                f"are too many for {cpus} CPU{'s' if cpus > 1 else ''}. Use fewer --threads or --processes, or a "
                f"longer --hang-timeout. {_seen_before(result)}")
    elif outcome.outcome == "hung":
        starting = outcome.message and ("starting" in outcome.message or "filling" in outcome.message)
        why = ("it had not finished starting (building the strategy or filling the key space)" if starting
               else "its threads were stuck in calls that never returned")
        text = (f"A worker made no progress for {hang_timeout_s:g} s ({outcome.message or 'no progress'}) and was "
                f"killed: {why}. {_seen_before(result)}")
    elif outcome.outcome == "error":
        text = f"A worker stopped with a Python error: {outcome.message}. {_seen_before(result)}"
    elif outcome.outcome == "interrupted":
        text = (f"Interrupted (Ctrl-C or a termination signal); the figures cover the time measured until then. "
                f"{_seen_before(result)}")
    elif result.stats.wrong_values or result.stats.corrupt_values or result.error_count:
        text = f"The run finished, but not cleanly. {_seen_before(result)}"
    elif result.stats.ok_ops() == 0:
        text = (f"No operation succeeded after the warm-up, so there is nothing to measure: is --duration long "
                f"enough, and does the strategy hand out working clients? {_seen_before(result)}")
    else:
        return delayed_ack_words(result)
    if result.interrupted and outcome.outcome != "interrupted":
        text += " The run was then interrupted (Ctrl-C)."
    return f"{text} {hint}".strip()
