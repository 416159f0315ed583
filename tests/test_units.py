import pytest

from mcpool_cli.errors import UsageProblem
from mcpool_cli.engine.server import ServerAddress, parse_server
from mcpool_cli.units import parse_behavior, parse_duration_s, parse_ratio, parse_value_size


@pytest.mark.parametrize("text, seconds", [("500ms", 0.5), ("10s", 10), ("2m", 120), ("1.5", 1.5), ("250us", 0.00025)])
def test_durations(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10x", "-1s", "s", "1 0s"])
def test_bad_durations(text):
    with pytest.raises(UsageProblem, match="not a duration"):
        parse_duration_s(text)


def test_value_sizes():
    assert parse_value_size("100") == (100, 100)
    assert parse_value_size("32-4096") == (32, 4096)
    for bad in ("0", "10-5", "abc", "2000000"):
        with pytest.raises(UsageProblem):
            parse_value_size(bad)


def test_ratios():
    assert parse_ratio("9:1") == (9, 1)
    assert parse_ratio("0:1") == (0, 1)
    for bad in ("0:0", "9", "a:b", "9:1:1"):
        with pytest.raises(UsageProblem):
            parse_ratio(bad)


def test_behaviors():
    assert parse_behavior("tcp_nodelay=1") == ("tcp_nodelay", 1)
    assert parse_behavior("tcp_nodelay=true") == ("tcp_nodelay", 1)
    assert parse_behavior("hash=crc") == ("hash", "crc")
    with pytest.raises(UsageProblem):
        parse_behavior("tcp_nodelay")


def test_servers():
    assert parse_server("127.0.0.1:11311") == ServerAddress("127.0.0.1", 11311)
    assert parse_server("cache1") == ServerAddress("cache1", 11211)
    assert parse_server("[::1]:5000").spec == "[::1]:5000"
    for bad in ("a:b:c", "host:99999", "host:", ""):
        with pytest.raises(UsageProblem):
            parse_server(bad)
