"""Latency histograms: raw nanoseconds shipped from workers, HdrHistograms merged and encoded in the parent."""

from __future__ import annotations

import base64
import sys
import weakref
from array import array
from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES = 1, 3_600_000_000_000, 3  # 1 ns .. 1 h, 3 digits
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def new_histogram() -> HdrHistogram:
    return acyclic(HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES))


def acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """The histogram, with the reference cycle hdrh builds (histogram → its encoder → the histogram) made weak on
    the encoder's side, so that a dropped histogram and its 130 KB of counts are freed at once, not whenever
    the cyclic garbage collector gets to them: a long run drops one per interval, and a parent that kept them
    around grew by megabytes a minute."""
    encoder = getattr(histogram, "encoder", None)
    if encoder is not None and getattr(encoder, "histogram", None) is histogram:
        encoder.histogram = weakref.proxy(histogram)
    return histogram


def encode_ns(values: list[int]) -> str:
    """Latencies in ns as base64 of little-endian int64s: 8 bytes a value, cheap to ship."""
    return encode_ns_ascii(values).decode("ascii")


def encode_ns_ascii(values: list[int]) -> bytes:
    """`encode_ns` as ASCII bytes, which a JSON line can hold as they are (base64 needs no escaping)."""
    data = array("q", values)
    if sys.byteorder != "little":
        data.byteswap()
    return base64.b64encode(data)


def decode_ns(text: str) -> array:
    data = array("q")
    data.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        data.byteswap()
    return data


def quantize_counts(values_ns: array) -> Counter:
    """Count values by the lowest value HdrHistogram would file them under (3 digits: 2048 sub-buckets).

    Lossless at the histogram's precision and about 4x cheaper than recording each value.
    """
    return Counter(v >> (s := max(0, v.bit_length() - 11)) << s for v in values_ns)


def latency_summary_us(histogram: HdrHistogram) -> dict[str, float | None]:
    """min, mean, percentiles and max in µs (null for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return {key: None for key in ("min", "mean", *(p for p, _ in PERCENTILES), "max")}
    summary = {"min": histogram.get_min_value() / 1000, "mean": round(histogram.get_mean_value() / 1000, 3)}
    for name, percentile in PERCENTILES:
        summary[name] = histogram.get_value_at_percentile(percentile) / 1000
    summary["max"] = histogram.get_max_value() / 1000
    return summary


def encode_histogram(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def latency_block(histogram: HdrHistogram, count: int) -> dict[str, Any]:
    return {"count": count, "latency_us": latency_summary_us(histogram), "histogram": encode_histogram(histogram)}


def decode_histogram(text: str) -> HdrHistogram:
    """A histogram saved with `encode_histogram`; ValueError when it does not decode."""
    try:
        return acyclic(HdrHistogram.decode(text))
    except Exception as exc:  # hdrh raises classes of its own, and binascii's and zlib's
        raise ValueError(f"a histogram does not decode ({exc or type(exc).__name__})") from exc
