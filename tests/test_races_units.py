"""Race detection logic, without memcached: stamps, anomaly classes, desync errors, verdicts."""

import pytest

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
    batch = RaceBatch(ops=30, checked=20, anomalies={"stale_own": 1}, errors={"Error": 2}, first_anomaly_ns=1500,
                      examples=examples)
    assert RaceBatch.from_message(batch.to_message()) == batch


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
