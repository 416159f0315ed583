"""check-failover against real memcached nodes: each verdict from a real fault, bad input, Ctrl-C, other data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pylibmc
import pytest

from mcpool_cli.engine.server import EmbeddedServer
from tests.conftest import TESTS, invoke_mcpool
from tests.test_interrupt import alive, descendants, start_measuring

QUICK = ["--threads", "4", "--rate", "200", "--keys", "300", "--before", "500ms", "--outage", "1500ms",
         "--after", "2500ms", "--quiet"]
FOREIGN = "not-mcpool:foreign-key"

# Each check runs as a real mcpool process, all started as this module begins: their loads are paced, so they
# overlap the rest of the module (and each other) instead of adding up.
IN_BACKGROUND = {
    # modula raises through the outage; ketama with ejection moves a third of the keys and, as the node comes
    # back with its data, serves stale values; pymemcache's HashClient drops writes to a server it is retrying
    "kill-kept": lambda servers: ["--config", "modula", "--config", "ketama-eject-2s", "--config", "hashclient",
                                  "--threshold", "stale_reads==0"],
    # an ejected node that comes back empty: transparent (one thread, so no client re-admits it before another);
    # and one that dead_timeout=60 keeps out: stuck
    "kill-empty": lambda servers: ["--config", "ketama-eject-2s", "--config", "ketama-eject", "--rejoin", "empty",
                                   "--threads", "1", "--rate", "600"],
    # reads only: keys move, but nothing written during the outage can be read back stale: not shown safe
    "reads-only": lambda servers: ["--config", "ketama-eject-2s", "--mix", "get=1"],
    # a frozen node: calls wait on it (pylibmc's poll timeout is longer than the outage)
    "freeze": lambda servers: ["--config", "ketama", "--fault", "freeze"],
    # the user's servers: faults through the proxies only, and nothing but mcpool's keys touched
    "external": lambda servers: [*(arg for spec in servers for arg in ("-s", spec)), "--fault", "drop",
                                 "--config", "ketama-eject-2s", "--rejoin", "empty", "--threads", "1", "--rate",
                                 "600"],
}


@pytest.fixture(scope="module")
def nodes():
    """Two memcached servers of the user's, with a key of someone else's on each."""
    with EmbeddedServer(memory_mb=64) as first, EmbeddedServer(memory_mb=64) as second:
        specs = [first.address.spec, second.address.spec]
        for spec in specs:
            client = pylibmc.Client([spec])
            client.set(FOREIGN, b"theirs")
            client.disconnect_all()
        yield specs


@pytest.fixture(scope="module", autouse=True)
def in_background(nodes, tmp_path_factory):
    """name → a function that waits for that background check and returns (exit code, document, folder)."""
    folder = tmp_path_factory.mktemp("failover")
    started = {}
    for name, args in IN_BACKGROUND.items():
        out, err = folder / f"{name}.json", folder / f"{name}.err"
        with open(err, "w") as stderr:
            started[name] = subprocess.Popen(
                [sys.executable, "-m", "mcpool_cli", "check-failover", *QUICK, "--json", str(out),
                 "--junit", str(folder / f"{name}.xml"), *args(nodes)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=TESTS,
                env={**os.environ, "MCPOOL_SERVERS": ""})

    def result(name):
        code = started[name].wait(timeout=180)
        assert "Traceback" not in (folder / f"{name}.err").read_text()
        doc = json.loads((folder / f"{name}.json").read_text())
        assert doc["schema"] == "mcpool.check/1" and doc["check"] == "failover"
        return code, doc, folder

    yield result
    for process in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def rows(doc: dict) -> dict[str, dict]:
    return {row["config"]: row for row in doc["results"]}


def test_modula_raises_ketama_moves_a_third_and_a_rejoined_node_serves_stale_values(in_background):
    code, doc, folder = in_background("kill-kept")
    assert code == 1
    found = rows(doc)
    modula, ketama, hashclient = found["modula"], found["ketama-eject-2s"], found["hashclient"]
    assert modula["verdict"] == "errors" and modula["ejected_s"] is None
    assert modula["errors"].get("ServerDown", 0) > 100 and modula["moved_during"] == 0
    assert modula["moved_if_removed"] > 0.5 and modula["healthy_moved_if_removed"] > 0.3  # modula remaps most keys
    assert ketama["verdict"] == "inconsistent"
    assert ketama["stale_reads"] > 0 and ketama["stale_after_back"] == ketama["stale_reads"]
    assert ketama["ejected_s"] < 0.5 and ketama["readmitted_s"] is not None
    assert 0.15 < ketama["moved_during"] < 0.5  # about a third: only the failed node's keys
    assert ketama["healthy_moved_if_removed"] == 0 and 0.15 < ketama["moved_if_removed"] < 0.5
    assert ketama["misses_other_keys"] == 0 and ketama["misses_failed_keys"] > 0
    assert hashclient["verdict"] == "inconsistent" and hashclient["lost_writes"] > 0
    for row in found.values():
        nodes = [sum(interval["nodes"][n] for interval in row["intervals"]) for n in range(3)]
        assert all(nodes), row["config"]  # every node carried load over the run
    assert 'failures="' in (folder / "kill-kept.xml").read_text()
    judged = {t["subject"]: t["ok"] for t in doc["thresholds"]}
    assert judged == {"modula": True, "ketama-eject-2s": False, "hashclient": True}


def test_a_node_that_rejoins_empty_is_transparent_and_dead_timeout_60_keeps_it_out(in_background):
    code, doc, _ = in_background("kill-empty")
    found = rows(doc)
    fast, slow = found["ketama-eject-2s"], found["ketama-eject"]
    assert fast["verdict"] == "transparent", fast["findings"]
    assert fast["stale_reads"] == 0 and fast["exposed_reads"] > 0 and fast["readmitted_s"] is not None
    assert "deleted from it first" in fast["fault_detail"]
    assert slow["verdict"] == "stuck" and slow["readmitted_s"] is None and slow["moved_after"] > 0.15
    assert "dead_timeout=60" in slow["advice"]
    assert code == 1


def test_a_frozen_node_stalls_calls(in_background):
    code, doc, _ = in_background("freeze")
    row = rows(doc)["ketama"]
    assert code == 1 and row["verdict"] == "stalled", row["findings"]
    assert row["longest_failed_key_op_s"] >= 1.0 and row["error_count"] == 0
    assert "timeout" in row["advice"]


def test_a_run_that_could_not_test_stale_reads_is_inconclusive(in_background):
    code, doc, _ = in_background("reads-only")
    row = rows(doc)["ketama-eject-2s"]
    assert code == 1 and row["verdict"] == "inconclusive", row["findings"]
    assert row["moved_keys"] > 0 and row["written_in_outage"] == 0 and row["stale_reads"] == 0
    assert "the mix needs set" in row["findings"][0]


def test_the_users_servers_are_touched_only_through_mcpools_keys(in_background, nodes):
    code, doc, _ = in_background("external")
    assert doc["server"]["embedded"] is False and doc["server"]["addresses"] == nodes
    assert len(doc["server"]["proxies"]) == 2
    assert rows(doc)["ketama-eject-2s"]["verdict"] in ("transparent", "inconclusive", "inconsistent")
    for spec in nodes:
        client = pylibmc.Client([spec])
        assert client.get(FOREIGN) == b"theirs"
        client.disconnect_all()


@pytest.mark.parametrize("args, message", [
    (["-s", "127.0.0.1:11211"], "needs at least two servers"),
    (["-s", "127.0.0.1:11211", "-s", "127.0.0.1:11211"], "is given twice"),
    (["--duration", "2s", "--outage", "3s"], "does not fit in --duration"),
    (["--node", "4"], "there are only 3 nodes"),
    (["--config", "nonsense"], "not a preset"),
    (["--config", "ketama", "--config", "ketama"], "given twice"),
    (["--config", "pylibmc:no_such_behavior=1"], "--config pylibmc:no_such_behavior=1"),
    (["--strategy", "shared"], "takes per-thread, fifo or thread-mapped"),
    (["--mix", "set=1"], "--mix needs get"),
    (["--duration", "6s", "--after", "2s"], "--duration and --after both"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    process = invoke_mcpool("check-failover", *args)
    assert process.returncode == 2, process.stderr
    assert message in process.stderr and "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1


def test_one_server_under_two_names_is_refused(memcached):
    process = invoke_mcpool("check-failover", "-s", memcached.spec, "-s", f"localhost:{memcached.port}")
    assert process.returncode == 2, process.stderr
    assert "are the same memcached" in process.stderr and len(process.stderr.strip().splitlines()) == 1


def test_ctrl_c_during_the_outage_leaves_no_node_or_proxy(tmp_path):
    out = tmp_path / "failover.json"
    process = start_measuring("check-failover", "--config", "ketama-eject-2s", "--before", "300ms", "--outage",
                              "5s", "--threads", "2", "--json", str(out))
    time.sleep(1.5)  # in the outage
    children = descendants(process.pid)
    assert len([pid for pid in children if Path(f"/proc/{pid}/comm").read_text().strip() == "memcached"]) == 3
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["results"][0]["outcome"] == "interrupted"
    time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)]
    for spec in doc["server"]["proxies"]:  # no proxy listens any more
        host, port = spec.rsplit(":", 1)
        with pytest.raises(OSError):
            __import__("socket").create_connection((host, int(port)), timeout=1).close()


def test_report_reads_a_saved_document_back(in_background, tmp_path):
    _, doc, folder = in_background("freeze")
    process = invoke_mcpool("report", str(folder / "freeze.json"))
    assert process.returncode == 0, process.stderr  # report shows; the run's own exit judged it
    assert "stalled" in process.stdout and "ketama" in process.stdout
