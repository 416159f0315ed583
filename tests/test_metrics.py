"""bench --metrics-port against a real memcached: the endpoint answers during the run with growing counters, the
figures match the run's JSON, the pool's gauges are there, it is gone afterwards; the Grafana dashboard asks only
for metrics the endpoint has; bad input is exit 2."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcpool_cli.engine.server import free_loopback_port
from tests.conftest import TESTS, invoke_mcpool

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json"


def scrape(port: int) -> dict[str, list]:
    """name -> samples, from one scrape (the families' sample names, with _total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name + ("_total" if family.type == "counter" else ""), [])  # served, maybe empty
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def ok_ops(samples: dict[str, list], strategy: str) -> float:
    return sum(s.value for s in samples.get("mcpool_ops_total", [])
               if s.labels["strategy"] == strategy and s.labels["outcome"] == "ok")


@pytest.fixture(scope="module")
def live_run(memcached, tmp_path_factory):
    """A 4-second fifo bench with --metrics-port, scraped each half second while it runs."""
    folder, port = tmp_path_factory.mktemp("metrics"), free_loopback_port()
    out = folder / "bench.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpool_cli", "bench", "-s", memcached.spec, "--strategy", "fifo", "--threads", "4",
         "--pool-size", "2", "--duration", "4s", "--warmup", "200ms", "--metrics-port", str(port), "--quiet",
         "--json", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=TESTS)
    scrapes = []
    while process.poll() is None:
        time.sleep(0.5)
        try:
            scrapes.append(scrape(port))
        except OSError:
            pass  # not up yet, or already down
    assert process.wait(timeout=60) == 0, process.stderr.read()
    return scrapes, json.loads(out.read_text()), port


def test_counters_grow_while_the_run_lasts_and_match_its_json(live_run):
    scrapes, doc, _ = live_run
    measuring = [s for s in scrapes if ok_ops(s, "fifo")]
    assert len(measuring) >= 4, "the endpoint answered through the run"
    counts = [ok_ops(s, "fifo") for s in measuring]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    run = doc["runs"][0]
    assert counts[-1] <= run["ops"] - run["failed_ops"]  # the last scrape saw no more than the run measured
    last = measuring[-1]
    assert {s.labels["run_id"] for s in last["mcpool_run_info"]} == {doc["run_id"]}
    p99 = next(s.value for s in last["mcpool_latency_seconds"] if s.labels["quantile"] == "0.99")
    assert 0 < p99 < 1
    during = [one for one in measuring if one["mcpool_interval_latency_seconds"]]  # two intervals behind the run
    assert during and all(0 < s.value < 1 for s in during[0]["mcpool_interval_latency_seconds"])
    assert during[0]["mcpool_interval_ops_per_second"][0].value > 0


def test_the_pool_is_shown_as_the_strategy_sees_it(live_run):
    scrapes, _, _ = live_run
    last = scrapes[-1]
    created = [s.value for s in last["mcpool_pool_clients_created_total"] if s.labels["strategy"] == "fifo"]
    in_use = [s.value for s in last["mcpool_pool_clients_in_use"] if s.labels["strategy"] == "fifo"]
    waiters = [s.value for s in last["mcpool_pool_waiters"] if s.labels["strategy"] == "fifo"]
    assert created == [2] and 0 <= in_use[0] <= 2 and waiters[0] >= 0
    assert any(s.value > 0 for one in scrapes for s in one.get("mcpool_pool_waiters", []))  # 4 threads, 2 clients


def test_the_endpoint_is_gone_after_the_run(live_run):
    _, _, port = live_run
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_the_dashboard_asks_only_for_metrics_the_endpoint_serves(live_run):
    scrapes, _, _ = live_run
    served = {name for one in scrapes for name in one}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs and all("$run_id" in expr for expr in exprs)
    for expr in exprs:
        for name in re.findall(r"mcpool_[a-z_]+", expr):
            assert name in served, f"{name} in {expr!r} is not served"
    assert dashboard["uid"] == "mcpool" and all(p["type"] == "timeseries" for p in dashboard["panels"])


@pytest.mark.parametrize("value, message", [("abc", "give a port"), ("70000", "give a port")])
def test_a_bad_address_is_one_line_and_exit_2(value, message):
    process = invoke_mcpool("bench", "--metrics-port", value)
    assert process.returncode == 2 and message in process.stderr and "Traceback" not in process.stderr


def test_a_port_already_taken_is_exit_2(memcached):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        process = invoke_mcpool("bench", "-s", memcached.spec, "--duration", "300ms", "--metrics-port", str(port))
    assert process.returncode == 2, process.stderr
    assert "cannot listen there" in process.stderr and len(process.stderr.strip().splitlines()) == 1
