"""The evidence the judge reads: what one track did during one analysis window.

Providers (metrics backends, the load generator) produce these; the judge only
reads them. Every figure is optional where a backend can fail to produce it:
``None`` means "no data", which the judge never scores as a pass or a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WindowStats:
    """Aggregates of one track (stable or canary) over one analysis window."""

    track: str
    window_s: float
    requests: float
    errors: float
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    ttft_p95_s: float | None = None
    output_tokens: float | None = None
    cost_usd: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Share of requests that failed (5xx), or None without requests."""
        if self.requests <= 0:
            return None
        return self.errors / self.requests


_QUANTILE_FIELDS = ("latency_p50_s", "latency_p95_s", "latency_p99_s", "ttft_p95_s")


def combine_intervals(rows: Sequence[Mapping[str, Any]], track: str) -> WindowStats:
    """One window from per-interval rows: counts and totals summed.

    Quantiles cannot be merged from quantiles; each is the request-weighted
    mean of the intervals' values, an approximation (per-request samples give
    the exact figure). A quantile missing from every interval stays ``None``.
    """

    def number(row: Mapping[str, Any], key: str) -> float | None:
        value = row.get(key)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"interval field {key} is not a number: {value!r}") from None

    requests = [number(r, "requests") or 0.0 for r in rows]
    total = sum(requests)

    def summed(key: str) -> float | None:
        values = [number(r, key) for r in rows]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    def weighted(key: str) -> float | None:
        pairs = [(number(r, key), n) for r, n in zip(rows, requests, strict=True)]
        known = [(v, n) for v, n in pairs if v is not None and n > 0]
        weight = sum(n for _, n in known)
        return sum(v * n for v, n in known) / weight if weight else None

    return WindowStats(
        track=track,
        window_s=summed("window_s") or 0.0,
        requests=total,
        errors=summed("errors") or 0.0,
        output_tokens=summed("output_tokens"),
        cost_usd=summed("cost_usd"),
        **{key: weighted(key) for key in _QUANTILE_FIELDS},
    )
