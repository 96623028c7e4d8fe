"""Goodput per offered rate and the knee, on samples shaped like a saturating service."""

from __future__ import annotations

import random
from typing import Any

from inferops.analysis.capacity import is_good, knee, request_limits, stage_figures
from inferops.analysis.spec import parse_spec

SPEC = parse_spec(
    {
        "checks": [
            {"metric": "ttft_p95_s", "max": 0.5},
            {"metric": "ttft_p99_s", "max": 0.8},
            {"metric": "latency_p95_s", "max": 2.0},
            {"metric": "error_rate", "max": 0.05},
        ]
    }
)


def saturating(
    rates: list[float], capacity_rps: float, seconds: float = 10.0
) -> list[dict[str, Any]]:
    """Poisson arrivals at each rate; past ``capacity_rps`` TTFT grows with the backlog."""
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    t = 0.0
    for rate in rates:
        end, backlog = t + seconds, 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= end:
                t = end
                break
            backlog = max(0.0, backlog + 1 - capacity_rps / rate)
            ttft = 0.05 + backlog / capacity_rps
            rows.append(
                {
                    "ts": t,
                    "ttft_s": ttft,
                    "latency_s": ttft + 0.3,
                    "output_tokens": 30,
                    "ok": rng.random() > 0.01,
                }
            )
    return rows


def test_the_per_request_limits_are_the_tightest_absolute_quantile_limits() -> None:
    assert request_limits(SPEC) == {"ttft_s": 0.5, "latency_s": 2.0}
    limits = request_limits(SPEC)
    assert is_good({"ok": True, "ttft_s": 0.4, "latency_s": 1.0}, limits)
    assert not is_good({"ok": True, "ttft_s": 0.6, "latency_s": 1.0}, limits)
    assert not is_good({"ok": False, "ttft_s": 0.1, "latency_s": 0.2}, limits)
    assert is_good({"ok": True, "ttft_s": None, "latency_s": 1.0}, limits)  # not streamed


def test_goodput_follows_the_offered_rate_up_to_the_knee_then_stops() -> None:
    rates = [5.0, 10.0, 20.0, 40.0, 80.0]
    rows = saturating(rates, capacity_rps=30.0)
    figures = stage_figures(rows, [(r, 10.0) for r in rates], request_limits(SPEC))
    assert [f.offered_rps for f in figures] == rates
    for f in figures[:3]:
        assert 0.8 < f.sent_rps / f.offered_rps < 1.25
        assert f.good_share > 0.9 and f.kept_up
    assert figures[-1].good_share < 0.5 and figures[-1].goodput_rps < figures[2].goodput_rps * 1.5
    found = knee(figures)
    assert found is not None and found.offered_rps == 20.0


def test_no_knee_when_the_lowest_rate_is_not_carried() -> None:
    rates = [50.0, 100.0]
    rows = saturating(rates, capacity_rps=5.0)
    figures = stage_figures(rows, [(r, 10.0) for r in rates], request_limits(SPEC))
    assert knee(figures) is None
    assert stage_figures([], [(5.0, 10.0)], {}) == []


def test_a_capacity_runs_slos_are_judged_on_the_requests_up_to_its_knee() -> None:
    from inferops.loadtest import LoadProfile
    from inferops.loadtest_summary import judged_rows

    profile = LoadProfile.model_validate(
        {
            "name": "cap",
            "stages": [
                {"duration_s": 10, "users": 8, "spawn_rate": 8, "rate_rps": r} for r in (5, 10, 20)
            ],
        }
    )
    rows = [{"ts": 100.0 + t, "latency_s": 0.1, "ok": True} for t in range(30)]
    mine, scope = judged_rows(rows, profile, {"knee_rps": 10})
    assert [r["ts"] - 100 for r in mine] == list(range(20))
    assert scope == "the 20 requests up to the knee, 10 req/s offered"
    first, scope = judged_rows(rows, profile, {"knee_rps": None})
    assert len(first) == 10 and "no knee" in scope
    assert judged_rows(rows, profile, None) == (rows, "all 30 requests")
