"""The interval judge: one window's aggregates in, a verdict with its reasons out.

This is the judge for per-interval aggregates from a metrics provider (the
rollout flow's evidence); ``inferops.analysis.sample_judge`` judges per-request
samples sequentially. Pure functions. A verdict is never a bool: it is
``promote``, ``continue``, ``rollback`` or ``hold``, with one result per check
and a sentence a human can act on. Missing evidence never promotes and is
never scored as a failure: it holds. Error rates are judged on the lower confidence bound of the
canary's rate, so a single unlucky error in a small sample does not roll back,
while a real regression does as soon as the evidence shows it.
"""

from __future__ import annotations

import math

from scipy.stats import norm

from inferops.analysis.evidence import WindowStats
from inferops.analysis.spec import AnalysisSpec, Check
from inferops.analysis.verdict import CheckResult, Decision, Outcome, Verdict

__all__ = ["CheckResult", "Decision", "Outcome", "Verdict", "judge", "wilson_lower"]


def wilson_lower(errors: float, n: float, confidence: float) -> float:
    """One-sided lower confidence bound of a proportion (Wilson score)."""
    if n <= 0:
        return 0.0
    z = float(norm.ppf(confidence))
    p = errors / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


def _error_check(
    check: Check, canary: WindowStats, baseline: WindowStats | None, confidence: float
) -> CheckResult:
    rate = canary.error_rate
    base = baseline.error_rate if baseline else None
    limits = [x for x in (check.max,) if x is not None]
    if check.max_increase is not None and base is not None:
        limits.append(base + check.max_increase)
    if rate is None:
        return CheckResult("error_rate", Outcome.NO_DATA, None, base, None, "no canary requests")
    if not limits:
        return CheckResult(
            "error_rate", Outcome.NO_DATA, rate, None, None, "no baseline to compare"
        )
    limit = min(limits)
    lower = wilson_lower(canary.errors, canary.requests, confidence)
    if lower > limit:
        return CheckResult(
            "error_rate",
            Outcome.FAIL,
            rate,
            base,
            limit,
            f"error rate {rate:.1%} (at least {lower:.1%} at {confidence:.0%} confidence) "
            f"exceeds {limit:.1%}",
        )
    return CheckResult(
        "error_rate", Outcome.PASS, rate, base, limit, f"error rate {rate:.1%} within {limit:.1%}"
    )


def _latency_check(
    check: Check, canary: WindowStats, baseline: WindowStats | None, enough: bool
) -> CheckResult:
    name = check.metric
    # Metrics that only per-request samples carry (TTFT distributions, goodput, cost
    # ratios) are absent from window aggregates: no data, never a pass or a failure.
    value: float | None = getattr(canary, name, None)
    base: float | None = getattr(baseline, name, None) if baseline else None
    limits = [x for x in (check.max,) if x is not None]
    if check.max_ratio is not None and base is not None:
        limits.append(max(base * check.max_ratio, base + check.slack_s))
    if value is None or not enough:
        why = "no canary data" if value is None else "not enough requests yet"
        return CheckResult(name, Outcome.NO_DATA, value, base, None, why)
    if not limits:
        return CheckResult(name, Outcome.NO_DATA, value, None, None, "no baseline to compare")
    limit = min(limits)
    label = name.removesuffix("_s").replace("_", " ")
    if value > limit:
        return CheckResult(
            name, Outcome.FAIL, value, base, limit, f"{label} {value:.3f}s exceeds {limit:.3f}s"
        )
    return CheckResult(
        name, Outcome.PASS, value, base, limit, f"{label} {value:.3f}s within {limit:.3f}s"
    )


def judge(
    canary: WindowStats, baseline: WindowStats | None, spec: AnalysisSpec, final: bool
) -> Verdict:
    """Judge one analysis window of the canary against the baseline and the SLOs."""
    enough = canary.requests >= spec.min_requests
    results = tuple(
        _error_check(c, canary, baseline, spec.confidence)
        if c.metric == "error_rate"
        else _latency_check(c, canary, baseline, enough)
        for c in spec.checks
    )
    failed = [r for r in results if r.outcome is Outcome.FAIL]
    missing = [r for r in results if r.outcome is Outcome.NO_DATA]
    n = int(canary.requests)
    if canary.requests <= 0:
        decision, reason = Decision.HOLD, "no canary requests in the window: nothing to judge"
    elif failed:
        decision = Decision.ROLLBACK
        reason = "; ".join(r.detail for r in failed) + f" ({n} canary requests)"
    elif not enough:
        decision = Decision.HOLD
        reason = f"only {n} of the {spec.min_requests} canary requests needed for a verdict"
    elif missing:
        decision = Decision.HOLD
        reason = "no data for " + ", ".join(r.metric for r in missing)
    else:
        decision = Decision.PROMOTE if final else Decision.CONTINUE
        reason = "all checks passed: " + "; ".join(r.detail for r in results) + f" ({n} requests)"
    return Verdict(decision, reason, results, canary, baseline)
