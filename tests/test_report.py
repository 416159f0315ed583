import io

from rich.console import Console

from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.progress import PlainProgress
from mcpool_cli.bench.render import bucket_bounds_us, comparison, run_report
from mcpool_cli.units import format_number, pick_unit
from mcpool_cli.bench.results import RunResult, RunStats
from mcpool_cli.engine.outcomes import WorkerOutcome
from tests.test_results import snapshot


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def result(name, ops_per_s, outcome="ok", latency_ns=100_000):
    stats = RunStats()
    stats.add_snapshot(snapshot([latency_ns] * ops_per_s, acquire_ns=[400] * ops_per_s))
    return RunResult.measured(name, 4, 1, None, 1.0, stats, (WorkerOutcome(outcome, measured_s=1.0),))


def test_number_format_and_units():
    assert [format_number(v) for v in (1234.4, 56.78, 3.456, 0.1234, 0.000525, 0)] == \
        ["1,234", "56.8", "3.46", "0.123", "0.000525", "0"]
    assert pick_unit([0.5, 120, 150]) == ("µs", 1.0)
    assert pick_unit([2500, 3000, 1]) == ("ms", 1000.0)
    assert pick_unit([None]) == ("µs", 1.0)
    assert bucket_bounds_us(7, 450) == [10, 20, 50, 100, 200, 500]


def test_run_report_shows_counts_latency_table_and_distribution():
    text = render(run_report(result("fifo", 1000)))
    assert "fifo · 4 threads · ok" in text
    assert "ops/s 1,000" in text
    for row in ("get", "set", "all ops", "acquire"):
        assert row in text
    assert "p99.9 µs" in text
    assert "≤ 100 µs" in text and "100.0%" in text


def test_comparison_ranks_and_says_how_much_faster():
    text = render(comparison([result("fifo", 1000), result("per-thread", 1900), result("shared", 50, "crashed")]))
    lines = [line for line in text.splitlines() if line.startswith(("fifo", "per-thread", "shared")) and "ran" not in line and "figures" not in line]
    assert [line.split()[0] for line in lines] == ["per-thread", "fifo", "shared"]
    assert "per-thread ran 1.90× faster than fifo" in text
    assert "shared crashed: its figures cover only what it did before that" in text
    assert "faster than shared" not in text


def test_plain_progress_prints_at_most_every_interval():
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress(out, interval_s=5, get_time=lambda: now[0])
    plan = RunPlan(strategy="fifo", client=ClientConfig(servers=("x:1",)), workload=Workload(), duration_s=10)
    progress.phase(plan, "measure")
    for t in range(1, 11):
        now[0] = float(t)
        progress.tick(plan, elapsed_s=float(t), ops=t * 100, ops_per_s=100.0, errors=0)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[fifo] measuring"
    assert len(lines) == 3 and "5.0/10 s" in lines[1] and "10.0/10 s" in lines[2]
