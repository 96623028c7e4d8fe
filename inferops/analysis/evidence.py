"""The evidence the judge reads: what one track did during one analysis window.

Providers (metrics backends, the load generator) produce these; the judge only
reads them. Every figure is optional where a backend can fail to produce it:
``None`` means "no data", which the judge never scores as a pass or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass


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
