"""check-races in an HTML report: a card per strategy with its verdict and evidence, each trial drawn as how
long it ran and how it ended (with the first anomaly marked), the anomalies by kind, and examples."""

from __future__ import annotations

from typing import Any

from mcpool_cli.checks.races.kind import KIND
from mcpool_cli.report.html import Chart, Source, Table, Verdict, label, passed, rows_of
from mcpool_cli.units import printable

OUTCOME_COLORS = {"ok": "#2da44e", "crashed": "#cf222e", "hung": "#bc4c00", "interrupted": "#9a6700"}
ANOMALY_COLORS = {"other_key": "#cf222e", "stale_own": "#bc4c00", "false_miss": "#8250df", "corrupt": "#1f2328",
                  "protocol_desync": "#0969da", "errors": "#d4a72c"}


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    return [card(row) for row in rows_of(data)]


def card(row: dict[str, Any]) -> Verdict:
    verdict = str(row.get("verdict") or "?")
    good = passed(KIND, verdict)
    lines = [str(row[key]) for key in ("summary", "advice") if row.get(key)]
    if row.get("unexplained_errors"):
        lines.append(f"{row['unexplained_errors']:,} errors not explained by a race or the server")
    return Verdict(str(row.get("strategy", "?")), verdict, good, tuple(printable(line) for line in lines))


def tables(data: dict[str, Any]) -> list[Table]:
    rows = tuple((printable(row.get("strategy")), printable(example.get("kind")), printable(example.get("key")),
                  printable(example.get("expected"))[:80], printable(example.get("got"))[:80])
                 for row in rows_of(data) for example in row.get("examples") or [] if isinstance(example, dict))
    return [Table("Evidence: what a thread read back (examples)", ("strategy", "kind", "key", "expected", "got"),
                  rows)] if rows else []


def trials_of(source: Source) -> list[tuple[str, dict[str, Any]]]:
    return [(source.name(f"{row.get('strategy', '?')} #{trial.get('trial', index + 1)}"), trial)
            for row in rows_of(source.data)
            for index, trial in enumerate(t for t in row.get("trials") or [] if isinstance(t, dict))]


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    trials = [item for source in sources for item in trials_of(source)]
    if not trials:
        return [], ["No trials in this file: the check ran nothing (interrupted before its first trial?)."]
    return [trials_chart(trials), anomalies_chart(sources)], []


def trials_chart(trials: list[tuple[str, dict[str, Any]]]) -> Chart:
    """A bar per trial, as long as it ran, coloured by how it ended; a diamond where the first anomaly was."""
    names = [label(name) for name, _ in trials]
    data = []
    for outcome in dict.fromkeys(str(trial.get("outcome")) for _, trial in trials):
        chosen = [(name, trial) for name, trial in zip(names, (t for _, t in trials)) if str(trial.get("outcome")) == outcome]
        data.append({"type": "bar", "orientation": "h", "name": label(outcome), "y": [n for n, _ in chosen],
                     "x": [trial.get("lifetime_s") or 0 for _, trial in chosen],
                     "customdata": [f"{trial.get('signal') or ''} {printable(trial.get('stderr_tail') or '')}".strip()
                                    for _, trial in chosen],
                     "marker": {"color": OUTCOME_COLORS.get(outcome, "#6e7781")},
                     "hovertemplate": f"{label(outcome)} after %{{x:.2f}} s %{{customdata}}<extra></extra>"})
    first = [(name, trial["first_anomaly_s"]) for name, (_, trial) in zip(names, trials)
             if isinstance(trial.get("first_anomaly_s"), (int, float))]
    if first:
        data.append({"type": "scatter", "mode": "markers", "name": "first anomaly", "y": [n for n, _ in first],
                     "x": [at for _, at in first], "marker": {"symbol": "diamond", "size": 12, "color": "#1f2328"},
                     "hovertemplate": "first anomaly at %{x:.3f} s<extra></extra>"})
    layout = {"barmode": "overlay", "xaxis": {"title": {"text": "seconds the trial's worker ran"}, "rangemode": "tozero"},
              "yaxis": {"autorange": "reversed", "automargin": True}, "margin": {"l": 160, "t": 10},
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom"}}
    return Chart("Trials: how long each ran and how it ended", data, layout, name="races-trials",
                 height_px=max(200, 110 + 28 * len(trials)),
                 caption="A trial that ran its full time without anomaly is the evidence for `safe`; a crash or hang "
                         "ends its bar early. ◆ marks the first wrong value or desync a thread saw.")


def anomalies_chart(sources: list[Source]) -> Chart:
    """Anomalies by kind, and errors, summed over each strategy's trials."""
    rows = [(source.name(str(row.get("strategy", "?"))), row) for source in sources for row in rows_of(source.data)]
    kinds = list(dict.fromkeys(kind for _, row in rows for kind in (row.get("anomalies") or {})))
    data = [{"type": "bar", "name": label(kind.replace("_", " ")), "x": [label(n) for n, _ in rows],
             "y": [(row.get("anomalies") or {}).get(kind, 0) for _, row in rows],
             "marker": {"color": ANOMALY_COLORS.get(kind, "#6e7781")}} for kind in kinds]
    data.append({"type": "bar", "name": "errors raised", "x": [label(n) for n, _ in rows],
                 "y": [sum((row.get("errors") or {}).values()) for _, row in rows],
                 "marker": {"color": ANOMALY_COLORS["errors"]}})
    layout = {"barmode": "stack", "yaxis": {"title": {"text": "count over all trials"}, "rangemode": "tozero"}}
    return Chart("What the threads saw, by kind", data, layout, name="races-anomalies", height_px=360,
                 caption="other key: a reply meant for another thread; stale own: an older value of the thread's own "
                         "key; false miss: None for a key just written; protocol desync: an error whose text is "
                         "another command's reply. A crash can come before any of them.")
