"""Capacity from a stepped open-loop run: goodput at each offered rate, and the knee.

A capacity profile offers requests at rising rates (Poisson arrivals, one rate per
stage). At each stage, goodput is the requests per second that met every per-request
latency limit, as vLLM's benchmark defines it: the limits are the SLO file's absolute
limits on TTFT, TPOT and end-to-end latency quantiles, applied to each request (a
request whose TTFT is within the p95 limit is good on TTFT). While the service keeps
up, goodput follows the offered rate; past its capacity, requests queue, latencies
cross their limits and goodput stops growing or falls.

The knee is the highest offered rate at which at least ``good_share`` (default 90%) of
the requests sent were good and the requests went out at the offered rate (within
Poisson noise: 80% of it), every lower stage too: the rate the target (one replica,
when the load goes to one pod) carries within its SLOs. Shares of the requests sent,
not of the rate offered, so a stage's few dozen Poisson arrivals do not decide it.
The first ``warmup_s`` of each stage is left out, so one stage's backlog is not
counted against the next.

Pure: samples in, figures out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from inferops.analysis.spec import QUANTILES, AnalysisSpec

GOOD_LIMITS = ("latency_s", "ttft_s", "tpot_s")


def request_limits(spec: AnalysisSpec) -> dict[str, float]:
    """Per-request limits from the SLO file: the tightest absolute quantile limit of each
    of latency, TTFT and TPOT (``latency_p95_s: max 2`` makes 2 s the latency limit)."""
    limits: dict[str, float] = {}
    for check in spec.checks:
        if check.metric in QUANTILES and check.max is not None:
            base, _ = QUANTILES[check.metric]
            limits[base] = min(limits.get(base, check.max), check.max)
    return limits


def _tpot(sample: Mapping[str, Any]) -> float | None:
    if sample.get("tpot_s") is not None:
        return float(sample["tpot_s"])
    out, ttft = sample.get("output_tokens"), sample.get("ttft_s")
    if ttft is None or not out or int(out) < 2:
        return None
    return (float(sample["latency_s"]) - float(ttft)) / (int(out) - 1)


def is_good(sample: Mapping[str, Any], limits: Mapping[str, float]) -> bool:
    """Whether a request succeeded within every per-request limit it can be held to."""
    if not sample.get("ok"):
        return False
    values = {
        "latency_s": sample.get("latency_s"),
        "ttft_s": sample.get("ttft_s"),
        "tpot_s": _tpot(sample),
    }
    return all(values[m] is None or float(values[m]) <= limit for m, limit in limits.items())  # type: ignore[arg-type]


@dataclass(frozen=True)
class StageFigures:
    """What one offered rate got."""

    offered_rps: float
    sent_rps: float
    goodput_rps: float
    requests: int
    good: int
    failed: int
    ttft_p95_s: float | None
    latency_p95_s: float | None

    @property
    def good_share(self) -> float:
        """The share of the requests sent that were good."""
        return self.good / self.requests if self.requests else 0.0

    @property
    def kept_up(self) -> bool:
        """Whether requests went out at the offered rate (80% of it, for Poisson noise):
        not, when every allowed request was in flight and arrivals had to wait."""
        return self.sent_rps >= 0.8 * self.offered_rps

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {**asdict(self), "good_share": round(self.good_share, 4), "kept_up": self.kept_up}


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def stage_figures(
    samples: Sequence[Mapping[str, Any]],
    stages: Sequence[tuple[float, float]],
    limits: Mapping[str, float],
    warmup_s: float = 2.0,
) -> list[StageFigures]:
    """Figures of each stage, given as (offered rate, duration); samples are placed by
    their arrival time (``ts``) after the first sample's."""
    if not samples:
        return []
    start = min(float(s["ts"]) for s in samples)
    out = []
    begin = 0.0
    for rate, duration in stages:
        low, high = begin + min(warmup_s, duration / 2), begin + duration
        mine = [s for s in samples if low <= float(s["ts"]) - start < high]
        span = high - low
        good = sum(1 for s in mine if is_good(s, limits))
        out.append(
            StageFigures(
                offered_rps=rate,
                sent_rps=len(mine) / span,
                goodput_rps=good / span,
                requests=len(mine),
                good=good,
                failed=sum(1 for s in mine if not s.get("ok")),
                ttft_p95_s=_p95([float(s["ttft_s"]) for s in mine if s.get("ttft_s") is not None]),
                latency_p95_s=_p95([float(s["latency_s"]) for s in mine if s.get("ok")]),
            )
        )
        begin = high
    return out


def knee(figures: Sequence[StageFigures], good_share: float = 0.9) -> StageFigures | None:
    """The highest offered rate carried within the limits, every lower one carried too;
    None when even the first stage was not."""
    found = None
    for stage in figures:
        if stage.good_share < good_share or not stage.kept_up:
            break
        found = stage
    return found


@dataclass(frozen=True)
class CostAtKnee:
    """What serving costs at the knee, when the machine's price is the whole bill."""

    hourly_usd: float
    priced_as: str
    per_1m_output_tokens_usd: float | None
    per_1k_requests_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


def cost_at(
    stage: StageFigures, tokens_per_request: float, hourly_usd: float, priced_as: str
) -> CostAtKnee:
    """The price of an hour divided by what an hour serves at ``stage``'s goodput."""
    per_hour = stage.goodput_rps * 3600
    tokens = per_hour * tokens_per_request
    return CostAtKnee(
        hourly_usd=hourly_usd,
        priced_as=priced_as,
        per_1m_output_tokens_usd=hourly_usd / tokens * 1e6 if tokens > 0 else None,
        per_1k_requests_usd=hourly_usd / per_hour * 1e3 if per_hour > 0 else None,
    )
