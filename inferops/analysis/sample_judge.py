"""The sequential canary judge: per-request samples in, a verdict with its evidence out.

Call it at every look with all the samples of the step so far (warm-up left
out, see ``inferops.analysis.planning``) and the previous look's verdict. It
stops a canary at the first clear answer while keeping the chance of rolling
back an unchanged canary at most ``false_rollback_rate`` over all looks of
the step (anytime-valid tests, split evenly over the checks' comparisons).

Rules, in order:

1. No canary requests: ``hold``, with the reason; the rollout may send
   synthetic load. No data is never scored as a pass or a failure.
2. A critical check that fails rolls back at once, whatever the sample; a
   non-critical one after ``failure_limit`` consecutive failing looks.
3. Fewer canary requests than ``min_requests``: ``continue``, never
   ``promote``. (The minimum samples a fixed-sample test would need are shown,
   not waited on: each pass test demands its own evidence, at any sample size,
   and a tail that widens after one spike must not block a verdict.)
4. A check without data (e.g. no TTFT in non-streaming samples, or no
   baseline for a relative check): ``hold``, naming it.
5. Any check pending or failing below its limit: ``continue``.
6. Every check passed: ``promote`` (to the next step, or to stable after the
   last).

With ``final=True`` (the step's time is up) rules 3 and 5 give ``hold``
instead of ``continue``: inconclusive evidence needs a human or more traffic,
and never promotes.
"""

from __future__ import annotations

from dataclasses import replace

from inferops.analysis.checks import Limits, evaluate, label, limits_for, tests_in
from inferops.analysis.sample_size import seconds_to_collect
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import AnalysisSpec
from inferops.analysis.verdict import CheckResult, Decision, Evidence, Outcome, Verdict

METHOD = (
    "anytime-valid mixture SPRT per comparison (Mann-Whitney on log values for "
    "distributions, differences of shares for rates, exact beta-binomial against SLO bounds), "
    "false-rollback rate split evenly over the comparisons"
)


def _streaks(results: list[CheckResult], previous: Verdict | None) -> list[CheckResult]:
    before = previous.streaks if previous else {}
    return [
        replace(r, streak=before.get(r.label, 0) + 1 if r.outcome is Outcome.FAIL else 0)
        for r in results
    ]


def _required(spec: AnalysisSpec, results: list[CheckResult]) -> int:
    needs = [t.required_n for r in results for t in r.tests if t.required_n is not None]
    return max([spec.min_requests, *needs])


def _evidence(
    spec: AnalysisSpec,
    limits: Limits,
    canary: SampleSet,
    baseline: SampleSet | None,
    required: int,
) -> Evidence:
    rate = canary.rate_rps()
    return Evidence(
        canary_requests=len(canary),
        baseline_requests=len(baseline) if baseline is not None else 0,
        canary_window=canary.window(),
        baseline_window=baseline.window() if baseline is not None else None,
        canary_rps=rate,
        required_requests=required,
        seconds_to_required=seconds_to_collect(required - len(canary), rate),
        false_rollback_rate=spec.false_rollback_rate,
        alpha_per_test=limits.alpha,
        missed_regression_rate=spec.missed_regression_rate,
        tests=sum(tests_in(c) for c in spec.checks),
        method=METHOD,
        canary_summary=canary.summary(spec.cost) if limits.describe else {},
        baseline_summary=(
            baseline.summary(spec.cost) if baseline is not None and limits.describe else {}
        ),
    )


def _names(results: list[CheckResult]) -> str:
    return ", ".join(label(r.metric) if r.name in (None, r.metric) else r.label for r in results)


def _decide(
    spec: AnalysisSpec,
    results: list[CheckResult],
    n: int,
    required: int,
    evidence: Evidence,
    final: bool,
) -> tuple[Decision, str]:
    wait = Decision.HOLD if final else Decision.CONTINUE
    failing = [r for r in results if r.outcome is Outcome.FAIL]
    fatal = [r for r in failing if r.critical or r.streak >= _limit(spec, r)]
    if fatal:
        more = f" (and {len(fatal) - 1} more failing)" if len(fatal) > 1 else ""
        return Decision.ROLLBACK, f"{fatal[0].detail}{more}, after {n} canary requests"
    if n < required:
        rate = evidence.canary_rps
        eta = seconds_to_collect(required - n, rate)
        pace = (
            f", about {eta / 60:.1f} more minutes at {rate:.2g} req/s"
            if eta is not None and rate
            else ""
        )
        head = "inconclusive: only" if final else "gathering evidence:"
        return wait, f"{head} {n} of the {required} canary requests a verdict needs{pace}"
    missing = [r for r in results if r.outcome is Outcome.NO_DATA]
    if missing:
        return Decision.HOLD, "no data for " + "; ".join(
            f"{label(r.metric)} ({r.detail})" for r in missing
        )
    if failing:
        r = failing[0]
        return wait, (
            f"{r.detail}; non-critical, failing {r.streak} of {_limit(spec, r)} "
            "consecutive looks before a rollback"
        )
    pending = [r for r in results if r.outcome is Outcome.PENDING]
    if pending:
        head = "inconclusive after" if final else "not yet clear after"
        return wait, f"{_names(pending)} {head} {n} canary requests: {pending[0].detail}"
    return Decision.PROMOTE, (
        f"every check rules out a regression worth detecting after {n} canary requests: "
        + "; ".join(r.detail for r in results)
    )


def _limit(spec: AnalysisSpec, result: CheckResult) -> int:
    for check in spec.checks:
        if check.label == result.label:
            return check.failure_limit or spec.failure_limit
    return spec.failure_limit


def judge_samples(
    canary: SampleSet,
    baseline: SampleSet | None,
    spec: AnalysisSpec,
    *,
    final: bool = False,
    previous: Verdict | None = None,
    describe: bool = True,
) -> Verdict:
    """Judge the canary's samples so far against the baseline's and the SLOs.

    ``describe=False`` leaves out the descriptive evidence no decision depends on
    (effect intervals, track summaries): for simulations that need only decisions.
    """
    limits = limits_for(spec, describe)
    base = baseline if baseline is not None and len(baseline) else None
    results = _streaks([evaluate(c, canary, base, limits) for c in spec.checks], previous)
    n = len(canary)
    required = _required(spec, results)
    evidence = _evidence(spec, limits, canary, base, required)
    if n == 0:
        decision, reason = (
            Decision.HOLD,
            "no canary requests to judge: send traffic (synthetic load if need be) to the canary",
        )
    else:
        decision, reason = _decide(spec, results, n, spec.min_requests, evidence, final)
    return Verdict(
        decision,
        reason,
        tuple(results),
        canary.window_stats(),
        base.window_stats() if base is not None else None,
        evidence,
        {r.label: r.streak for r in results},
    )
