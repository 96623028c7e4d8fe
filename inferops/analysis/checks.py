"""One check judged on per-request samples: its sequential tests and their evidence.

A check has up to two comparisons, each a pair of anytime-valid one-sided
tests (``inferops.analysis.sequential``): against the baseline (relative,
the allowed degradation) and against the SLO (absolute). The comparison fails
on evidence that the canary is worse than allowed, passes on evidence that it
is not worse by the regression worth detecting, and is pending otherwise. The
check fails if a comparison fails and passes when every comparison it could
make passed; without canary values (or, for a relative-only check, without a
baseline) it has no data.

**Strata.** A relative comparison may draw on several strata: the steps of a
release, each a concurrent comparison of canary and baseline under one traffic
split. Each stratum gives an ``Estimate``, the effect in the bad direction on
the comparison's scale (a log ratio, or points for rates) with its variance;
the strata combine by inverse-variance weighting, as a stratified test does,
so a step's load and traffic mix never leak into another's comparison while
the information of every step adds up. With one stratum this is the plain
two-sample test. Absolute comparisons read the canary's requests of every
stratum together: a share of bad requests beyond a bound is the same bound
whatever the step.

How each kind of metric is compared within a stratum (``bad`` = the
regression's direction):

- rates (error rate, goodput): relative, the difference of shares with
  Agresti-Caffo estimates (one pseudo-event and one pseudo-success per side,
  so that zero counts do not make the test overconfident); absolute, the
  exact beta-binomial mixture against the bound.
- whole distributions (latency, TTFT, TPOT, latency per token, output
  tokens, output tokens/s): Mann-Whitney on log values, i.e. a ratio scale,
  TTFT within bins of the requests' size where the samples carry it
  (``SIZE_ADJUSTED``),
  at the allowed shift and at the shift worth detecting; the information
  scale is read from the gap between those two statistics, so ties and
  heavy tails need no model, and the effect is the shift at which the rank
  statistic would be centred.
- quantiles (p50/p95/p99): absolute, the share of requests beyond the SLO
  against ``1 - q`` (exact); relative, exceedances of the pooled quantile.
- totals (cost per 1K requests, per 1M output tokens): log-ratios of means
  with delta-method standard errors.

Each relative comparison reports the minimum sample a fixed-sample test would
need for its regression worth detecting (``inferops.analysis.sample_size``),
for people to read; no decision waits on it, since the sequential pass test
itself demands that evidence. Absolute comparisons against a share need
none, as their exact test is valid at any sample size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inferops.analysis import sample_size as size
from inferops.analysis.samples import (
    FloatArray,
    SampleSet,
    cost_per_1k_requests,
    cost_per_1m_tokens,
    quantile,
)
from inferops.analysis.sequential import (
    TwoSided,
    binomial_two_sided,
    normal_two_sided,
)
from inferops.analysis.spec import (
    LOCATIONS,
    QUANTILES,
    RATES,
    TOTALS,
    AnalysisSpec,
    Check,
    CostModel,
)
from inferops.analysis.stats import (
    hodges_lehmann_sorted,
    mann_whitney_sorted,
    quantile_test,
    wilson_interval,
)
from inferops.analysis.verdict import CheckResult, Comparison, Outcome

_LABELS = {
    "error_rate": "error rate",
    "goodput": "goodput",
    "latency_s": "latency",
    "ttft_s": "TTFT",
    "tpot_s": "time per output token",
    "latency_per_token_s": "latency per output token",
    "output_tokens": "output tokens per answer",
    "output_tokens_per_s": "output tokens/s",
    "cost_per_1k_requests_usd": "cost per 1K requests",
    "cost_per_1m_output_tokens_usd": "cost per 1M output tokens",
}
_Z95 = 1.959963984540054
_FLOOR = 1e-9
"""Smallest spread used, so that identical costs give decisive, not undefined, statistics."""


@dataclass(frozen=True)
class Limits:
    """What every comparison of one verdict runs with: error rates, prices, description."""

    alpha: float
    """Per test: the spec's false-rollback rate split over all its tests."""
    beta: float
    cost: CostModel | None = None
    describe: bool = True
    """Compute descriptive effects (Hodges-Lehmann intervals); no decision depends on them."""


@dataclass(frozen=True)
class _Part:
    comparison: Comparison
    look: TwoSided
    detail: str


def label(metric: str) -> str:
    """A metric's human name."""
    if metric in QUANTILES:
        base, q = QUANTILES[metric]
        return f"{_LABELS[base]} p{round(q * 100)}"
    return _LABELS[metric]


def tests_in(check: Check) -> int:
    """How many comparisons a check declares (each may roll back)."""
    relative = check.allowed_ratio is not None or check.allowed_points is not None
    return int(relative) + int(check.absolute is not None)


def limits_for(spec: AnalysisSpec, describe: bool = True) -> Limits:
    """Per-test error rates: the false-rollback rate split evenly over every test."""
    tests = sum(tests_in(c) for c in spec.checks)
    return Limits(
        spec.false_rollback_rate / tests, spec.missed_regression_rate, spec.cost, describe
    )


def _pct(ratio: float) -> str:
    return f"{ratio - 1:+.1%}"


def _points(share: float) -> str:
    return f"{share * 100:+.2f} points"


def _p(p: float) -> str:
    """A p-value as people read it; underflow is not zero evidence against, just tiny."""
    return "<1e-15" if p < 1e-15 else f"{p:.2g}"


def _verdict_text(name: str, effect: str, look: TwoSided, allowed: str, worth: str) -> str:
    if look.failed:
        return (
            f"{name} {effect}, worse than the allowed {allowed} "
            f"(always-valid p {_p(look.p_fail)} <= {look.alpha:.2g})"
        )
    if look.passed:
        return f"{name} {effect}: a regression to {worth} is ruled out (p {_p(look.p_pass)})"
    return (
        f"{name} {effect}: not yet clear (p {_p(look.p_fail)} to fail at {look.alpha:.2g}, "
        f"{_p(look.p_pass)} to pass at {look.beta:.2g})"
    )


# Less than one unit of information between the limits: either little data (then the
# interval-based scale is as small, and the max changes nothing) or a pinned statistic.
_PINNED = 1.0
_MIN_SE = 1e-6  # log units: identical samples carry all the information they can
_MIN_VARIANCE = _MIN_SE**2


def _log_quantile_se(sorted_logs: FloatArray, q: float) -> float:
    """Standard error of a quantile of sorted values, from its order-statistic interval."""
    n = len(sorted_logs)
    half = _Z95 * math.sqrt(n * q * (1 - q))
    lo = sorted_logs[max(0, math.floor(n * q - half))]
    hi = sorted_logs[min(n - 1, math.ceil(n * q + half))]
    return float(hi - lo) / (2 * _Z95)


def _logs(values: FloatArray, sign: float) -> FloatArray:
    """Sorted log values, oriented so that the regression is an increase."""
    logs = np.log(np.maximum(values, 1e-9))
    return np.sort(sign * logs)


def _robust_sd(values: FloatArray) -> float:
    """Standard deviation read from the interquartile range (heavy tails barely move it)."""
    if len(values) < 4:
        return float(np.std(values)) if len(values) > 1 else 0.0
    ordered = np.sort(values)
    sd = ((quantile(ordered, 0.75) or 0.0) - (quantile(ordered, 0.25) or 0.0)) / 1.349
    return sd if sd > 0 else float(np.std(values))


def _ratio_of_sides(n_canary: int, n_baseline: int) -> float:
    return n_baseline / n_canary if n_canary else 1.0


# --- shares of bad requests ---------------------------------------------------------------


def _bad_events(check: Check, s: SampleSet) -> tuple[int, int]:
    if check.metric == "error_rate":
        return s.errors, len(s)
    bad = s.bad_for_goodput(check.within or {})
    return int(bad.sum()), len(bad)


def _share_vs_slo(
    name: str, what: str, events: int, n: int, bound: float, worth: float, limits: Limits
) -> _Part:
    """A share of bad requests against an absolute bound on that share (exact test)."""
    look = binomial_two_sided(events, n, bound, worth, limits.alpha, limits.beta)
    share = events / n
    lo, hi = wilson_interval(events, n, 0.95)
    comparison = Comparison(
        against="slo",
        method="beta-binomial mixture SPRT (exact)",
        fails_if=f"share of bad requests above {bound:.3g}",
        passes_if=f"share of bad requests below {bound:.3g}",
        estimate=share,
        low=lo,
        high=hi,
        z_fail=None,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=None,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=n,
        baseline_n=None,
        # No minimum sample: the exact pass test itself demands evidence that the share
        # is below the bound, at any sample size.
        required_n=None,
    )
    if look.failed:
        text = (
            f"{name}: {events} of {n} requests ({share:.2%}) {what}, more than the "
            f"{bound:.2%} allowed (always-valid p {_p(look.p_fail)} <= {look.alpha:.2g})"
        )
    elif look.passed:
        text = f"{name}: {share:.2%} of {n} requests {what}, within the {bound:.2%} allowed"
    else:
        text = (
            f"{name}: {share:.2%} of {n} requests {what} against the {bound:.2%} allowed: "
            "not yet clear"
        )
    return _Part(comparison, look, text)


# --- totals -------------------------------------------------------------------------------


def _log_total(
    check: Check, s: SampleSet, cost: CostModel | None
) -> tuple[float, float, float, int] | None:
    """(log of the total, its standard error, per-request CV, requests) or None."""
    costs = s.costs(cost)
    if check.metric == "cost_per_1k_requests_usd":
        known = costs[np.isfinite(costs)]
        n = len(known)
        figure = cost_per_1k_requests(costs)
        if figure is None or figure <= 0 or n < 2:
            return None
        cv = float(np.std(known, ddof=1) / np.mean(known))
        return math.log(figure), max(cv, _FLOOR) / math.sqrt(n), cv, n
    tokens = s.output_tokens
    both = np.isfinite(costs) & np.isfinite(tokens)
    n = int(both.sum())
    figure = cost_per_1m_tokens(costs, tokens)
    if figure is None or figure <= 0 or n < 2:
        return None
    cs, ts = costs[both], tokens[both]
    # Delta method for a ratio of sums: the spread of each request's share of cost minus
    # its share of tokens.
    cv = float(np.std(cs / cs.mean() - ts / ts.mean(), ddof=1))
    return math.log(figure), max(cv, _FLOOR) / math.sqrt(n), cv, n


# --- relative evidence, one stratum at a time ---------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One stratum's relative evidence: the effect in the bad direction and its variance.

    The scale is the comparison's: a log ratio (distributions, quantiles, totals) or
    points (rates). Positive effects are regressions.
    """

    effect: float
    variance: float
    canary_n: int
    baseline_n: int


def bounds(check: Check) -> tuple[float, float]:
    """(allowed degradation, regression worth detecting beyond it) on the comparison's scale."""
    if check.metric in RATES:
        return check.allowed_points or 0.0, check.worth
    return math.log(check.allowed_ratio or 1.0), math.log(1 + check.worth)


def is_relative(check: Check) -> bool:
    """Whether the check compares the canary with a baseline."""
    return check.allowed_ratio is not None or check.allowed_points is not None


MIN_RELATIVE_N = 100
"""Fewest requests a side (over the strata) before a relative comparison may decide.

The relative tests are normal approximations read at an alpha of about 0.001, deep in the
tail, where skewed per-request costs and latencies at a few dozen requests put more mass
than the normal curve does: without this floor, unchanged canaries at 10 req/s failed a
relative check at their 10% step (about 50 requests against 450) in 5 of 2,000 simulated
releases, a quarter of the release's whole false-rollback budget."""


def _from_z(
    z_fail: float, z_worth: float, theta: float, tau: float, n_c: int, n_b: int
) -> Estimate:
    """The effect and variance behind rank statistics at the allowed and the worst shift.

    The statistic moves by ``tau / se`` between the two shifts: that gap is the scale,
    without assuming a distribution; the effect is where the statistic would be centred.
    """
    se = tau / abs(z_fail - z_worth)
    return Estimate(theta + z_fail * se, se * se, n_c, n_b)


SIZE_ADJUSTED = frozenset({"ttft_s"})
"""Metrics compared within bins of the requests' size (``prompt_chars``): a prompt's
length drives its prefill time, so comparing requests of like size with each other takes
that spread out of the comparison (about 2.8 times less information needed for TTFT on
LLM-shaped traffic), while a version that makes every request slower, prompts included,
still shows in full."""
_SIZE_BINS = 8
_PER_SIZE_BIN = 25
"""Fewest requests (both tracks) per size bin; fewer bins below 2 x this, none below."""


def _size_adjusted(
    check: Check, canary: SampleSet, baseline: SampleSet
) -> tuple[FloatArray, FloatArray] | None:
    """Both tracks' sorted log values less the median of their size bin, or None.

    The bins are quantiles of the pooled sizes and the medians pooled over both tracks,
    so the two are treated alike: without a regression their residuals are exchangeable,
    as the rank test needs; with one, the canary's residuals shift by it.
    """
    mine, theirs = canary.per_request_sized(check.metric), baseline.per_request_sized(check.metric)
    if mine is None or theirs is None:
        return None
    sign = 1.0 if check.bad == "increase" else -1.0
    logs = sign * np.log(np.maximum(np.concatenate([mine[0], theirs[0]]), 1e-9))
    sizes = np.log(np.concatenate([mine[1], theirs[1]]))
    bins = min(_SIZE_BINS, len(logs) // _PER_SIZE_BIN)
    if bins < 2:
        return None
    cuts = np.unique(np.quantile(sizes, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(cuts, sizes, side="right")
    centres = np.zeros(len(cuts) + 1)
    for k in np.unique(which):
        centres[k] = np.median(logs[which == k])
    residuals = logs - centres[which]
    n = len(mine[0])
    return np.sort(residuals[:n]), np.sort(residuals[n:])


def _location_estimate(check: Check, c: FloatArray, b: FloatArray) -> Estimate:
    sign = 1.0 if check.bad == "increase" else -1.0
    return _shift_estimate(check, _logs(c, sign), _logs(b, sign))


def _shift_estimate(check: Check, x: FloatArray, y: FloatArray) -> Estimate:
    """The shift between sorted log values (oriented so that a regression increases them)."""
    theta, tau = bounds(check)
    z_fail = mann_whitney_sorted(x, y, theta, continuity=False).z
    z_worth = mann_whitney_sorted(x, y, theta + tau, continuity=False).z
    if (z_fail - z_worth) ** 2 >= _PINNED:
        return _from_z(z_fail, z_worth, theta, tau, len(x), len(y))
    # Both shifts lie (nearly) beyond every observed difference (the canary is far better,
    # or far worse, than both limits): the rank statistic is pinned at its extreme and
    # hardly moves between them. The Hodges-Lehmann shift and its interval still measure it.
    hl = hodges_lehmann_sorted(x, y, 0.95)
    se = max((hl.high - hl.low) / (2 * _Z95), _MIN_SE)
    return Estimate(hl.estimate, se * se, len(x), len(y))


def _quantile_estimate(check: Check, c: FloatArray, b: FloatArray, q: float) -> Estimate:
    sign = 1.0 if check.bad == "increase" else -1.0
    theta, tau = bounds(check)
    x, y = _logs(c, sign), _logs(b, sign)
    at = q if sign > 0 else 1 - q
    fail, _, _ = quantile_test(x, y, at, theta)
    worth, _, _ = quantile_test(x, y, at, theta + tau)
    if (fail.z - worth.z) ** 2 >= _PINNED:
        return _from_z(fail.z, worth.z, theta, tau, len(c), len(b))
    # Pinned, as for distributions: the quantiles' own order statistics give the scale.
    se = max(math.hypot(_log_quantile_se(x, at), _log_quantile_se(y, at)), _MIN_SE)
    effect = float(quantile(x, at) or 0.0) - float(quantile(y, at) or 0.0)
    return Estimate(effect, se * se, len(c), len(b))


def _rate_estimate(check: Check, canary: SampleSet, baseline: SampleSet) -> Estimate | None:
    x_c, n_c = _bad_events(check, canary)
    x_b, n_b = _bad_events(check, baseline)
    if not n_c or not n_b:
        return None
    pc, pb = (x_c + 1) / (n_c + 2), (x_b + 1) / (n_b + 2)
    variance = pc * (1 - pc) / (n_c + 2) + pb * (1 - pb) / (n_b + 2)
    return Estimate(pc - pb, variance, n_c, n_b)


def _total_estimate(
    check: Check, canary: SampleSet, baseline: SampleSet, cost: CostModel | None
) -> Estimate | None:
    mine, theirs = _log_total(check, canary, cost), _log_total(check, baseline, cost)
    if mine is None or theirs is None:
        return None
    sign = 1.0 if check.bad == "increase" else -1.0
    return Estimate(sign * (mine[0] - theirs[0]), mine[1] ** 2 + theirs[1] ** 2, mine[3], theirs[3])


def relative_estimate(
    check: Check, canary: SampleSet, baseline: SampleSet | None, cost: CostModel | None
) -> Estimate | None:
    """The check's relative evidence in one stratum, or None where it has none."""
    if not is_relative(check) or baseline is None or not len(baseline) or not len(canary):
        return None
    if check.metric in RATES:
        return _rate_estimate(check, canary, baseline)
    if check.metric in TOTALS:
        return _total_estimate(check, canary, baseline, cost)
    if check.metric in QUANTILES:
        base, q = QUANTILES[check.metric]
        c, b = canary.per_request(base), baseline.per_request(base)
        return _quantile_estimate(check, c, b, q) if len(c) and len(b) else None
    if check.metric in SIZE_ADJUSTED:
        adjusted = _size_adjusted(check, canary, baseline)
        if adjusted is not None:
            return _shift_estimate(check, *adjusted)
    c, b = canary.per_request(check.metric), baseline.per_request(check.metric)
    return _location_estimate(check, c, b) if len(c) and len(b) else None


def combine(estimates: Sequence[Estimate]) -> Estimate | None:
    """The strata's estimates as one, weighted by their information (inverse variance)."""
    if not estimates:
        return None
    weights = [1 / max(e.variance, _MIN_VARIANCE) for e in estimates]
    total = sum(weights)
    effect = sum(w * e.effect for w, e in zip(weights, estimates, strict=True)) / total
    return Estimate(
        effect,
        1 / total,
        sum(e.canary_n for e in estimates),
        sum(e.baseline_n for e in estimates),
    )


def _required(check: Check, canary: SampleSet, baseline: SampleSet, limits: Limits) -> int | None:
    """Canary requests a fixed-sample test would need (for people; no decision waits on it)."""
    theta, tau = bounds(check)
    ratio = _ratio_of_sides(len(canary), len(baseline))
    try:
        if check.metric in RATES:
            x_b, n_b = _bad_events(check, baseline)
            base = min((x_b + 1) / (n_b + 2) + theta, 0.999)
            return size.proportions_sample_size(
                base, min(base + tau, 1.0), limits.alpha, limits.beta, ratio
            )
        if check.metric in TOTALS:
            theirs = _log_total(check, baseline, limits.cost)
            if theirs is None:
                return None
            return size.location_sample_size(
                theirs[2], tau, limits.alpha, limits.beta, ratio, rank=False
            )
        if check.metric in QUANTILES:
            return None  # a quantile's need follows the tail; the sequential test reads it
        logs = np.log(np.maximum(baseline.per_request(check.metric), 1e-9))
        return size.location_sample_size(_robust_sd(logs), tau, limits.alpha, limits.beta, ratio)
    except ValueError:
        return None


def _relative_part(
    check: Check,
    estimate: Estimate,
    canary: SampleSet,
    baseline: SampleSet | None,
    limits: Limits,
) -> _Part:
    """The combined relative comparison: its look, its figures and its sentence."""
    theta, tau = bounds(check)
    se = math.sqrt(max(estimate.variance, _MIN_VARIANCE))
    z_fail = (estimate.effect - theta) / se
    z_pass = (theta + tau - estimate.effect) / se
    look = normal_two_sided(z_fail, z_pass, (tau / se) ** 2, limits.alpha, limits.beta)
    few = min(estimate.canary_n, estimate.baseline_n)
    if few < MIN_RELATIVE_N:
        # Too few requests for the normal approximation in the far tail where the test
        # decides: no verdict either way yet (gross failures show in the absolute SLOs,
        # whose exact tests hold at any sample).
        look = TwoSided(1.0, 1.0, limits.alpha, limits.beta)
    low, high = estimate.effect - _Z95 * se, estimate.effect + _Z95 * se
    name = label(check.metric)
    sign = 1.0 if check.bad == "increase" else -1.0
    required = (
        _required(check, canary, baseline, limits)
        if limits.describe and baseline is not None and len(baseline)
        else None
    )
    if check.metric in RATES:
        shown = (sign * estimate.effect, sign * low, sign * high)
        ci = (min(shown[1], shown[2]), max(shown[1], shown[2]))
        effect = f"{_points(shown[0])} vs baseline (95% CI {_points(ci[0])} to {_points(ci[1])})"
        fails_if = f"bad requests above baseline by more than {theta * 100:.2f} points"
        passes_if = f"bad requests above baseline by less than {(theta + tau) * 100:.2f} points"
        allowed, worst = _points(sign * theta), _points(sign * (theta + tau))
        estimate_shown, low_shown, high_shown = shown[0], ci[0], ci[1]
    else:
        ratio = math.exp(sign * estimate.effect)
        ends = sorted((math.exp(sign * low), math.exp(sign * high)))
        effect = f"{_pct(ratio)} vs baseline (95% CI {_pct(ends[0])} to {_pct(ends[1])})"
        what = f"p{round(QUANTILES[check.metric][1] * 100)}" if check.metric in QUANTILES else ""
        side = "above" if sign > 0 else "below"
        other = "below" if sign > 0 else "above"
        allowed_x = math.exp(sign * theta)
        worst_x = math.exp(sign * (theta + tau))
        fails_if = f"canary {what + ' ' if what else ''}{side} {allowed_x:.3g}x baseline"
        passes_if = f"canary {what + ' ' if what else ''}{other} {worst_x:.3g}x baseline"
        allowed, worst = _pct(allowed_x), _pct(worst_x)
        estimate_shown, low_shown, high_shown = ratio, ends[0], ends[1]
    comparison = Comparison(
        against="baseline",
        method=_METHODS[_kind(check)],
        fails_if=fails_if,
        passes_if=passes_if,
        estimate=estimate_shown,
        low=low_shown,
        high=high_shown,
        z_fail=z_fail,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=z_pass,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=estimate.canary_n,
        baseline_n=estimate.baseline_n,
        required_n=required,
    )
    detail = _verdict_text(name, effect, look, allowed, worst)
    if few < MIN_RELATIVE_N:
        detail = (
            f"{name} {effect}: not compared before {MIN_RELATIVE_N} requests a side "
            f"({estimate.canary_n} canary, {estimate.baseline_n} baseline)"
        )
    return _Part(comparison, look, detail)


_METHODS = {
    "rate": "difference of shares, Agresti-Caffo, stratified by step (mixture SPRT)",
    "location": "Mann-Whitney on log values (TTFT within prompt-size bins), stratified by step "
    "(mixture SPRT)",
    "quantile": "exceedances of the pooled quantile, stratified by step (mixture SPRT)",
    "total": "log-ratio of totals, delta method, stratified by step (mixture SPRT)",
}


def _kind(check: Check) -> str:
    if check.metric in RATES:
        return "rate"
    if check.metric in QUANTILES:
        return "quantile"
    if check.metric in TOTALS:
        return "total"
    return "location"


# --- absolute evidence: the canary's requests of every stratum against the SLO ------------


def _rate_vs_slo(check: Check, canary: SampleSet, limits: Limits) -> list[_Part]:
    x_c, n_c = _bad_events(check, canary)
    if check.absolute is None or n_c == 0:
        return []
    bound = check.absolute if check.bad == "increase" else 1 - check.absolute
    if not 0 < bound < 1:
        return []
    what = "failed" if check.metric == "error_rate" else "missed the goodput limits"
    return [_share_vs_slo(label(check.metric), what, x_c, n_c, bound, check.worth, limits)]


def _quantile_vs_slo(check: Check, canary: SampleSet, limits: Limits) -> list[_Part]:
    base, q = QUANTILES[check.metric]
    c = canary.per_request(base)
    if check.absolute is None or not len(c):
        return []
    up = check.bad == "increase"
    over = int(np.count_nonzero(c > check.absolute if up else c < check.absolute))
    share = 1 - q if up else q
    return [
        _share_vs_slo(
            f"{label(check.metric)} SLO",
            f"{'over' if up else 'under'} {check.absolute:g} s",
            over,
            len(c),
            share,
            share,
            limits,
        )
    ]


def _total_vs_slo(check: Check, canary: SampleSet, limits: Limits) -> list[_Part]:
    mine = _log_total(check, canary, limits.cost)
    if check.absolute is None or mine is None:
        return []
    log_c, se_c, _, n_c = mine
    sign = 1.0 if check.bad == "increase" else -1.0
    tau = math.log(1 + check.worth)
    gap = sign * (log_c - math.log(check.absolute))
    look = normal_two_sided(gap / se_c, -gap / se_c, (tau / se_c) ** 2, limits.alpha, limits.beta)
    figure = math.exp(log_c)
    comparison = Comparison(
        against="slo",
        method="log of the total, delta method (mixture SPRT)",
        fails_if=f"{'above' if sign > 0 else 'below'} {check.absolute:g}",
        passes_if=f"{'below' if sign > 0 else 'above'} {check.absolute:g}",
        estimate=figure,
        low=math.exp(log_c - _Z95 * se_c),
        high=math.exp(log_c + _Z95 * se_c),
        z_fail=gap / se_c,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=-gap / se_c,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=n_c,
        baseline_n=None,
        required_n=None,
    )
    name = label(check.metric)
    text = _verdict_text(
        f"{name} vs SLO",
        f"{figure:.4g} against {check.absolute:g}",
        look,
        f"{check.absolute:g}",
        f"{check.absolute:g}",
    )
    return [_Part(comparison, look, text)]


def _absolute_parts(check: Check, canary: SampleSet, limits: Limits) -> list[_Part]:
    if check.metric in RATES:
        return _rate_vs_slo(check, canary, limits)
    if check.metric in QUANTILES:
        return _quantile_vs_slo(check, canary, limits)
    if check.metric in TOTALS:
        return _total_vs_slo(check, canary, limits)
    return []  # whole distributions compare with the baseline only


# --- one check ----------------------------------------------------------------------------


def figure(check: Check, s: SampleSet | None, cost: CostModel | None) -> float | None:
    """The track's point figure for the check's metric (what a dashboard shows)."""
    if s is None or not len(s):
        return None
    if check.metric == "error_rate":
        return s.errors / len(s)
    if check.metric == "goodput":
        bad = s.bad_for_goodput(check.within or {})
        return 1 - float(bad.mean()) if len(bad) else None
    if check.metric in QUANTILES:
        base, q = QUANTILES[check.metric]
        return quantile(np.sort(s.per_request(base)), q)
    if check.metric in LOCATIONS:
        return quantile(np.sort(s.per_request(check.metric)), 0.5)
    costs = s.costs(cost)
    if check.metric == "cost_per_1k_requests_usd":
        return cost_per_1k_requests(costs)
    return cost_per_1m_tokens(costs, s.output_tokens)


def evaluate(
    check: Check,
    canary: SampleSet,
    baseline: SampleSet | None,
    limits: Limits,
    strata: Sequence[Estimate] | None = None,
) -> CheckResult:
    """Judge one check at this look: pass, fail, pending or no data, with its evidence.

    ``canary`` holds the canary's requests of every stratum (absolute comparisons and
    figures read them), ``baseline`` the baseline's (figures only). ``strata`` are the
    relative estimates of each stratum; None means one stratum, these two sets.
    """
    parts: list[_Part] = []
    combined: Estimate | None = None
    if len(canary):
        parts += _absolute_parts(check, canary, limits)
        if strata is None:
            one = relative_estimate(check, canary, baseline, limits.cost)
            strata = [one] if one is not None else []
        combined = combine(strata)
        if combined is not None:
            parts.append(_relative_part(check, combined, canary, baseline, limits))
    mine, theirs = figure(check, canary, limits.cost), figure(check, baseline, limits.cost)
    limit = check.absolute
    if limit is None:
        limit = check.allowed_ratio if check.allowed_ratio is not None else check.allowed_points
    if not parts:
        if not len(canary):
            why = "no canary requests"
        elif is_relative(check) and (baseline is None or not len(baseline)):
            why = "no baseline to compare"
        else:
            why = f"no {label(check.metric)} in the samples"
        return CheckResult(
            check.metric,
            Outcome.NO_DATA,
            mine,
            theirs,
            limit,
            why,
            name=check.label,
            critical=check.critical,
        )
    details = [p.detail for p in parts]
    if any(p.look.failed for p in parts):
        outcome = Outcome.FAIL
    elif all(p.look.passed for p in parts) and not (is_relative(check) and combined is None):
        outcome = Outcome.PASS
    else:
        # A relative check is never passed on its absolute comparison alone.
        outcome = Outcome.PENDING
        if is_relative(check) and combined is None:
            details.append(f"{label(check.metric)}: no baseline to compare with yet")
    return CheckResult(
        check.metric,
        outcome,
        mine,
        theirs,
        limit,
        "; ".join(details),
        name=check.label,
        critical=check.critical,
        tests=tuple(p.comparison for p in parts),
    )
