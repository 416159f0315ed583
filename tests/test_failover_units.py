"""check-failover's parts without a check-failover run: the proxy's key reader, the proxy against a real memcached,
the worker's message, the analysis on hand-made ops, verdicts, advice, configurations and the node wipe."""

import json
import socket
import struct
import threading
import time

import pylibmc
import pytest

from mcpool_cli.checks.failover.analysis import (FailoverStats, Moments, RouteProbe, Routing, analyse, interval_for,
                                                 over_time)
from mcpool_cli.checks.failover.configs import Config, check_config, expand_configs, parse_config
from mcpool_cli.checks.failover.faults import delete_keys
from mcpool_cli.checks.failover.loop import (FIRST_ERROR, GET_OK, MISS, NOT_STORED, SET_OK, STALE, WRONG, ErrorCodes,
                                             OpBatch)
from mcpool_cli.checks.failover.session import FailoverFigures, failover_advice, failover_verdict
from mcpool_cli.engine.outcomes import WorkerOutcome
from mcpool_cli.engine.proxy import MAX_LINE, FaultProxy, KeyReader
from mcpool_cli.errors import UsageProblem

# ---------------------------------------------------------------- KeyReader

# every command the reader knows, with data blocks that look like commands or line ends
STREAM = (b"get pa pb pc\r\n"
          b"set ps 0 0 7\r\nget x\r\n\r\n"  # a data block that reads as a command: not one
          b"gets pd\r\n"
          b"cas pe 0 0 3 77\r\nabc\r\n"
          b"delete pf\r\n"
          b"incr pg 1\r\n"
          b"decr pg2 1 noreply\r\n"
          b"touch ph 10\r\n"
          b"version\r\n"
          b"gat 0 pi pj\r\n"
          b"ms pk 4 T0\r\n\r\n\r\n\r\n"  # meta set whose data is two line ends
          b"add pl 5 0 2 noreply\r\n\r\n\r\n"
          b"mg pm v\r\n")
STREAM_KEYS = [b"pa", b"pb", b"pc", b"ps", b"pd", b"pe", b"pf", b"pg", b"pg2", b"ph", b"pi", b"pj", b"pk", b"pl",
               b"pm"]


def read(*chunks: bytes) -> tuple[list[bytes], KeyReader]:
    reader = KeyReader()
    keys = [key for chunk in chunks for key in reader.feed(chunk)]
    return keys, reader


def test_key_reader_reads_every_command_in_one_chunk():
    keys, reader = read(STREAM)
    assert keys == STREAM_KEYS and not reader.broken and reader.buffer == b"" and reader.skip == 0


def test_key_reader_returns_the_keys_of_the_commands_each_chunk_completes():
    reader = KeyReader()
    assert reader.feed(b"get a b") == []  # not complete yet
    assert reader.feed(b" c\r\nset d 0 0 5\r\nhel") == [b"a", b"b", b"c", b"d"]
    assert reader.feed(b"lo\r") == [] and reader.feed(b"\nget e\r\n") == [b"e"]
    assert not reader.broken


@pytest.mark.parametrize("cut", [
    STREAM.index(b"0 0 7"),  # inside a storage command line
    STREAM.index(b"x\r\n\r\n"),  # inside the data block that looks like a get
    STREAM.index(b"get x") + 6,  # between the \r and \n inside the data block
    STREAM.index(b"get x") + 8,  # between the \r and \n that end the data block
    STREAM.index(b"pe 0 0 3 77") + 12,  # between the \r and \n of a command line
    STREAM.index(b"abc") + 1,  # inside cas's data
    STREAM.index(b"T0\r\n") + 6,  # meta set: between its data's two line ends
])
def test_key_reader_across_awkward_chunk_boundaries(cut):
    keys, reader = read(STREAM[:cut], STREAM[cut:])
    assert keys == STREAM_KEYS and not reader.broken


def test_key_reader_at_every_boundary_and_byte_by_byte():
    for cut in range(1, len(STREAM)):
        assert read(STREAM[:cut], STREAM[cut:])[0] == STREAM_KEYS, cut
    keys, reader = read(*(STREAM[i:i + 1] for i in range(len(STREAM))))
    assert keys == STREAM_KEYS and not reader.broken


def test_a_data_block_that_holds_a_get_is_not_a_command():
    assert read(b"set k 0 0 7\r\nget x\r\n\r\n")[0] == [b"k"]
    assert read(b"set k 0 0 7\r\nget", b" x\r", b"\n\r\nget y\r\n")[0] == [b"k", b"y"]
    assert read(b"ms k 15 T0\r\ndelete victim\r\n", b"\r\n")[0] == [b"k"]


def binary_set(key: bytes, value: bytes) -> bytes:
    extras = struct.pack(">II", 0, 0)
    header = struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), len(extras), 0, 0, len(extras) + len(key) + len(value),
                         0, 0)
    return header + extras + key + value


def binary_get(key: bytes) -> bytes:
    return struct.pack(">BBHBBHIIQ", 0x80, 0x00, len(key), 0, 0, 0, len(key), 0, 0) + key


def test_binary_protocol_breaks_the_reader_for_good():
    keys, reader = read(binary_get(b"pk1"))
    assert keys == [] and reader.broken
    assert reader.feed(b"get pa\r\n") == []  # for good: the connection's keys go unseen


def test_binary_protocol_with_a_line_end_in_the_packet_breaks_the_reader():
    keys, reader = read(binary_set(b"pk1", b"value\r\nwith a line end"))
    assert keys == [] and reader.broken


@pytest.mark.parametrize("line", [b"set pk 0 0 many\r\n", b"set pk 0\r\n", b"cas pk 0 0\r\n", b"ms pk\r\n",
                                  b"ms pk big T0\r\n"])
def test_a_garbled_storage_line_breaks_the_reader(line):
    keys, reader = read(b"get pa\r\n", line + b"get pb\r\n")
    assert keys == [b"pa"] and reader.broken
    assert reader.feed(b"get pc\r\n") == []


def test_a_line_longer_than_any_command_breaks_the_reader():
    keys, reader = read(b"get " + b"a" * MAX_LINE)
    assert keys == [] and reader.broken


def test_commands_without_keys_leave_the_reader_working():
    keys, reader = read(b"version\r\nstats\r\nflush_all 0\r\n\r\nmn\r\nget pa\r\n")
    assert keys == [b"pa"] and not reader.broken


# ---------------------------------------------------------------- FaultProxy against a real memcached


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def collect_seen(proxy: FaultProxy, count: int, timeout_s: float = 2.0) -> list[tuple[int, bytes]]:
    """What the proxy noted, once at least `count` keys are (the note lands just after the bytes went on)."""
    seen: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        seen += proxy.take_seen()
        time.sleep(0.01)
    time.sleep(0.05)
    return seen + proxy.take_seen()


def connected(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection((proxy.address.host, proxy.address.port), timeout=2.0)
    sock.sendall(b"version\r\n")
    assert sock.recv(256).startswith(b"VERSION ")
    return sock


def test_watch_notes_only_prefixed_keys_with_when_they_went_on(memcached):
    with FaultProxy(memcached) as proxy:
        client = pylibmc.Client([proxy.address.spec])
        client.set("units-watch:early", b"1")
        time.sleep(0.05)  # its note would land after the reply, so after watch(): not here
        proxy.watch(b"units-watch:")
        before = now_ms()
        client.set("units-watch:a", b"1")
        client.set("units-other:b", b"1")
        assert client.get_multi(["units-watch:c", "units-other:d", "units-watch:a"]) == {"units-watch:a": b"1"}
        client.delete("units-watch:a")
        after = now_ms()
        seen = collect_seen(proxy, 4)
        client.disconnect_all()
    assert [key for _, key in seen] == [b"a", b"c", b"a", b"a"]
    assert all(before <= ms <= after for ms, _ in seen), (before, seen, after)
    assert proxy.unread == 0


def test_watch_forgets_what_was_noted(memcached):
    with FaultProxy(memcached) as proxy:
        proxy.watch(b"units-forget:")
        sock = connected(proxy)
        sock.sendall(b"get units-forget:1\r\n")
        assert sock.recv(64) == b"END\r\n"
        time.sleep(0.05)
        proxy.watch(b"units-forget:")
        assert proxy.take_seen() == []
        sock.close()


def test_a_binary_connection_is_counted_unread(memcached):
    with FaultProxy(memcached) as proxy:
        proxy.watch(b"units-binary:")
        sock = socket.create_connection((proxy.address.host, proxy.address.port), timeout=2.0)
        sock.sendall(binary_get(b"units-binary:1"))
        assert sock.recv(24)[:1] == b"\x81"  # memcached answered, through the proxy
        deadline = time.monotonic() + 2
        while proxy.unread == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.unread == 1 and proxy.take_seen() == []
        sock.close()


def test_a_set_returns_only_once_its_key_is_noted(memcached):
    with FaultProxy(memcached) as proxy:
        proxy.watch(b"units-race:")
        client = pylibmc.Client([proxy.address.spec])
        client.get("units-race:0")  # the connection is made (accepting it takes the lock too)...
        assert [key for _, key in collect_seen(proxy, 1)] == [b"0"]  # ...and its thread is past noting the get
        returned = threading.Event()
        setter = threading.Thread(target=lambda: returned.set() if client.set("units-race:1", b"1") else None)
        with proxy.lock:  # the proxy cannot note a key meanwhile
            setter.start()
            returned_unnoted = returned.wait(0.5)
        setter.join(timeout=5)
        assert [key for _, key in collect_seen(proxy, 1)] == [b"1"]
        client.disconnect_all()
    assert not returned_unnoted


def test_refuse_then_reopen_on_the_same_port_with_the_data_kept(memcached):
    with FaultProxy(memcached) as proxy:
        client = pylibmc.Client([proxy.address.spec])
        client.set("units-refuse:k", b"kept")
        client.disconnect_all()
        open_one = connected(proxy)
        port = proxy.address.port
        proxy.refuse()
        assert open_one.recv(16) == b""  # open connections are closed too
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2.0)
        proxy.reopen()
        assert proxy.address.port == port
        again = pylibmc.Client([proxy.address.spec])
        assert again.get("units-refuse:k") == b"kept"
        again.disconnect_all()
        open_one.close()


def test_cut_closes_new_connections_at_once_until_uncut(memcached):
    with FaultProxy(memcached) as proxy:
        open_one = connected(proxy)
        proxy.cut()
        assert open_one.recv(16) == b""
        fresh = socket.create_connection((proxy.address.host, proxy.address.port), timeout=2.0)
        assert fresh.recv(16) == b""  # accepted, then closed: EOF, no reply
        deadline = time.monotonic() + 2
        while proxy.dropped < 2 and time.monotonic() < deadline:  # counted just after the close
            time.sleep(0.01)
        assert proxy.dropped == 2
        proxy.uncut()
        connected(proxy).close()
        for sock in (open_one, fresh):
            sock.close()


def test_freeze_holds_bytes_and_thaw_notes_them_as_sent_when_held(memcached):
    with FaultProxy(memcached) as proxy:
        proxy.watch(b"units-freeze:")
        sock = connected(proxy)
        proxy.freeze()
        sent = now_ms()
        sock.sendall(b"get units-freeze:1\r\n")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(64)  # held in the proxy
        assert proxy.take_seen() == []
        thawed = now_ms()
        proxy.thaw()
        sock.settimeout(2.0)
        assert sock.recv(64) == b"END\r\n"
        after = now_ms()
        seen = collect_seen(proxy, 1)
        sock.close()
    assert [key for _, key in seen] == [b"1"]
    assert sent <= seen[0][0] <= thawed - 250 and thawed <= after  # noted once it went on, with the time the client sent it


# ---------------------------------------------------------------- the worker's message


def test_an_op_batch_reads_back_from_its_message():
    batch = OpBatch(start_ms=[4_000_000_001, 4_000_000_002, 4_000_000_900], end_ms=[4_000_000_001, 4_000_000_010,
                                                                                    4_000_005_000],
                    key=[0, 999_999, 7], code=[GET_OK, MISS, FIRST_ERROR + 1], took_us=[12, 8_000, 4_100_000],
                    skipped=3)
    message = json.loads(json.dumps(batch.to_message(123_456_789_000, {10: "ServerDown", 11: "TimeoutError"})))
    assert OpBatch.from_message(message) == batch
    assert message["type"] == "snapshot" and message["kind"] == "failover" and message["completed"] == 3
    assert message["t0_ns"] == 123_456_789_000 and message["errors"] == {"10": "ServerDown", "11": "TimeoutError"}
    assert OpBatch.from_message(json.loads(json.dumps(OpBatch().to_message(1, {})))) == OpBatch()


def test_batches_merge_and_stats_name_their_errors():
    first = OpBatch([1], [2], [5], [FIRST_ERROR], [10], skipped=1)
    second = OpBatch([3, 4], [5, 6], [6, 7], [GET_OK, FIRST_ERROR + 1], [20, 30], skipped=2)
    stats = FailoverStats()
    stats.add_snapshot(first.to_message(77, {10: "ServerDown"}))
    stats.add_snapshot(second.to_message(99, {10: "ServerDown", 11: "TimeoutError"}))
    assert stats.t0_ns == 77 and stats.ok_ops() == 3 and stats.batch.skipped == 3
    assert stats.batch.key == [5, 6, 7] and stats.batch.code == [FIRST_ERROR, GET_OK, FIRST_ERROR + 1]
    assert stats.errors == {"ServerDown": 1, "TimeoutError": 1}


def test_error_codes_are_numbered_from_first_error_as_they_first_occur():
    codes = ErrorCodes()
    assert [codes.code(name) for name in ("ServerDown", "TimeoutError", "ServerDown", "OSError")] == [10, 11, 10, 12]
    assert codes.names() == {10: "ServerDown", 11: "TimeoutError", 12: "OSError"}
    assert FIRST_ERROR > max(GET_OK, SET_OK, MISS, STALE, WRONG, NOT_STORED)


def test_error_codes_are_one_per_name_across_threads():
    codes, names = ErrorCodes(), [f"Error{i}" for i in range(40)]
    found: list[dict[str, int]] = []

    def number(order: list[str]) -> None:
        found.append({name: codes.code(name) for name in order})

    threads = [threading.Thread(target=number, args=(names[i:] + names[:i],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(seen == found[0] for seen in found)
    assert sorted(found[0].values()) == list(range(FIRST_ERROR, FIRST_ERROR + 40))


# ---------------------------------------------------------------- analysis on hand-made runs

AT = Moments(t0_ms=10_000, end_ms=20_000, fault_ms=12_000, back_ms=15_000, failed=0)
HOMES = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}  # node 0 fails: keys 0 and 1 are its
# keys 0 and 1 go elsewhere in the outage (key 0 once before it, which is no ejection), node 0 gets key 0 at 15.3 s;
# key 9, whose home nobody saw, is seen but not moved
MOVED = ([(10_100, 0), (10_200, 1), (15_300, 0)],
         [(10_150, 2), (11_000, 0), (12_250, 0), (13_000, 3), (13_500, 9)],
         [(10_300, 4), (12_400, 1), (19_500, 4), (19_600, 1)])


def ops(*rows: tuple[int, int, int, int, int]) -> OpBatch:
    """A batch from (start_ms, end_ms, key, code, took_us) rows."""
    return OpBatch(*(list(column) for column in zip(*rows))) if rows else OpBatch()


def routed(*nodes: list[tuple[int, int]], homes: dict[int, int] = HOMES) -> Routing:
    return Routing(homes, tuple(tuple(sorted(entries)) for entries in nodes))


def without(entry: tuple[int, int], nodes: tuple[list[tuple[int, int]], ...]) -> tuple[list[tuple[int, int]], ...]:
    return tuple([seen for seen in entries if seen != entry] for entries in nodes)


def test_routing_observed_takes_homes_from_the_fill_and_sorts_the_load():
    routing = Routing.observed([[(1, 0), (2, 1)], [(3, 2), (4, 0)]], [[(9, 1), (7, 0)], []])
    assert routing.homes == {0: 0, 1: 0, 2: 1}
    assert routing.seen == (((7, 0), (9, 1)), ())
    assert routing.between(0, 7, 9) == ((7, 0),) and routing.moved_share(0, 10) == (0, 2)


def test_ejection_readmission_and_moved_keys():
    f = analyse(OpBatch(), {}, routed(*MOVED), AT)
    assert (f.nodes, f.failed_node, f.keys, f.failed_keys, f.homes_known) == (3, 0, 6, 2, 6)
    assert f.ejected_s == 0.25  # key 0 on node 1 at 12.25 s; its 11 s visit was before the fault
    assert f.readmitted_s == 0.3
    assert (f.moved_keys, f.seen_keys, f.moved_during) == (2, 4, 0.5)
    assert f.moved_after == 0.5  # over the last second: key 4 at home, key 1 away
    assert f.failed_share == round(2 / 6, 4)


def test_readmission_is_none_when_no_key_goes_back():
    assert analyse(OpBatch(), {}, routed(*without((15_300, 0), MOVED)), AT).readmitted_s is None
    never_back = Moments(AT.t0_ms, AT.end_ms, AT.fault_ms, 0, 0)
    f = analyse(OpBatch(), {}, routed(*MOVED), never_back)
    assert f.readmitted_s is None and f.ejected_s == 0.25
    assert f.moved_keys == 2 and f.seen_keys == 5  # the outage runs to the end: key 4 at 19.5 s is seen too
    assert f.moved_after is None


def test_no_ejection_when_the_failed_node_keys_stay_put():
    nodes = ([(10_100, 0), (15_300, 0)], [(12_500, 2)], [(13_000, 4)])
    f = analyse(OpBatch(), {}, routed(*nodes), AT)
    assert f.ejected_s is None and (f.moved_keys, f.seen_keys) == (0, 2) and f.readmitted_s == 0.3


def test_misses_of_the_failed_node_keys_after_the_fault_against_all_others():
    batch = ops((11_500, 11_501, 1, MISS, 1),  # failed node's key, before the fault: other
                (11_990, 12_001, 0, MISS, 1),  # ends after the fault: the fault's
                (12_500, 12_501, 4, MISS, 1),  # healthy node's key: other
                (16_000, 16_001, 1, MISS, 1),  # failed node's key after it was back: still the fault's
                (13_000, 13_001, 2, GET_OK, 1))
    f = analyse(batch, {}, routed(*MOVED), AT)
    assert (f.misses_failed_keys, f.misses_other_keys) == (2, 2)


def test_errors_by_class_and_by_when():
    batch = ops((11_000, 11_005, 2, 10, 1),  # before the fault
                (11_990, 12_010, 0, 10, 1),  # ended after it struck
                (13_400, 13_499, 0, 10, 1),  # first half of the outage (halfway: 13.5 s)
                (13_600, 13_700, 0, 11, 1),  # second half
                (14_990, 15_000, 1, 10, 1),  # ends as the node is back: not in the outage
                (15_500, 15_900, 3, 10, 1),  # the node back: errors go on, a second has not passed without any
                (16_950, 16_960, 3, 10, 1),  # after a second without errors: not the fault's
                (16_970, 16_970, 3, 10, 1))
    names = {10: "ServerDown", 11: "TimeoutError"}
    f = analyse(batch, names, routed(*MOVED), AT)
    assert f.errors == {"ServerDown": 7, "TimeoutError": 1} and f.error_count == 8
    assert (f.errors_before_fault, f.errors_late_in_outage, f.errors_after_settled) == (1, 1, 2)
    assert f.last_error_s == 4.97
    assert analyse(batch, {}, routed(*MOVED), AT).errors == {"error 10": 7, "error 11": 1}


def test_stale_lost_wrong_and_exposed_reads():
    batch = ops((11_000, 11_001, 1, SET_OK, 1),  # before the fault
                (11_200, 11_201, 2, STALE, 1),  # stale, not after the node was back
                (12_500, 12_502, 0, SET_OK, 1),  # key 0 written in the outage (elsewhere)
                (13_000, 13_001, 3, NOT_STORED, 1),
                (14_000, 14_001, 5, WRONG, 1),
                (15_200, 15_201, 0, GET_OK, 1),  # before re-admission (15.3 s): not exposed
                (15_250, 15_350, 0, GET_OK, 1),  # started before re-admission: not exposed
                (15_500, 15_502, 0, STALE, 1),  # exposed, and stale after the node was back
                (16_000, 16_001, 0, MISS, 1),  # exposed
                (16_100, 16_101, 1, GET_OK, 1),  # key 1 was not written in the outage
                (16_500, 16_501, 0, SET_OK, 1))  # a write, not a read
    f = analyse(batch, {}, routed(*MOVED), AT)
    assert (f.stale_reads, f.stale_after_back) == (2, 1)
    assert (f.lost_writes, f.wrong_values) == (1, 1)
    assert f.exposed_reads == 2
    stayed = ([(10_100, 0), (15_300, 0)], [(12_500, 2)], [(13_000, 4)])
    assert analyse(batch, {}, routed(*stayed), AT).exposed_reads == 0  # nothing moved: nothing could be stale
    assert analyse(batch, {}, routed(*without((15_300, 0), MOVED)), AT).exposed_reads == 0  # never re-admitted
    never_back = analyse(batch, {}, routed(*MOVED), Moments(AT.t0_ms, AT.end_ms, AT.fault_ms, 0, 0))
    assert never_back.stale_after_back == 0 and never_back.stale_reads == 2


def test_ops_on_the_failed_node_keys_in_the_outage_and_the_longest():
    batch = ops((12_000, 13_500, 0, 10, 1_500_000),  # in the outage
                (14_999, 15_001, 1, GET_OK, 2_000),  # in the outage
                (15_000, 15_010, 0, GET_OK, 10_000),  # starts as the node is back
                (11_999, 12_100, 0, MISS, 101_000),  # starts before the fault
                (13_000, 16_000, 2, GET_OK, 3_000_000),  # a healthy node's key
                (13_000, 13_001, 4, SET_OK, 700))
    f = analyse(batch, {}, routed(*MOVED), AT)
    assert (f.ops, f.ops_skipped, f.failed_key_ops) == (6, 0, 2)
    assert (f.longest_op_s, f.longest_failed_key_op_s) == (3.0, 1.5)
    assert analyse(OpBatch(skipped=4), {}, routed(*MOVED), AT).ops_skipped == 4


def test_over_time_counts_ops_where_they_ended_and_keys_where_they_went():
    at = Moments(t0_ms=10_000, end_ms=12_000, fault_ms=10_600, back_ms=11_100, failed=0)
    batch = ops((9_900, 10_000, 0, GET_OK, 100),
                (9_800, 9_990, 1, SET_OK, 50),  # ended before the load's start: the first interval
                (10_400, 10_499, 2, MISS, 1),
                (10_400, 10_500, 3, STALE, 1),
                (10_900, 11_000, 4, WRONG, 1),
                (11_900, 11_999, 5, FIRST_ERROR, 1),
                (11_990, 12_500, 0, SET_OK, 7))  # ended after the load's end: the last interval
    nodes = ([(10_000, 0), (10_499, 1), (10_500, 0)], [(9_000, 2), (11_999, 2), (12_000, 3)], [(12_001, 4)])
    rows = over_time(batch, routed(*nodes), at, 0.5)
    assert [row["t_s"] for row in rows] == [0.0, 0.5, 1.0, 1.5] and {row["length_s"] for row in rows} == {0.5}
    counts = [tuple(row[name] for name in ("ok", "misses", "stale", "wrong", "errors")) for row in rows]
    assert counts == [(2, 1, 0, 0, 0), (0, 0, 1, 0, 0), (0, 0, 0, 1, 0), (1, 0, 0, 0, 1)]
    assert [row["nodes"] for row in rows] == [[2, 0, 0], [1, 0, 0], [0, 0, 0], [0, 2, 0]]
    assert [(row["p99_us"], row["max_us"]) for row in rows] == [(100, 100), (None, None), (None, None), (7, 7)]


def test_over_time_p99_of_the_ok_ops():
    at = Moments(t0_ms=0, end_ms=1_000, fault_ms=500, back_ms=700, failed=0)
    batch = ops(*((10, 20, 0, GET_OK, took) for took in range(150, 0, -1)), (10, 20, 0, FIRST_ERROR, 10**9))
    (row,) = over_time(batch, routed([], [], []), at, 1.0)
    assert (row["ok"], row["errors"], row["p99_us"], row["max_us"]) == (150, 1, 149, 150)


def test_over_time_p99_of_a_hundred_ops_is_not_the_max():
    at = Moments(t0_ms=0, end_ms=1_000, fault_ms=500, back_ms=700, failed=0)
    (row,) = over_time(ops(*((10, 20, 0, GET_OK, took) for took in range(1, 101))), routed([], [], []), at, 1.0)
    assert row["p99_us"] == 99


def test_interval_for_keeps_thirty_intervals():
    assert [interval_for(s) for s in (60, 30, 29, 15, 10, 6, 1)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.2, 0.1]


def test_route_probe_compares_common_keys():
    before = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 1}  # key 6 unseen after, key 7 unseen before
    after = {0: 1, 1: 2, 2: 1, 3: 2, 4: 2, 5: 2, 7: 0}
    probe = RouteProbe.compared(before, after, failed=0)
    assert (probe.keys, probe.moved, probe.moved_healthy, probe.on_failed) == (6, 3, 1, 2)
    assert (probe.moved_share, probe.healthy_moved_share) == (0.5, 0.25)
    assert RouteProbe(**probe.to_json()) == probe
    empty = RouteProbe.compared({}, {}, 0)
    assert (empty.moved_share, empty.healthy_moved_share) == (0.0, None)


# ---------------------------------------------------------------- verdicts and advice


def figures(**changed) -> FailoverFigures:
    """A transparent run: only the failed node's keys missed, ejected at once, re-admitted, exposed reads fine."""
    base = dict(nodes=3, failed_node=0, keys=300, failed_keys=100, homes_known=300, ops=5000, ops_skipped=0,
                errors={}, errors_before_fault=0, errors_late_in_outage=0, errors_after_ejection=0, errors_after_settled=0,
                last_error_s=None, misses_failed_keys=40, misses_other_keys=0, stale_reads=0, stale_after_back=0,
                exposed_reads=12, written_in_outage=20, restored_s=0.5, wrong_values=0, lost_writes=0, ejected_s=0.05, readmitted_s=0.4, moved_keys=100,
                seen_keys=280, moved_after=0.0, failed_key_ops=600, longest_op_s=0.01, longest_failed_key_op_s=0.01)
    return FailoverFigures(**{**base, **changed})


INCONSISTENT = dict(stale_reads=3, stale_after_back=3)
ERRORS = dict(errors={"ServerDown": 50}, errors_late_in_outage=20, last_error_s=2.9)
STALLED = dict(longest_failed_key_op_s=2.0, ejected_s=None)
STUCK = dict(readmitted_s=None)
RESHUFFLED = dict(misses_other_keys=7)


def verdict(outage_s: float = 3.0, **changed) -> str:
    return failover_verdict("ok", figures(**changed), outage_s)[0]


def test_a_clean_run_is_transparent():
    assert failover_verdict("ok", figures(), 3.0) == ("transparent", [])
    assert verdict(moved_keys=0, exposed_reads=0) == "transparent"  # nothing moved: nothing could be stale


def test_verdicts_worst_first():
    found = {}
    for name, changes in (("inconsistent", INCONSISTENT), ("errors", ERRORS), ("stalled", STALLED),
                          ("stuck", STUCK), ("reshuffled", RESHUFFLED)):
        found.update(changes)
        assert verdict(**changes) == name
    assert failover_verdict("ok", figures(**found), 3.0)[0] == "inconsistent"
    assert len(failover_verdict("ok", figures(**found), 3.0)[1]) == 5
    for dropped, expected in ((INCONSISTENT, "errors"), (ERRORS, "stalled"), (STALLED, "stuck"),
                              (STUCK, "reshuffled")):
        found = {key: value for key, value in found.items() if key not in dropped}
        assert verdict(**found) == expected, dropped


def test_what_each_verdict_needs():
    assert verdict(wrong_values=1) == verdict(lost_writes=1) == "inconsistent"
    assert verdict(errors_late_in_outage=0, errors={"ServerDown": 3}, last_error_s=0.2) == "transparent"
    assert verdict(longest_failed_key_op_s=2.0) == "transparent"  # long, but the node was ejected
    assert verdict(longest_failed_key_op_s=0.6, ejected_s=None) == "transparent"
    assert verdict(1.0, longest_failed_key_op_s=0.6, ejected_s=None) == "stalled"  # half of a 1 s outage
    unexplained = failover_verdict("ok", figures(errors_before_fault=2, errors_after_settled=1), 3.0)
    assert unexplained[0] == "errors" and "2 before it, 1 after the load had settled" in unexplained[1][0]
    assert verdict(errors_before_fault=2, **RESHUFFLED) == "reshuffled"  # as listed: unexplained errors come last
    assert "4 after the node was back" in failover_verdict("ok", figures(stale_reads=5, stale_after_back=4), 3.0)[1][0]


def test_inconclusive_when_the_run_could_not_show_it_safe():
    untouched = failover_verdict("ok", figures(failed_key_ops=0), 3.0)
    assert untouched[0] == "inconclusive" and "no op touched the failed node's keys" in untouched[1][0]
    unread = failover_verdict("ok", figures(unread_connections=2), 3.0)
    assert unread[0] == "inconclusive" and "2 connections" in unread[1][0]
    untested = failover_verdict("ok", figures(exposed_reads=0), 3.0)
    assert untested[0] == "inconclusive" and "none was read back" in untested[1][0]
    unwritten = failover_verdict("ok", figures(written_in_outage=0, exposed_reads=0), 3.0)
    assert unwritten[0] == "inconclusive" and "the mix needs set" in unwritten[1][0]
    assert verdict(failed_key_ops=0, **RESHUFFLED) == "reshuffled"  # a finding beats missing evidence


def test_a_run_that_did_not_finish_or_had_no_fault():
    assert failover_verdict("hung", figures(**INCONSISTENT), 3.0) == ("hung", [])
    assert failover_verdict("ok", None, 3.0) == ("no-fault", [])


def advice(verdict_name: str, config: str, after_s: float = 5.0, **changed) -> str:
    return failover_advice(verdict_name, parse_config(config), figures(**changed), after_s, WorkerOutcome())


def test_advice_names_the_setting_of_the_configuration_library():
    assert "use ketama with remove_failed=1" in advice("errors", "modula", ejected_s=None, **ERRORS)
    assert "use ketama with remove_failed=1" in advice("errors", "pylibmc:retry_timeout=1", ejected_s=None, **ERRORS)
    assert "add remove_failed=1" in advice("errors", "ketama", ejected_s=None, **ERRORS)
    assert "retry_attempts" in advice("errors", "hashclient", ejected_s=None, **ERRORS)
    assert "catch the client's errors" in advice("errors", "memcache")
    assert "ketama=1" in advice("reshuffled", "modula")
    assert "poll_timeout" in advice("stalled", "ketama-eject")


def test_stuck_advice_names_the_dead_timeout_as_configured():
    assert "set dead_timeout (seconds) with remove_failed" in advice("stuck", "pylibmc:ketama=1,remove_failed=1",
                                                                     **STUCK)
    eject = advice("stuck", "ketama-eject", after_s=5.0, **STUCK)
    assert "dead_timeout=60 keeps an ejected node out for 60 s" in eject and "--after 65s" in eject
    assert "dead_timeout=2 keeps" in advice("stuck", "ketama-eject-2s", **STUCK) and "--after 7s" in advice(
        "stuck", "ketama-eject-2s", **STUCK)
    assert "dead_timeout=60 keeps" in advice("stuck", "hashclient", **STUCK)
    partly = advice("stuck", "ketama-eject-2s", restored_s=None)  # used again by some clients, not all
    assert "Some clients used the node again 0.40 s after it was back" in partly
    assert "dead_timeout=5 keeps" in advice("stuck", "pymemcache:dead_timeout=5")
    assert "dead_retry=30 keeps" in advice("stuck", "memcache") and "dead_retry=1 keeps" in advice(
        "stuck", "memcache-1s")


def test_lost_write_advice_depends_on_the_library():
    assert "retry_attempts=0" in advice("inconsistent", "hashclient", lost_writes=3)
    assert "check set's return value" in advice("inconsistent", "memcache", lost_writes=3)
    assert "Bring a failed node back empty" in advice("inconsistent", "hashclient", lost_writes=3, stale_reads=1)
    hung = failover_advice("hung", parse_config("modula"), None, 5.0, WorkerOutcome("hung", message="no progress"))
    assert hung == "The run did not finish (no progress)."


# ---------------------------------------------------------------- configurations


def test_presets_parse_as_themselves():
    modula, eject = parse_config("modula"), parse_config(" ketama-eject ")
    assert (modula.library, modula.settings, modula.dead_timeout) == ("pylibmc", (), ("dead_timeout", 0.0))
    assert eject.name == "ketama-eject" and dict(eject.behaviors) == {"ketama": 1, "remove_failed": 1,
                                                                       "retry_timeout": 1, "dead_timeout": 60}
    hashclient = parse_config("hashclient")
    assert hashclient.library == "pymemcache" and hashclient.dead_timeout == ("dead_timeout", 60.0)
    assert hashclient.strategy("fifo") == "pymemcache-hash-per-thread" and modula.strategy("fifo") == "fifo"
    assert parse_config("memcache-1s").dead_timeout == ("dead_retry", 1.0)


def test_own_settings_with_or_without_a_library():
    named = parse_config("pylibmc:ketama=1,remove_failed=1")
    assert (named.name, named.library, named.settings) == ("pylibmc:ketama=1,remove_failed=1", "pylibmc",
                                                           (("ketama", 1), ("remove_failed", 1)))
    assert named.behaviors == named.settings and named.client_options == ()
    bare = parse_config("ketama=1")
    assert (bare.name, bare.library, bare.settings) == ("ketama=1", "pylibmc", (("ketama", 1),))
    hashed = parse_config("pymemcache:dead_timeout=5")
    assert (hashed.library, hashed.settings, hashed.behaviors) == ("pymemcache", (("dead_timeout", 5),), ())
    assert hashed.client_options == (("dead_timeout", 5),) and hashed.dead_timeout == ("dead_timeout", 5.0)
    assert Config.from_json(json.loads(json.dumps(named.to_json()))) == named


@pytest.mark.parametrize("spec, words", [
    ("redis:ketama=1", "unknown library 'redis'"),
    ("ketama=1,ketama=0", "a setting is given twice"),
    ("pylibmc:ketama=1,remove_failed=1,ketama=1", "a setting is given twice"),
    ("no-such-preset", "not a preset"),
    ("pylibmc:", "not a preset"),
])
def test_configs_that_do_not_parse(spec, words):
    with pytest.raises(UsageProblem, match=words):
        parse_config(spec)


@pytest.mark.parametrize("spec, words", [
    ("pylibmc:no_such_behavior=1", "no_such_behavior"),
    ("pylibmc:dead_timeout=5s", "whole seconds"),
    ("pymemcache:no_such_option=1", "no_such_option"),
    ("memcache:no_such_option=1", "no_such_option"),
])
def test_check_config_makes_a_refused_setting_one_line(spec, words):
    with pytest.raises(UsageProblem, match=words) as raised:
        check_config(parse_config(spec))
    assert "\n" not in str(raised.value) and str(raised.value).startswith(f"--config {spec}: ")


def test_check_config_takes_good_settings():
    for spec in ("ketama-eject", "hashclient-2s", "memcache-1s", "pylibmc:ketama=1,remove_failed=3,dead_timeout=10"):
        check_config(parse_config(spec))


def test_a_dead_timeout_that_is_no_number_is_refused_before_the_run():
    config = parse_config("pymemcache:dead_timeout=5s")
    try:
        check_config(config)
    except UsageProblem:
        return
    assert failover_advice("transparent", config, figures(), 5.0, WorkerOutcome())


def test_expand_configs_refuses_the_same_one_twice():
    with pytest.raises(UsageProblem, match="--config ketama is given twice"):
        expand_configs(("ketama", "modula", "ketama"))
    with pytest.raises(UsageProblem, match="given twice"):
        expand_configs(("ketama=1", " ketama=1"))
    assert [config.name for config in expand_configs(("ketama", "ketama=1"))] == ["ketama", "ketama=1"]
    assert [config.name for config in expand_configs(())] == ["modula", "ketama", "ketama-eject", "ketama-eject-2s",
                                                              "hashclient"]


# ---------------------------------------------------------------- the node wipe


def test_delete_keys_deletes_only_the_listed_keys(memcached):
    client = pylibmc.Client([memcached.spec])
    for name in ("a", "b", "keep"):
        client.set(f"units-delete:{name}", b"1")
    listed = ["units-delete:a", "units-delete:b", "units-delete:never-written"]
    assert delete_keys(memcached, listed) == 2
    assert client.get_multi([*listed, "units-delete:keep"]) == {"units-delete:keep": b"1"}
    assert delete_keys(memcached, listed) == 0
    assert delete_keys(memcached, []) == 0
    client.disconnect_all()


def test_delete_keys_with_as_many_keys_as_check_failover_takes(memcached):
    keys = [f"units-delete-many:failover:ketama-eject-2s:k{index}" for index in range(1_000_000)]
    assert delete_keys(memcached, keys, timeout_s=1.0) == 0


def test_restored_is_when_the_node_gets_three_quarters_of_its_load_back():
    from mcpool_cli.checks.failover.analysis import restored

    before = [(10_000 + 10 * i, 0) for i in range(200)]  # 100 keys a second before the fault at 12 s
    trickle = [(15_100, 0), (16_000, 1)]  # one client back at 15.1 s, another at 16 s
    full = [(17_000 + 10 * i, 0) for i in range(100)]  # every client back from 17 s
    at = Moments(t0_ms=10_000, end_ms=20_000, fault_ms=12_000, back_ms=15_000, failed=0)
    assert restored(routed(before + trickle + full, []), at, 15_100) == 2.0
    assert restored(routed(before + trickle, []), at, 15_100) is None  # a trickle is not the node's load
    quiet = Moments(t0_ms=10_000, end_ms=20_000, fault_ms=12_000, back_ms=15_000, failed=1)
    assert restored(routed(before, []), quiet, 15_100) is None  # a node that had no load before
