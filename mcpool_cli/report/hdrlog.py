"""The HdrHistogram interval log of a bench document: every run's intervals, one tag per strategy and rate.

The format is HdrHistogram's own (log format 1.3): comment headers with the start and base time, a legend,
then one line per interval, `Tag=NAME,start,length,max,payload`, with times in seconds from the base time
and the max in milliseconds (the histograms hold nanoseconds). HdrHistogram's HistogramLogProcessor and
hdrh's HistogramLogReader read it.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'


def tag_of(run: dict[str, Any]) -> str:
    """A run's tag: its strategy, and its rate in a sweep (no commas or spaces: they end a tag)."""
    rate = (run.get("rate") or {}).get("target_per_s")
    name = f"{run.get('strategy', '?')}" + (f"@{rate:g}/s" if rate else "")
    return re.sub(r"[\s,]", "_", name)


def interval_log(document: dict[str, Any]) -> str:
    """The log's text. A run saved without a wall-clock start is placed after the one before it."""
    runs = [run for run in document.get("runs") or [] if run.get("intervals")]
    base = min((run.get("measure_started_unix") or 0.0 for run in runs), default=0.0) or 0.0
    when = datetime.datetime.fromtimestamp(base, datetime.timezone.utc).isoformat(sep=" ", timespec="seconds")
    lines = [f"#[mcpool {document.get('command', 'bench')} run {document.get('run_id', '')}: latency in ns, "
             f"from each op's intended start with --rate (the open model), else from its start]",
             "#[Histogram log format version 1.3]",
             f"#[StartTime: {base:.3f} (seconds since epoch), {when}]",
             f"#[BaseTime: {base:.3f} (seconds since epoch)]", LEGEND]
    offset = 0.0
    for run in runs:
        origin = (run.get("measure_started_unix") or 0.0) - base if run.get("measure_started_unix") else offset
        for interval in run["intervals"]:
            max_ms = (interval.get("latency_us") or {}).get("max") or 0.0
            lines.append(f"Tag={tag_of(run)},{origin + interval['t_s']:.3f},{interval['length_s']:.3f},"
                         f"{max_ms / 1000:.3f},{interval['histogram']}")
        offset = origin + sum(interval["length_s"] for interval in run["intervals"])
    return "\n".join(lines) + "\n"
