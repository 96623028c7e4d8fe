"""The sequential judge's decision rules on crafted samples."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from inferops.analysis.sample_judge import judge_samples
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import AnalysisSpec, parse_spec
from inferops.analysis.verdict import Decision, Outcome

ROOT = Path(__file__).resolve().parents[3]

SPEC = parse_spec(
    {
        "min_requests": 100,
        "checks": [
            {"metric": "error_rate", "max": 0.2, "max_increase": 0.0, "worth_detecting": 0.05},
            {"metric": "latency_s", "max_ratio": 1.0, "worth_detecting": 0.25},
            {"metric": "ttft_s", "max_ratio": 1.0, "worth_detecting": 0.25},
        ],
    }
)


def track(
    name: str,
    n: int,
    seed: int,
    *,
    slower: float = 1.0,
    ttft: float = 1.0,
    error_rate: float = 0.0,
    streaming: bool = True,
) -> SampleSet:
    """Requests of a simple service: log-normal latency, TTFT a fifth of it."""
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(0.0, 0.3, n) * slower
    ok = rng.random(n) >= error_rate
    return SampleSet.from_columns(
        name,
        ts=np.arange(n) / 10,
        latency_s=latency,
        ok=ok,
        ttft_s=latency / 5 * ttft if streaming else None,
        output_tokens=np.full(n, 50.0),
    )


def test_an_unchanged_canary_is_promoted_with_every_check_passed() -> None:
    verdict = judge_samples(track("canary", 1500, 1), track("stable", 1500, 2), SPEC)
    assert verdict.decision is Decision.PROMOTE
    assert all(c.outcome is Outcome.PASS for c in verdict.checks)
    assert verdict.reason.startswith("every check rules out a regression worth detecting")


def test_a_slow_canary_rolls_back_and_the_reason_names_the_evidence() -> None:
    verdict = judge_samples(track("canary", 400, 3, slower=1.5), track("stable", 400, 4), SPEC)
    assert verdict.decision is Decision.ROLLBACK
    assert verdict.reason.startswith("latency +")
    assert "worse than the allowed +0.0%" in verdict.reason
    latency = next(c for c in verdict.checks if c.metric == "latency_s")
    comparison = latency.tests[0]
    assert comparison.estimate is not None and comparison.low is not None
    assert 1.4 < comparison.estimate < 1.6 and comparison.low > 1.3
    assert comparison.p_fail <= comparison.alpha


def test_a_critical_failure_rolls_back_below_the_minimum_sample() -> None:
    verdict = judge_samples(track("canary", 60, 5, error_rate=0.6), track("stable", 60, 6), SPEC)
    assert verdict.evidence is not None and verdict.evidence.required_requests > 60
    assert verdict.decision is Decision.ROLLBACK
    assert "error rate" in verdict.reason


def test_below_the_minimum_sample_it_continues_and_never_promotes() -> None:
    verdict = judge_samples(track("canary", 40, 7), track("stable", 40, 8), SPEC)
    assert verdict.decision is Decision.CONTINUE
    assert "40 of the" in verdict.reason
    final = judge_samples(track("canary", 40, 7), track("stable", 40, 8), SPEC, final=True)
    assert final.decision is Decision.HOLD
    assert final.reason.startswith("inconclusive: only 40 of the")


def test_no_canary_requests_hold_and_ask_for_traffic() -> None:
    verdict = judge_samples(track("canary", 0, 9), track("stable", 500, 10), SPEC)
    assert verdict.decision is Decision.HOLD
    assert "synthetic load" in verdict.reason
    assert all(c.outcome is Outcome.NO_DATA for c in verdict.checks)


def test_a_metric_missing_from_the_samples_holds_naming_it() -> None:
    verdict = judge_samples(
        track("canary", 1500, 11, streaming=False), track("stable", 1500, 12), SPEC
    )
    assert verdict.decision is Decision.HOLD
    assert "no data for TTFT" in verdict.reason


def test_without_a_baseline_only_absolute_slos_judge() -> None:
    absolute = parse_spec(
        {"min_requests": 50, "checks": [{"metric": "latency_p95_s", "max": 10.0}]}
    )
    assert judge_samples(track("canary", 300, 13), None, absolute).decision is Decision.PROMOTE
    relative = judge_samples(track("canary", 1500, 13), None, SPEC)
    assert relative.decision is Decision.HOLD
    assert "no baseline to compare" in relative.reason


def test_an_absolute_slo_breach_rolls_back() -> None:
    absolute = parse_spec({"checks": [{"metric": "latency_p95_s", "max": 1.0}]})
    verdict = judge_samples(track("canary", 300, 14, slower=2.0), None, absolute)
    assert verdict.decision is Decision.ROLLBACK
    assert verdict.reason.startswith("latency p95 SLO: ")
    assert "over 1 s, more than the 5.00% allowed" in verdict.reason


def test_an_unclear_difference_continues_then_holds_at_the_end() -> None:
    spec = parse_spec({"checks": [{"metric": "ttft_s", "max_ratio": 1.0, "worth_detecting": 0.05}]})
    # The same requests, TTFT 2.5% slower: halfway between no change and the 5% worth
    # detecting, so neither test can conclude at this sample.
    canary, stable = track("canary", 1300, 15, ttft=1.025), track("stable", 1300, 15)
    verdict = judge_samples(canary, stable, spec)
    assert verdict.evidence is not None and verdict.evidence.required_requests <= 1300
    assert verdict.decision is Decision.CONTINUE
    assert verdict.reason.startswith("TTFT not yet clear after 1300 canary requests")
    final = judge_samples(canary, stable, spec, final=True)
    assert final.decision is Decision.HOLD
    assert final.reason.startswith("TTFT inconclusive after 1300 canary requests")


def test_a_non_critical_failure_needs_consecutive_looks() -> None:
    spec = parse_spec(
        {
            "min_requests": 50,
            "failure_limit": 2,
            "checks": [
                {"metric": "ttft_s", "max_ratio": 1.0, "critical": False},
                {"metric": "latency_s", "max_ratio": 1.0, "worth_detecting": 0.25},
            ],
        }
    )
    canary, stable = track("canary", 600, 17, ttft=1.6), track("stable", 600, 18)
    first = judge_samples(canary, stable, spec)
    assert first.decision is Decision.CONTINUE
    assert first.streaks["ttft_s"] == 1
    assert "failing 1 of 2 consecutive looks" in first.reason
    second = judge_samples(canary, stable, spec, previous=first)
    assert second.decision is Decision.ROLLBACK
    assert second.streaks["ttft_s"] == 2


def test_a_passing_look_resets_the_failure_streak() -> None:
    spec = parse_spec(
        {"failure_limit": 2, "checks": [{"metric": "ttft_s", "max_ratio": 1.0, "critical": False}]}
    )
    failing = judge_samples(track("canary", 600, 19, ttft=1.6), track("stable", 600, 20), spec)
    healthy = judge_samples(
        track("canary", 2000, 21), track("stable", 2000, 22), spec, previous=failing
    )
    assert healthy.streaks["ttft_s"] == 0


def test_the_verdict_serialises_with_its_evidence() -> None:
    verdict = judge_samples(track("canary", 1500, 23), track("stable", 1500, 24), SPEC)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["decision"] == "promote"
    assert data["evidence"]["canary_requests"] == 1500
    assert data["evidence"]["alpha_per_test"] == pytest.approx(0.01 / 4)
    latency = next(c for c in data["checks"] if c["metric"] == "latency_s")
    assert {"estimate", "low", "high", "p_fail", "p_pass", "required_n"} <= set(latency["tests"][0])
    assert data["canary"]["requests"] == 1500


@pytest.mark.parametrize("name", ["loadtests/slos.yaml", "loadtests/checks/llm-canary.yaml"])
def test_the_shipped_check_files_judge_samples(name: str) -> None:
    spec = AnalysisSpec.model_validate(yaml.safe_load((ROOT / name).read_text()))
    verdict = judge_samples(track("canary", 300, 25), track("stable", 300, 26), spec)
    assert verdict.decision in (Decision.CONTINUE, Decision.PROMOTE)


@pytest.mark.parametrize(
    "change", [{}, {"slower": 1.3}, {"ttft": 1.12}, {"error_rate": 0.05}], ids=str
)
def test_undescribed_verdicts_decide_the_same(change: dict[str, float]) -> None:
    canary, stable = track("canary", 700, 27, **change), track("stable", 700, 28)
    full = judge_samples(canary, stable, SPEC)
    lean = judge_samples(canary, stable, SPEC, describe=False)
    assert lean.decision is full.decision
    assert [c.outcome for c in lean.checks] == [c.outcome for c in full.checks]
    assert [t.p_fail for c in lean.checks for t in c.tests] == [
        t.p_fail for c in full.checks for t in c.tests
    ]
    latency = next(c for c in lean.checks if c.metric == "latency_s")
    assert latency.tests[0].required_n is None
    assert lean.evidence is not None and not lean.evidence.canary_summary


def _narrow(name: str, n: int, seed: int, scale: float) -> SampleSet:
    """A service whose latency barely varies (a simulator, a cache): ranks separate fully."""
    rng = np.random.default_rng(seed)
    latency = scale * (1 + rng.uniform(0, 0.01, n))
    return SampleSet.from_columns(
        name,
        ts=np.arange(n) / 10,
        latency_s=latency,
        ok=np.ones(n, dtype=bool),
        ttft_s=latency / 5,
        output_tokens=np.full(n, 50.0),
    )


def test_a_clearly_faster_canary_is_promoted_even_when_no_ranks_overlap() -> None:
    # Every canary request is faster than every baseline request, at both the allowed and
    # the worth-detecting shift: the evidence is overwhelming, not absent.
    faster = judge_samples(_narrow("canary", 600, 1, 0.8), _narrow("stable", 600, 2, 1.0), SPEC)
    assert faster.decision is Decision.PROMOTE, faster.reason


def test_a_clearly_slower_canary_rolls_back_when_no_ranks_overlap() -> None:
    slower = judge_samples(_narrow("canary", 400, 1, 2.0), _narrow("stable", 400, 2, 1.0), SPEC)
    assert slower.decision is Decision.ROLLBACK, slower.reason
