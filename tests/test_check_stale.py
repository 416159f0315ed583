"""`mcpool check-stale` against real memcached processes: real restarts, the real idle timeout, a real proxy."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcpool_cli.checks.stale.analysis import analyse
from mcpool_cli.engine.faults import FaultTimes
from mcpool_cli.checks.stale.loop import StaleBatch
from mcpool_cli.engine.proxy import FaultProxy
from mcpool_cli.cli import cli
from tests.conftest import TESTS, invoke_mcpool
from tests.test_interrupt import alive, descendants, start_measuring

QUICK = ["--threads", "4", "--rate", "200", "--keys", "200", "--before", "500ms", "--quiet"]


def stale(*args):
    result = CliRunner().invoke(cli, ["check-stale", *QUICK, "--json", "-", *args])
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "mcpool.check/1" and doc["check"] == "stale"
    return result.exit_code, doc


# Checks that need nothing injected into this process run as real mcpool processes, started as this module
# begins: their timelines (load paced at --rate, timers) then overlap the checks that run in this process.
IN_BACKGROUND = {
    # drop: a hang timeout below the outage: calls that fail fast are progress, not a hang
    "drop": lambda server: ["-s", server, "--fault", "drop", "--strategy", "per-thread", "--mix", "get_multi=1",
                            "--behavior", "retry_timeout=1", "--recover-within", "3s", "--hang-timeout", "1s"],
    "freeze": lambda server: ["-s", server, "--fault", "freeze", "--outage", "1s", "--strategy", "fifo",
                              "--mix", "get=1", "--recover-within", "2s"],
    "idle": lambda server: ["--fault", "idle", "--idle-timeout", "1", "--strategy", "per-thread",
                            "--mix", "get_multi=1", "--behavior", "retry_timeout=1", "--recover-within", "3s"],
}


@pytest.fixture(scope="module", autouse=True)
def in_background(memcached, tmp_path_factory):
    """name → a function that waits for that background check and returns (exit code, document)."""
    folder = tmp_path_factory.mktemp("stale")
    started = {}
    for name, args in IN_BACKGROUND.items():
        out, err = folder / f"{name}.json", folder / f"{name}.err"
        with open(err, "w") as stderr:
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "mcpool_cli", "check-stale", *QUICK, "--json", str(out), *args(memcached.spec)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=TESTS,
                env={**os.environ, "MCPOOL_SERVERS": ""})

    def result(name):
        code = started[name].wait(timeout=120)
        assert "Traceback" not in (folder / f"{name}.err").read_text()
        doc = json.loads((folder / f"{name}.json").read_text())
        assert doc["schema"] == "mcpool.check/1" and doc["check"] == "stale"
        return code, doc

    yield result
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def memcached_pids() -> set[int]:
    """memcached processes this test process started itself (the session fixture's, and any restarted one);
    not those of the mcpool processes it runs."""
    found = set()
    for pid in descendants(os.getpid()):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and Path(f"/proc/{pid}/comm").read_text().strip() == "memcached" and alive(pid):
                found.add(pid)
        except (OSError, IndexError, ValueError):
            pass
    return found


def test_restart_is_noticed_false_misses_counted_and_recovery_timed():
    before = memcached_pids()
    code, doc = stale("--fault", "restart", "--strategy", "fifo", "--mix", "get_multi=1", "--outage", "500ms",
                      "--behavior", "retry_timeout=1", "--recover-within", "3s")
    (result,) = doc["results"]
    assert result["fault"] == "restart" and result["strategy"] == "fifo"
    assert "started again" in result["fault_detail"]
    # every op is a get_multi of 4 keys: the first one on each dead connection answers {} without an error
    assert result["false_misses"] >= 4
    assert result["error_count"] > 0 and "ServerDown" in result["errors"]
    assert result["outage_s"] > 0.3
    assert result["recovery_s"] is not None and 0 <= result["recovery_s"] < 3
    assert result["verdict"] == "false-misses"
    assert code == 1
    assert memcached_pids() == before  # the restarted server was stopped too
    # the timeline: every op in one interval, false misses as failed ops; the fault planned at --before (500ms)
    rows = result["intervals"]
    assert result["interval_s"] == 0.5 and [row["t_s"] for row in rows] == [i * 0.5 for i in range(len(rows))]
    assert sum(row["ops"] for row in rows) == result["ops_ok"]
    assert sum(row["failed_ops"] for row in rows) == result["ops_failed"]
    assert sum(row["errors"] for row in rows) == result["error_count"]
    assert 0.5 <= result["fault_at_s"] < result["back_at_s"]
    failing = [row["t_s"] for row in rows if row["failed_ops"]]
    assert failing and min(failing) >= result["fault_at_s"] // 0.5 * 0.5  # none before the fault's interval


def test_drop_through_the_proxy_against_any_server(memcached, in_background):  # options: IN_BACKGROUND
    code, doc = in_background("drop")
    (result,) = doc["results"]
    assert doc["server"]["addresses"] == [memcached.spec] and doc["server"]["embedded"] is False
    assert len(doc["server"]["proxies"]) == 1
    assert "closed 4 client connections" in result["fault_detail"]
    assert result["false_misses"] >= 4 and result["recovery_s"] is not None
    assert result["ops_lost"] >= result["error_count"] > 0 and result["outcome"] == "ok"
    assert result["ops_ok"] + result["ops_failed"] == result["ops_scheduled"]  # a get_multi of 4 keys is one op
    assert code == 1


def test_a_server_that_cannot_start_again_stops_the_check_and_keeps_the_figures(monkeypatch):
    from mcpool_cli.errors import UsageProblem
    from mcpool_cli.engine.server import EmbeddedServer

    def refuse(self):
        raise UsageProblem("could not start memcached again (port taken?)")

    monkeypatch.setattr(EmbeddedServer, "start_again", refuse)  # the fault: another program took the port
    code, doc = stale("--fault", "restart", "--strategy", "fifo", "--strategy", "per-thread", "--outage", "200ms",
                      "--recover-within", "1s", "--mix", "get=1")  # gets raise on a dead connection: no false miss
    (result,) = doc["results"]  # per-thread never ran: there is no server
    assert result["verdict"] == "not-recovered" and result["recovery_s"] is None and result["error_count"] > 0
    assert "port taken" in result["fault_detail"] and "port taken" in doc["stopped_early"]
    assert doc["interrupted"] is False and code == 1


def test_freeze_stalls_calls_without_errors(in_background):
    code, doc = in_background("freeze")
    (result,) = doc["results"]
    # shorter than libmemcached's 5 s poll timeout: calls wait, then succeed
    assert result["false_misses"] == 0 and result["error_count"] == 0
    assert 0.9 <= result["longest_op_s"] < 3
    assert 0.8 <= result["outage_s"] < 3
    assert result["ops_skipped"] > 0  # ops that fell due while the threads were stuck
    assert result["verdict"] == "recovered" and code == 0


def test_errors_before_the_fault_keep_a_run_from_recovered(memcached, monkeypatch):
    """A client that raises KeyError in the first 0.3 s, before the fault strikes, against a healthy server."""
    monkeypatch.chdir(TESTS)
    code, doc = stale("-s", memcached.spec, "--fault", "freeze", "--outage", "500ms", "--recover-within", "2s",
                      "--mix", "get=1", "--strategy", "fault_strategies:early_erring_pool")
    (result,) = doc["results"]
    assert result["verdict"] == "unexplained-errors", result
    assert result["errors_before_fault"] == result["errors"]["KeyError"] > 0
    assert result["unexplained_errors"] == result["errors_before_fault"] and result["errors_after_settled"] == 0
    assert "server healthy" in result["advice"]
    assert code == 1


def test_idle_timeout_kicks_are_real(in_background):
    code, doc = in_background("idle")
    (result,) = doc["results"]
    assert "closed" in result["fault_detail"] and "idle connections" in result["fault_detail"]
    assert "closed no idle" not in result["fault_detail"]
    assert result["false_misses"] >= 4
    assert result["recovery_s"] is not None
    assert code == 1


@pytest.mark.parametrize("args, message", [
    (["-s", "127.0.0.1:11211", "--fault", "restart"], "--fault restart needs the memcached mcpool starts"),
    (["--fault", "idle", "-s", "127.0.0.1:11211"], "--fault idle needs the memcached mcpool starts"),
    (["--mix", "get=1,delete=1"], "check-stale takes get, get_multi and set"),
    (["--mix", "get=x"], "is not an op mix"),
    (["--outage", "10ms"], "--outage must be between"),
    (["--behavior", "retry_timeout=0"], "--behavior"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    process = invoke_mcpool("check-stale", *args)
    assert process.returncode == 2, process.stderr
    assert message in process.stderr and "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1


def test_ctrl_c_after_a_restart_leaves_no_server_behind(tmp_path):
    out = tmp_path / "stale.json"
    process = start_measuring("check-stale", "--fault", "restart", "--before", "300ms", "--outage", "300ms",
                              "--threads", "2", "--json", str(out))
    time.sleep(2.0)  # past the restart: the new memcached is a child too
    children = descendants(process.pid)
    assert len(children) >= 2
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["results"][0]["outcome"] == "interrupted"
    time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)]


def ms(n: int) -> int:
    return n * 1_000_000


def test_analyse_outage_recovery_and_false_misses():
    batch = StaleBatch(ok=20, scheduled=40, ok_ms={t: 1 for t in [*range(900, 1000, 10), *range(2501, 2600, 10)]},
                       fail_ms={t: 1 for t in range(1001, 2500, 10)} | {2491: 1}, errors={"ServerDown": 151},
                       misses=[(ms(1500), ms(1501)), (ms(2000), ms(2005)), (ms(2600), ms(2601))])
    times = FaultTimes(start_ns=ms(1000), back_ns=ms(2000), refill=(ms(2000), ms(2010)))
    figures = analyse(batch, times)
    assert figures.false_misses == 2  # the one during the refill may be real: the key was being written back
    assert figures.unverified_misses == 1
    assert figures.first_failure_s == pytest.approx(0.001)
    assert figures.outage_s == pytest.approx(2.601 - 1.001)  # the last failure is the false miss at 2600 ms
    assert figures.recovery_s is None  # nothing succeeded after it


def test_analyse_without_failures_and_with_stalls():
    batch = StaleBatch(ok_ms={t: 1 for t in [*range(900, 1000, 10), 2003, *range(2010, 2100, 10)]},
                       slow=[(ms(995), ms(2003))], max_op_ns=ms(1008))
    figures = analyse(batch, FaultTimes(start_ns=ms(1000), back_ns=ms(2000)))
    assert figures.false_misses == 0 and figures.error_count == 0
    assert figures.outage_s == pytest.approx(1.008)  # from the stalled op's start to its end
    assert figures.recovery_s == pytest.approx(0.003)
    assert figures.longest_op_s == pytest.approx(1.008)


def test_proxy_forwards_freezes_and_drops(memcached):
    with FaultProxy(memcached) as proxy:
        conn = socket.create_connection((proxy.address.host, proxy.address.port), timeout=1)
        conn.sendall(b"version\r\n")
        assert conn.recv(100).startswith(b"VERSION")
        proxy.freeze()
        conn.sendall(b"version\r\n")
        with pytest.raises(socket.timeout):
            conn.settimeout(0.3)
            conn.recv(100)
        proxy.thaw()
        conn.settimeout(1)
        assert conn.recv(100).startswith(b"VERSION")
        assert proxy.drop() == 1
        assert conn.recv(100) == b""  # closed under the client
    with pytest.raises(OSError):
        socket.create_connection((proxy.address.host, proxy.address.port), timeout=0.5)


def test_analyse_tells_errors_the_fault_does_not_explain():
    oks = {t: 1 for t in [*range(100, 1000, 10), *range(2005, 4000, 10)]}
    times = FaultTimes(start_ns=ms(1000), back_ns=ms(2000))
    during = {t: 1 for t in range(1001, 2000, 10)}
    clean = analyse(StaleBatch(ok_ms=oks, fail_ms=during, errors={"ServerDown": 100}), times)
    assert (clean.errors_before_fault, clean.errors_after_settled, clean.unexplained_errors) == (0, 0, 0)
    early = analyse(StaleBatch(ok_ms=oks, fail_ms={**during, 200: 2, 998: 1, 999: 1}), times)
    assert early.errors_before_fault == 3  # 999 ends within a millisecond of the fault: it may be the fault's
    late = analyse(StaleBatch(ok_ms=oks, fail_ms={**during, 2300: 1, 3600: 2, 3700: 1}), times)
    assert late.errors_before_fault == 0 and late.errors_after_settled == 3  # 2300: still the outage's tail
    never = analyse(StaleBatch(ok_ms={t: 1 for t in range(100, 1000, 10)}, fail_ms={**during, 3500: 1}), times)
    assert never.errors_after_settled == 0 and never.recovery_s is None
