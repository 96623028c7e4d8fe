"""The spine's canary judge: decisions, reasons, and never promoting on no data."""

import pytest

from inferops.analysis.evidence import WindowStats
from inferops.analysis.judge import Decision, Outcome, judge, wilson_lower
from inferops.analysis.spec import SpecError, parse_spec

SPEC = parse_spec(
    {
        "min_requests": 50,
        "checks": [
            {"metric": "error_rate", "max": 0.01, "max_increase": 0.01},
            {"metric": "latency_p95_s", "max": 2.0, "max_ratio": 1.25},
            {"metric": "ttft_p95_s", "max": 0.5, "max_ratio": 1.25},
        ],
    }
)


def stats(
    track: str, n: float, errors: float = 0, p95: float | None = 0.3, ttft: float | None = 0.06
) -> WindowStats:
    return WindowStats(track, 10, n, errors, latency_p95_s=p95, ttft_p95_s=ttft)


def test_a_healthy_canary_continues_then_promotes() -> None:
    base = stats("stable", 400)
    assert judge(stats("canary", 100), base, SPEC, final=False).decision is Decision.CONTINUE
    final = judge(stats("canary", 100), base, SPEC, final=True)
    assert final.decision is Decision.PROMOTE
    assert all(c.outcome is Outcome.PASS for c in final.checks)


def test_a_slow_canary_rolls_back_and_says_why() -> None:
    v = judge(stats("canary", 100, ttft=0.21, p95=0.45), stats("stable", 400), SPEC, final=False)
    assert v.decision is Decision.ROLLBACK
    assert "ttft p95 0.210s exceeds" in v.reason
    assert "latency p95 0.450s exceeds 0.375s" in v.reason


def test_a_failing_canary_rolls_back_even_below_the_minimum_sample() -> None:
    v = judge(stats("canary", 30, errors=6), stats("stable", 400), SPEC, final=False)
    assert v.decision is Decision.ROLLBACK
    assert "error rate 20.0%" in v.reason


def test_one_unlucky_error_in_a_small_sample_does_not_roll_back() -> None:
    v = judge(stats("canary", 60, errors=1), stats("stable", 400), SPEC, final=False)
    assert v.decision is Decision.CONTINUE


def test_too_little_evidence_holds_and_never_promotes() -> None:
    v = judge(stats("canary", 20), stats("stable", 400), SPEC, final=True)
    assert v.decision is Decision.HOLD
    assert "only 20 of the 50" in v.reason


def test_no_data_holds() -> None:
    v = judge(stats("canary", 0, p95=None, ttft=None), None, SPEC, final=True)
    assert v.decision is Decision.HOLD
    missing = judge(stats("canary", 100, ttft=None), stats("stable", 400), SPEC, final=True)
    assert missing.decision is Decision.HOLD
    assert "ttft_p95_s" in missing.reason


def test_without_a_baseline_the_absolute_slos_still_judge() -> None:
    assert judge(stats("canary", 100), None, SPEC, final=True).decision is Decision.PROMOTE
    assert (
        judge(stats("canary", 100, p95=2.5), None, SPEC, final=True).decision is Decision.ROLLBACK
    )


def test_verdict_serialises_with_its_evidence() -> None:
    data = judge(stats("canary", 100), stats("stable", 400), SPEC, final=False).to_dict()
    assert data["decision"] == "continue"
    assert data["canary"]["requests"] == 100
    assert {c["metric"] for c in data["checks"]} == {"error_rate", "latency_p95_s", "ttft_p95_s"}


def test_wilson_lower_bound() -> None:
    assert wilson_lower(0, 100, 0.95) == 0.0
    assert 0.04 < wilson_lower(8, 100, 0.95) < 0.08
    assert wilson_lower(5, 0, 0.95) == 0.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"checks": []}, "checks"),
        ({"checks": [{"metric": "latency_p95_s"}]}, "needs max"),
        ({"checks": [{"metric": "error_rate", "max_ratio": 2}]}, "max_increase"),
        ({"checks": [{"metric": "gpu_temperature", "max": 1}]}, "metric"),
        ({"min_requests": 0, "checks": [{"metric": "error_rate", "max": 0.1}]}, "min_requests"),
    ],
)
def test_invalid_slo_files_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(data)
