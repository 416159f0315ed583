"""Race detection logic, without memcached: stamps, anomaly classes, desync errors, verdicts."""

import pytest
from pymemcache.exceptions import MemcacheUnexpectedCloseError, MemcacheUnknownCommandError, MemcacheUnknownError

from mcpool_cli.checks.races.stamps import (Stamp, check_own, check_shared, classify_error, decode_value, encode_value,
                              verdict)


def test_values_carry_key_writer_and_sequence():
    raw = encode_value("p:t3:o1", 3, 17)
    assert decode_value(raw) == Stamp("p:t3:o1", 3, 17)
    for junk in (None, b"", b"STORED", b"p:k|x|1|", b"a|1|2", "text"):
        assert decode_value(junk) is None


def test_own_key_anomalies():
    key = "p:t3:o1"
    assert check_own(key, 3, 5, encode_value(key, 3, 5)) is None
    assert check_own(key, 3, 5, None) == "false_miss"
    assert check_own(key, 3, 5, encode_value(key, 3, 4)) == "stale_own"
    assert check_own(key, 3, 5, encode_value("p:t9:o1", 9, 5)) == "other_key"
    assert check_own(key, 3, 5, encode_value(key, 4, 5)) == "corrupt"  # nobody else writes this key
    assert check_own(key, 3, 5, encode_value(key, 3, 6)) == "corrupt"  # a value from the future
    assert check_own(key, 3, 5, b"END") == "corrupt"


def test_shared_key_anomalies():
    assert check_shared("p:s1", encode_value("p:s1", -1, 0)) is None
    assert check_shared("p:s1", encode_value("p:s2", -1, 0)) == "other_key"
    assert check_shared("p:s1", None) == "false_miss"
    assert check_shared("p:s1", b"\x00garbage") == "corrupt"


class Error(Exception):
    pass


class SocketCreateError(Exception):
    pass


@pytest.mark.parametrize("exc, kind", [
    (Error("error 21 from memcached_set"), "protocol_desync"),  # END, the reply to a get
    (Error("error 15 from memcached_get(p:s1)"), "protocol_desync"),  # STORED, the reply to a set
    (SocketCreateError("error 11 from memcached_get"), "protocol_desync"),  # the server said ERROR
    (Error("error 31 from memcached_set: A TIMEOUT OCCURRED"), "error"),
    (Error("error 47 from memcached_get(k): SERVER HAS FAILED AND IS DISABLED UNTIL TIMED RETRY"), "error"),
    (ConnectionError("error 3 from memcached_set: CONNECTION FAILURE"), "error"),
    (MemcacheUnknownError("STORED"), "protocol_desync"),  # pymemcache: a set's reply read by a get
    (MemcacheUnknownCommandError("ERROR"), "protocol_desync"),
    (MemcacheUnexpectedCloseError(), "error"),
])
def test_desync_errors_are_told_from_ordinary_ones(exc, kind):
    assert classify_error(exc) == kind


def test_verdicts():
    assert verdict(["ok", "ok"], 0) == "safe"
    assert verdict(["ok", "ok"], 3) == "racy"
    assert verdict(["ok", "hung"], 3) == "hung"
    assert verdict(["hung", "crashed"], 0) == "crashed"


def test_safe_needs_evidence():
    assert verdict(["ok"], 0, checked=0) == "inconclusive"
    assert verdict(["ok"], 0, checked=1000, errors=500, ops=3000) == "inconclusive"
    assert verdict(["ok", "interrupted"], 0, checked=1000, ops=3000) == "interrupted"
    assert verdict(["ok", "interrupted"], 4, checked=1000, ops=3000) == "racy"


def test_misses_after_a_flush_or_eviction_are_not_evidence():
    from collections import Counter

    from mcpool_cli.checks.races.session import RaceStats, StrategyCheck, Trial
    from mcpool_cli.engine.outcomes import WorkerOutcome

    def trial(evictions=0, flushed=False, **anomalies):
        stats = RaceStats(completed=3000, checked=2000, anomalies=Counter(anomalies))
        return Trial(1, WorkerOutcome("ok"), stats, evictions, flushed)

    assert StrategyCheck.judged("per-thread", (trial(flushed=True, false_miss=40),)).verdict == "safe"
    assert StrategyCheck.judged("per-thread", (trial(evictions=3, false_miss=40),)).verdict == "safe"
    assert StrategyCheck.judged("per-thread", (trial(false_miss=40),)).verdict == "racy"
    assert StrategyCheck.judged("per-thread", (trial(flushed=True, false_miss=4, other_key=1),)).verdict == "racy"


def test_a_judged_check_and_its_session_load_back_as_they_were_written():
    from collections import Counter

    from mcpool_cli.checks.races.loop import RaceBatch
    from mcpool_cli.checks.races.session import RaceOptions, RaceSession, RaceStats, StrategyCheck, Trial, from_json
    from mcpool_cli.engine.outcomes import WorkerOutcome
    from mcpool_cli.engine.server import ServerAddress
    from mcpool_cli.engine.session import Servers

    examples = [{"kind": "other_key", "key": "k1", "expected": "k1|3|1|", "got": "k2|4|9|"}]
    stats = RaceStats(completed=300, checked=200, anomalies=Counter(other_key=2), errors=Counter(ServerDown=1),
                      examples=examples, first_anomaly_s=0.0125)
    crashed = WorkerOutcome("crashed", "SIGABRT", "double free or corruption (out)", None, lifetime_s=0.9)
    check = StrategyCheck.judged("shared", (Trial(1, crashed, stats, 0), Trial(2, WorkerOutcome(), RaceStats(), 0)))
    assert check.verdict == "crashed" and "SIGABRT" in check.summary and check.advice
    assert StrategyCheck.from_json(check.to_json()) == check
    session = RaceSession(RaceOptions(("shared",), threads=4, seed=7), Servers((ServerAddress("127.0.0.1", 1),), True,
                                                                              "1.6.18"), results=[check])
    loaded = from_json(session.to_json())
    assert (loaded.options, loaded.servers, loaded.results, loaded.run_id) == (
        session.options, session.servers, session.results, session.run_id)
    batch = RaceBatch(ops=30, checked=20, anomalies={"stale_own": 1}, errors={"Error": 2, "KeyError": 3},
                      first_anomaly_ns=1500, examples=examples,
                      error_sites={"pylibmc.Error at pylibmc": 2, "KeyError at lib/client.py:_fetch": 3},
                      library_errors=3)
    assert RaceBatch.from_message(batch.to_message()) == batch
    old = {k: v for k, v in batch.to_message().items() if k not in ("error_sites", "library_errors")}
    assert RaceBatch.from_message(old).error_sites == {} and RaceBatch.from_message(old).library_errors == 0


def test_seed_drives_the_order_of_keys_a_thread_visits():
    from mcpool_cli.checks.races.loop import RaceThread

    def order(seed):
        thread = RaceThread(None, "p:", 3, 0, 0, lambda batch: None, 1, seed)
        return thread.own_order, thread.shared_order

    assert order(1) == order(1) and order(1) != order(2)
    assert sorted(order(1)[1]) == list(range(64))


def test_examples_saved_before_got_was_text_read_back_as_replies():
    from mcpool_cli.checks.races.session import example_from_json

    old = {"kind": "other_key", "key": "k1", "expected": "k1|3|1|", "got": "b'k2|4|9|'"}
    assert example_from_json(old)["got"] == "k2|4|9|"
    assert example_from_json({**old, "got": "None"})["got"] is None
    assert example_from_json({**old, "got": None})["got"] is None
    assert example_from_json({**old, "got": "Error: error 21 from memcached_get"})["got"].startswith("Error: ")


def test_safe_needs_no_unexplained_error():
    assert verdict(["ok"], 0, checked=100_000, errors=1, ops=150_000) == "inconclusive"
    assert verdict(["ok"], 0, checked=100_000, errors=1, ops=150_000, library_errors=1) == "racy"
    assert verdict(["ok", "interrupted"], 0, checked=1000, errors=3, ops=3000, library_errors=3) == "racy"
    assert verdict(["ok", "crashed"], 0, checked=1000, errors=3, ops=3000, library_errors=3) == "crashed"
    assert verdict(["ok"], 0, checked=100_000, errors=0, ops=150_000) == "safe"


def _raise(exc):
    try:
        raise exc
    except Exception as caught:
        return caught


def test_an_error_names_where_it_was_raised_and_whether_only_concurrency_explains_it():
    from mcpool_cli.checks.races.stamps import error_site
    from tests import fault_strategies

    def fetch(table):
        return table["gone"]

    try:
        fetch({})
    except KeyError as exc:
        site, library = error_site(exc)
        assert site.startswith("KeyError at ") and site.endswith("test_races_units.py:fetch") and library
    site, library = error_site(_raise(TimeoutError("timed out")))  # socket errors and timeouts are OSErrors
    assert site.endswith("test_races_units.py:_raise") and library
    assert error_site(_raise(RuntimeError("no client")))[1] is False  # not an error only concurrency explains
    assert error_site(SocketCreateError("error 11"))[0] == "SocketCreateError at tests.test_races_units"  # no frame
    assert fault_strategies.inflight_pool.__doc__


def test_raised_from_mcpool_itself_is_no_library_error():
    """An exception a C extension raises comes out of mcpool's own call: named by its module, not evidence."""
    from mcpool_cli.checks.races.stamps import error_site
    from mcpool_cli.engine.strategies import leased_call

    class Pool:
        def reserve(self):
            class Lease:
                def __enter__(self):
                    return {}  # a dict: .get(key) of a missing method is AttributeError raised in leased_call

                def __exit__(self, *exc):
                    return False
            return Lease()

    try:
        leased_call(Pool(), 0, "fetch", "k")
    except AttributeError as exc:
        assert error_site(exc) == ("AttributeError at builtins", False)


def test_errors_after_a_server_event_are_shown_and_set_aside():
    from collections import Counter

    from mcpool_cli.checks.races.session import RaceStats, StrategyCheck, Trial
    from mcpool_cli.engine.outcomes import WorkerOutcome

    def trial(evictions=0, flushed=False, library=0, **errors):
        stats = RaceStats(completed=150_000, checked=100_000, errors=Counter(errors), library_errors=library,
                          error_sites={f"{name} at lib.py:read": count for name, count in errors.items()})
        return Trial(1, WorkerOutcome("ok"), stats, evictions, flushed)

    racy = StrategyCheck.judged("custom:pool", (trial(library=28, KeyError=28), trial()))
    assert racy.verdict == "racy" and racy.error_sites == {"KeyError at lib.py:read": 28}
    assert "inside the client library" in racy.summary and racy.affected == 1
    row = racy.to_json()
    assert row["error_sites"] == {"KeyError at lib.py:read": 28} and row["library_errors"] == 28
    assert row["unexplained_errors"] == 28 and StrategyCheck.from_json(row) == racy
    unexplained = StrategyCheck.judged("custom:pool", (trial(ServerDown=3),))
    assert unexplained.verdict == "inconclusive" and "ServerDown at lib.py:read" in unexplained.summary
    restarted = StrategyCheck.judged("custom:pool", (trial(flushed=True, library=5, ConnectionResetError=5),))
    assert restarted.verdict == "safe" and restarted.errors and restarted.unexplained_errors == 0
    evicted = StrategyCheck.judged("custom:pool", (trial(evictions=2, ServerError=5),))
    assert evicted.verdict == "safe"


def test_error_sites_are_capped():
    from mcpool_cli.checks.races.loop import RaceBatch, merge_race_batches
    from mcpool_cli.checks.races.stamps import MAX_SITES, OTHER_SITES

    batches = [RaceBatch(errors={"KeyError": 1}, error_sites={f"KeyError at m.py:f{i}": 1}, library_errors=1)
               for i in range(MAX_SITES + 5)]
    merged = merge_race_batches(batches)
    assert len(merged.error_sites) == MAX_SITES + 1 and merged.error_sites[OTHER_SITES] == 5
    assert merged.library_errors == MAX_SITES + 5


def test_a_call_still_waiting_for_a_client_when_the_trial_ends_is_no_error():
    import queue

    from mcpool_cli.checks.races.loop import RaceThread
    from mcpool_cli.engine.strategies import Strategy

    class Exhausted(Strategy):
        def reserve(self):
            raise queue.Empty

    ended = RaceThread(Exhausted(), "p:", 1, 0, 0, lambda batch: None, 1)
    assert ended.call("get", "p:s1") == (False, None)
    assert ended.batch.errors == {} and ended.batch.error_sites == {}
    running = RaceThread(Exhausted(), "p:", 1, 0, 2**62, lambda batch: None, 1)

    class Refusing(Strategy):
        def reserve(self):
            raise RuntimeError("no client for you")

    running.strategy = Refusing()
    assert running.call("get", "p:s1") == (False, None)
    assert running.batch.errors == {"RuntimeError": 1} and running.batch.library_errors == 0
    (site,) = running.batch.error_sites
    assert site.startswith("RuntimeError at ") and site.endswith("test_races_units.py:reserve")
