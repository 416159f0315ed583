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

    assert StrategyCheck("per-thread", (trial(flushed=True, false_miss=40),)).verdict == "safe"
    assert StrategyCheck("per-thread", (trial(evictions=3, false_miss=40),)).verdict == "safe"
    assert StrategyCheck("per-thread", (trial(false_miss=40),)).verdict == "racy"
    assert StrategyCheck("per-thread", (trial(flushed=True, false_miss=4, other_key=1),)).verdict == "racy"
