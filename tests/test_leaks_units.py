"""check-leaks without memcached: the snapshot codec, judged checks and whole sessions through their JSON."""

import dataclasses
import json
import os
import socket
import sys
import time

import pytest
from rich.console import Console

from mcpool_cli.checks.leaks.command import validate
from mcpool_cli.checks.leaks.loop import ChurnFigures, ConnectionsPoint, ThinnedSeries, progress_message
from mcpool_cli.checks.leaks.render import check_report, checks_summary, render
from mcpool_cli.checks.leaks.timewait import (count_time_wait, decode_address, decode_endpoint, read_time_wait,
                                              server_endpoints)
from mcpool_cli.checks.leaks.session import LEAK_DEFAULT, LeakCheck, LeakOptions, LeakSession, LeakStats, from_json
from mcpool_cli.engine.outcomes import WorkerOutcome
from mcpool_cli.engine.server import parse_server
from mcpool_cli.engine.session import Servers
from mcpool_cli.errors import UsageProblem

ROW_FIELDS = {"strategy", "relinquish", "verdict", "leaked_connections", "outcome", "advice"}


def figures(**changes) -> ChurnFigures:
    base = dict(threads_started=100, concurrency=10, baseline_connections=5, baseline_drift=0, peak_connections=15,
                after_connections=5, connections_opened=3, standing_clients=0, held_by_pool=0,
                dead_thread_clients=0, open_sockets_after=1)
    return ChurnFigures(**{**base, **changes})


def over_time(*connections: int) -> tuple[ConnectionsPoint, ...]:
    """A churn's series, a point every 0.5 s, 10 threads started between points."""
    return tuple(ConnectionsPoint(n * 0.5, count, 10 * n) for n, count in enumerate(connections))


def checks() -> list[LeakCheck]:
    return [LeakCheck.judged("fifo", True, WorkerOutcome(), figures()),
            LeakCheck.judged("thread-mapped", False, WorkerOutcome(), figures(after_connections=12,
                                                                              dead_thread_clients=4)),
            LeakCheck.judged("x.y:pool", True, WorkerOutcome("crashed", signal="SIGSEGV"), None)]


def session() -> LeakSession:
    options = LeakOptions(strategies=("fifo", "thread-mapped", "x.y:pool"), churn=100, concurrency=10)
    servers = Servers((parse_server("127.0.0.1:11311"),), False, "1.6.21")
    return LeakSession(options, servers, finished_at="2026-01-01T00:00:01+00:00", results=checks())


def test_figures_travel_as_a_snapshot_message():
    sent = figures(peak_connections=17, baseline_drift=-2, connections_over_time=over_time(5, 17, 9, 5))
    assert ChurnFigures.from_message(sent.to_message()) == sent
    assert ChurnFigures.from_message(progress_message(20)) is None
    stats = LeakStats()
    for message in (progress_message(20), sent.to_message(), progress_message(0)):
        stats.add_snapshot(json.loads(json.dumps(message)))
    assert stats.figures == sent and stats.ok_ops() == 21


def test_checks_are_judged_once():
    clean, leak, crashed = checks()
    assert (clean.verdict, clean.leaked, clean.outcome) == ("clean", 0, "ok")
    assert (leak.verdict, leak.leaked) == ("leak", 7) and "relinquish()" in leak.advice
    assert (crashed.verdict, crashed.leaked, crashed.figures) == ("crashed", 0, None)
    assert crashed.advice == "The churn did not finish (SIGSEGV)."


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_check_round_trips_through_its_json(index):
    check = checks()[index]
    row = json.loads(json.dumps(check.to_json()))
    assert LeakCheck.from_json(row) == check
    figure_fields = set(figures().to_json()) if check.figures else set()
    assert set(row) == ROW_FIELDS | figure_fields


def test_a_saved_check_keeps_its_judgement():
    row = {**checks()[0].to_json(), "verdict": "leak", "leaked_connections": 3, "advice": "as saved"}
    loaded = LeakCheck.from_json(row)
    assert (loaded.verdict, loaded.leaked, loaded.advice) == ("leak", 3, "as saved")


def test_churn_errors_travel_and_files_without_them_still_load():
    erring = figures(churn_errors=4, churn_error_sites={"KeyError at lib.py:get": 4})
    assert ChurnFigures.from_message(json.loads(json.dumps(erring.to_message()))) == erring
    check = LeakCheck.judged("x.y:pool", True, WorkerOutcome(), erring)
    assert check.verdict == "inconclusive" and "churn_error_sites" in check.advice
    assert LeakCheck.from_json(json.loads(json.dumps(check.to_json()))) == check
    old = {k: v for k, v in checks()[0].to_json().items() if k not in ("churn_errors", "churn_error_sites")}
    assert LeakCheck.from_json(old) == checks()[0]
    assert "inconclusive" not in LeakSession.KIND.good_verdicts
    console = Console(record=True, width=120)
    console.print(check_report(check, True))
    assert "4 churn threads raised: KeyError at lib.py:get 4" in console.export_text()


def test_damaged_figures_are_refused():
    with pytest.raises(TypeError, match="peak_connections"):
        LeakCheck.from_json({**checks()[0].to_json(), "peak_connections": "many"})
    with pytest.raises(KeyError):
        LeakCheck.from_json({k: v for k, v in checks()[0].to_json().items() if k != "held_by_pool"})


def test_a_session_round_trips_through_its_json():
    written = session()
    document = json.loads(json.dumps(written.to_json()))
    assert (document["schema"], document["check"]) == ("mcpool.check/1", "leaks")
    assert "import_path" not in document["options"]
    loaded = from_json(document)
    assert isinstance(loaded, LeakSession)
    assert loaded.options == dataclasses.replace(written.options, import_path=())
    assert loaded.servers == written.servers
    assert loaded.results == written.results
    assert (loaded.run_id, loaded.started_at, loaded.finished_at, loaded.interrupted) == (
        written.run_id, written.started_at, written.finished_at, written.interrupted)
    assert json.loads(json.dumps(loaded.to_json())) == document


def test_exit_code_follows_the_good_verdicts():
    assert session().exit_code() == 1
    passed = session()
    passed.results = passed.results[:1]
    assert passed.exit_code() == 0


def test_validate_expands_the_default_and_checks_the_hang_timeout():
    params = dict(strategies=(), churn=50, concurrency=5, relinquish=False, hang_timeout_s=10.0)
    options = validate(params)
    assert options.strategies == LEAK_DEFAULT and options.churn == 50 and not options.relinquish
    assert validate({**params, "strategies": ("all",)}).strategies[0] == "shared"
    with pytest.raises(UsageProblem, match="--hang-timeout"):
        validate({**params, "hang_timeout_s": 0.1})


def test_report_prints_each_check_then_the_table():
    console = Console(record=True, width=200)
    render(session(), console, saved=True)
    text = console.export_text()
    assert "fifo · relinquish on · CLEAN" in text and "other traffic" in text
    assert "The churn did not finish (SIGSEGV)." in text
    table = text.split("\ncheck-leaks", 1)[1]
    rows = [line.split() for line in table.splitlines() if line.startswith(("fifo ", "thread-mapped ", "x.y:pool "))]
    assert rows == [["fifo", "on", "clean", "3", "0", "15", "5"], ["thread-mapped", "off", "leak", "3", "7", "15", "12"],
                    ["x.y:pool", "on", "crashed", "-", "0", "-", "-"]]
    assert checks_summary([]).row_count == 0


def test_compare_tells_what_changed_in_leaked_and_opened():
    from mcpool_cli.checks.leaks.kind import KIND
    from mcpool_cli.checks.leaks.render import compare
    from mcpool_cli.report.saved import SavedDocument

    before = session().to_json()
    after = json.loads(json.dumps(before))
    after["results"][0].update(verdict="leak", leaked_connections=3, connections_opened=9)
    docs = [SavedDocument(label, KIND, data, from_json(data), ()) for label, data in (("a", before), ("b", after))]
    console = Console(record=True, width=200)
    console.print(compare(docs))
    text = console.export_text()
    assert "  fifo: leaked 0 → 3, opened 3 → 9, verdict clean → leak" in text
    assert "  thread-mapped: no change (leak)" in text


def test_the_command_prints_no_table_report_does():
    live, saved = Console(record=True, width=200), Console(record=True, width=200)
    render(session(), live)
    render(session(), saved, saved=True)
    assert "\ncheck-leaks" not in live.export_text() and "\ncheck-leaks" in saved.export_text()


def test_a_long_series_is_thinned_and_keeps_its_peak():
    series = ThinnedSeries(cap=100)
    for n in range(10_000):
        series.add(ConnectionsPoint(n * 0.02, 50 if n == 7_777 else n % 7, n))
    points = series.finished()
    assert 50 <= len(points) <= 100
    assert max(point.connections for point in points) == 50
    assert [point.t_s for point in points] == sorted({point.t_s for point in points})
    assert points[-1].threads_started >= 10_000 - 10_000 // 50
    short = ThinnedSeries(cap=100)
    for n in range(99):
        short.add(ConnectionsPoint(n * 0.02, n, n))
    assert [point.threads_started for point in short.finished()] == list(range(99))


def test_connections_over_time_round_trip_and_older_files_have_none():
    figured = figures(connections_over_time=over_time(5, 15, 12))
    check = LeakCheck.judged("thread-mapped", False, WorkerOutcome(), figured)
    row = json.loads(json.dumps(check.to_json()))
    assert row["connections_over_time"][1] == {"t_s": 0.5, "connections": 15, "threads_started": 10}
    assert LeakCheck.from_json(row) == check
    del row["connections_over_time"]
    assert LeakCheck.from_json(row).figures == figures()
    with pytest.raises(TypeError, match="t_s"):
        LeakCheck.from_json({**row, "connections_over_time": [{"t_s": "soon", "connections": 1, "threads_started": 0}]})


def test_the_report_draws_connections_over_the_churn():
    console = Console(record=True, width=120)
    console.print(check_report(LeakCheck.judged("fifo", True, WorkerOutcome(),
                                                figures(connections_over_time=over_time(0, 5, 15, 10, 5))), True))
    console.print(check_report(checks()[0], True))
    lines = [line for line in console.export_text().splitlines() if line.startswith("connections")]
    assert lines == ["connections   ▃█▆▃  0–15 over 2.00 s"]


# ---------------------------------------------------------------- TIME_WAIT from /proc/net/tcp

TCP_HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = TCP_HEAD + "\n".join(f"{n:4d}: {local} {remote} {state} 00000000:00000000 03:00001601 00000000     0        0 0 3"
                           f" 0000000000000000" for n, (local, remote, state) in enumerate([
                               ("0100007F:2B67", "00000000:0000", "0A"),  # memcached listening on 127.0.0.1:11111
                               ("0100007F:DC64", "0100007F:2B67", "06"),  # a client's socket it closed: counted
                               ("0100007F:DC66", "0100007F:2B67", "06"),  # another one: counted
                               ("0100007F:2B67", "0100007F:DC68", "06"),  # the server closed first: its side
                               ("0100007F:DC6A", "0100007F:2B67", "01"),  # established
                               ("0100007F:DC6C", "0100007F:2B68", "06"),  # another port
                               ("0F02000A:C001", "0302000A:2B67", "06"),  # 10.0.2.15 to 10.0.2.3:11111
                           ])) + "\n"
TCP6 = ("  sl  local_address                         remote_address                        st tx_queue rx_queue tr"
        " tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000001000000:D001 00000000000000000000000001000000:2B67 06 00000000:00000000"
        " 03:00001601 00000000     0        0 0 3 0000000000000000\n"
        "   1: 0000000000000000FFFF00000100007F:D002 0000000000000000FFFF00000100007F:2B67 06 00000000:00000000"
        " 03:00001601 00000000     0        0 0 3 0000000000000000\n"
        "   2: B80D0120000000000000000001000000:D003 B80D0120000000000000000002000000:2B67 06 00000000:00000000"
        " 03:00001601 00000000     0        0 0 3 0000000000000000\n")
LOOPBACK = frozenset({("127.0.0.1", 11111)})


def test_proc_net_tcp_addresses_decode_as_linux_writes_them():
    assert decode_endpoint("0100007F:2B67", "little") == ("127.0.0.1", 11111)  # x86, arm64: host order
    assert decode_endpoint("7F000001:2B67", "big") == ("127.0.0.1", 11111)  # s390x: the same bytes, read as one
    assert decode_endpoint("0F02000A:C001", "little") == ("10.0.2.15", 49153)
    assert decode_address("00000000000000000000000001000000", "little") == "::1"
    assert decode_address("00000000000000000000000000000001", "big") == "::1"
    assert decode_address("0000000000000000FFFF00000100007F", "little") == "127.0.0.1"  # IPv4-mapped
    assert decode_address("B80D0120000000000000000002000000", "little") == "2001:db8::2"


def test_time_wait_counts_the_client_side_to_the_server_only():
    assert count_time_wait(TCP, LOOPBACK, "little") == 2
    assert count_time_wait(TCP, frozenset({("10.0.2.3", 11111)}), "little") == 1
    assert count_time_wait(TCP, frozenset({("127.0.0.1", 11211)}), "little") == 0
    assert count_time_wait(TCP_HEAD, LOOPBACK, "little") == 0 and count_time_wait("", LOOPBACK) == 0
    assert count_time_wait(TCP6, LOOPBACK, "little") == 1  # ::ffff:127.0.0.1
    assert count_time_wait(TCP6, frozenset({("::1", 11111), ("2001:db8::2", 11111)}), "little") == 2
    big_endian = TCP.replace("0100007F", "7F000001")
    assert count_time_wait(big_endian, LOOPBACK, "big") == 2


def test_time_wait_is_unknown_without_proc(tmp_path):
    (tmp_path / "tcp").write_text(TCP.replace("0100007F", "7F000001" if sys.byteorder == "big" else "0100007F"))
    assert read_time_wait(LOOPBACK, (str(tmp_path / "tcp"), str(tmp_path / "no-tcp6"))) == 2
    assert read_time_wait(LOOPBACK, (str(tmp_path / "none"), str(tmp_path / "no-tcp6"))) is None
    assert server_endpoints([parse_server("127.0.0.1:11111")]) == LOOPBACK
    assert ("::1", 11111) in server_endpoints([parse_server("[::1]:11111")])


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="Linux only: /proc/net/tcp")
def test_a_socket_closed_first_by_the_client_is_counted_in_time_wait():
    """A real connection on loopback: the client closes first, its socket goes to TIME_WAIT, and is counted."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        remotes = frozenset({("127.0.0.1", server.getsockname()[1])})
        before = read_time_wait(remotes)
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()  # FIN from the client: it is the side that closed first
        assert accepted.recv(1) == b""
        accepted.close()
        deadline = time.monotonic() + 2
        while read_time_wait(remotes) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert read_time_wait(remotes) == before + 1


# ---------------------------------------------------------------- connections opened a second, and TIME_WAIT

def timed(**changes) -> ChurnFigures:
    """A churn through a thread per request: 100 threads, 100 connections in 0.25 s, 80 left in TIME_WAIT."""
    return figures(**{**dict(connections_opened=100, churn_s=0.25, time_wait_before=3, time_wait_after=83), **changes})


def test_rates_are_derived_and_saved_with_the_figures():
    row = json.loads(json.dumps(timed().to_json()))
    assert (row["connections_opened_per_s"], row["connections_per_thread"]) == (400.0, 1.0)
    assert (row["churn_s"], row["time_wait_before"], row["time_wait_after"]) == (0.25, 3, 83)
    assert ChurnFigures.from_json(row) == timed()
    assert ChurnFigures.from_message(json.loads(json.dumps(timed().to_message()))) == timed()
    assert figures().connections_opened_per_s is None and figures().connections_per_thread == 0.03
    unknown = timed(time_wait_before=None, time_wait_after=None)
    assert ChurnFigures.from_json(json.loads(json.dumps(unknown.to_json()))) == unknown
    with pytest.raises(TypeError, match="time_wait_after"):
        ChurnFigures.from_json({**row, "time_wait_after": "many"})


def test_older_files_load_without_rates_or_time_wait():
    new = ("churn_s", "time_wait_before", "time_wait_after", "connections_opened_per_s", "connections_per_thread")
    old = {k: v for k, v in LeakCheck.judged("fifo", True, WorkerOutcome(), timed()).to_json().items() if k not in new}
    loaded = LeakCheck.from_json(old).figures
    assert (loaded.churn_s, loaded.time_wait_after, loaded.connections_opened_per_s) == (None, None, None)
    console = Console(record=True, width=200)
    console.print(check_report(LeakCheck.from_json(old), True))
    assert not [line for line in console.export_text().splitlines() if line.startswith("opened")]  # not recorded


def test_a_connection_per_thread_piling_up_time_wait_is_said_in_plain_words():
    check = LeakCheck.judged("thread-mapped", True, WorkerOutcome(), timed())
    assert check.verdict == "churn"  # nothing leaks: still a passing verdict; thresholds can fail it
    assert "80 client sockets were left in TIME_WAIT" in check.advice and "Errno 99" in check.advice and "pool" in check.advice
    for calm in (timed(time_wait_after=10), timed(time_wait_before=None, time_wait_after=None),
                 timed(connections_opened=40, threads_started=100)):
        assert "TIME_WAIT" not in LeakCheck.judged("per-thread", True, WorkerOutcome(), calm).advice
    console = Console(record=True, width=200)
    console.print(check_report(check, True))
    console.print(check_report(LeakCheck.judged("x", True, WorkerOutcome(), timed(time_wait_after=None)), True))
    lines = [line for line in console.export_text().splitlines() if line.startswith("opened")]
    assert lines == ["opened 100 connections in 250 ms (400/s, 1.00 per thread) · 83 sockets in TIME_WAIT (3 before)",
                     "opened 100 connections in 250 ms (400/s, 1.00 per thread) · sockets in TIME_WAIT: unknown "
                     "(no /proc/net/tcp)"]


def test_thresholds_name_the_rates_and_time_wait():
    from mcpool_cli.report.thresholds import evaluate, parse_threshold

    document = session().to_json()
    document["results"][0].update(timed().to_json())
    document["results"][1].update(timed(time_wait_after=None).to_json())
    del document["results"][1]["connections_opened_per_s"]
    names = ("time_wait_after<50", "connections_per_thread<0.5", "connections_opened_per_s<1000")
    results = evaluate(document, tuple(parse_threshold(name) for name in names))
    assert [(r["subject"], r["ok"], r["shown"]) for r in results] == [
        ("fifo", False, "83"), ("thread-mapped", True, "n/a: TIME_WAIT unknown here (no /proc/net/tcp)"),
        ("x.y:pool", False, "no value"),
        ("fifo", False, "1"), ("thread-mapped", False, "1"), ("x.y:pool", False, "no value"),
        ("fifo", True, "400"), ("thread-mapped", True, "n/a: not in this file (written by an older mcpool)"),
        ("x.y:pool", False, "no value")]
