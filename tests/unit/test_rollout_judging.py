"""Judging a step: samples first, metrics otherwise, absolute SLOs without a concurrent baseline."""

import numpy as np

from inferops.analysis.evidence import WindowStats
from inferops.analysis.spec import parse_spec
from inferops.analysis.verdict import Decision
from inferops.rollout import absolute_only, judge_step, since

SPEC = parse_spec(
    {
        "min_requests": 50,
        "checks": [
            {"metric": "error_rate", "max": 0.01, "max_increase": 0.01, "worth_detecting": 0.05},
            {"metric": "latency_s", "max_ratio": 1.1, "worth_detecting": 0.5},
            {"metric": "latency_p95_s", "max": 2.0, "max_ratio": 1.25},
        ],
    }
)


def rows(track: str, n: int, latency: float, seed: int, t0: float = 1000.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "ts": t0 + i / 50,
            "latency_s": float(latency * rng.lognormal(0, 0.1)),
            "ttft_s": None,
            "status": 200,
            "ok": True,
            "track": track,
            "output_tokens": 32,
        }
        for i in range(n)
    ]


def no_metrics() -> tuple[WindowStats, None]:
    return WindowStats("canary", 10, 0, 0), None


def test_a_step_is_judged_against_the_concurrent_baseline() -> None:
    step = rows("canary", 800, 0.3, 1) + rows("stable", 800, 0.2, 2)
    assert judge_step(SPEC, step, no_metrics(), None).decision is Decision.ROLLBACK


def test_without_a_concurrent_baseline_only_the_slos_judge() -> None:
    # At 100% the canary serves everything: slower than stable was under half the load
    # is no regression, and the absolute SLOs still hold it to account.
    fine = judge_step(SPEC, rows("canary", 800, 0.3, 1), no_metrics(), None)
    assert fine.decision is Decision.PROMOTE, fine.reason
    slow = judge_step(SPEC, rows("canary", 800, 3.0, 1), no_metrics(), None)
    assert slow.decision is Decision.ROLLBACK, slow.reason


def test_absolute_only_drops_relative_limits_and_relative_only_checks() -> None:
    checks = absolute_only(SPEC).checks
    assert [c.metric for c in checks] == ["error_rate", "latency_p95_s"]
    assert all(c.max_ratio is None and c.max_increase is None for c in checks)


def test_without_samples_the_metrics_judge() -> None:
    canary = WindowStats("canary", 10, 200, 20, latency_p95_s=0.3)
    baseline = WindowStats("stable", 10, 200, 0, latency_p95_s=0.3)
    assert judge_step(SPEC, [], (canary, baseline), None).decision is Decision.ROLLBACK


def test_warm_up_requests_are_dropped() -> None:
    assert len(since(rows("canary", 100, 0.3, 1), 1001.0)) == 50
