"""One check judged on per-request samples: its sequential tests and their evidence.

A check has up to two comparisons, each a pair of anytime-valid one-sided
tests (``inferops.analysis.sequential``): against the baseline (relative,
the allowed degradation) and against the SLO (absolute). The comparison fails
on evidence that the canary is worse than allowed, passes on evidence that it
is not worse by the regression worth detecting, and is pending otherwise. The
check fails if a comparison fails and passes when every comparison it could
make passed; without canary values (or, for a relative-only check, without a
baseline) it has no data.

How each kind of metric is compared (``bad`` = the regression's direction):

- rates (error rate, goodput): relative, the difference of shares with
  Agresti-Caffo estimates (one pseudo-event and one pseudo-success per side,
  so that zero counts do not make the test overconfident); absolute, the
  exact beta-binomial mixture against the bound.
- whole distributions (latency, TTFT, TPOT, latency per token, output
  tokens, output tokens/s): Mann-Whitney on log values, i.e. a ratio scale,
  at the allowed shift and at the shift worth detecting; the information
  scale is read from the gap between those two statistics, so ties and
  heavy tails need no model. The Hodges-Lehmann shift gives the effect as a
  ratio with its 95% interval.
- quantiles (p50/p95/p99): absolute, the share of requests beyond the SLO
  against ``1 - q`` (exact); relative, exceedances of the pooled quantile.

Each relative comparison reports the minimum sample of its regression worth
detecting (``inferops.analysis.sample_size``); absolute comparisons against
a share need none, as their exact test is valid at any sample size.
- totals (cost per 1K requests, per 1M output tokens): log-ratios of means
  with delta-method standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    two_proportions,
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
_Z95 = 1.959963984540054


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


# --- whole distributions ------------------------------------------------------------------


def _location(check: Check, c: FloatArray, b: FloatArray, limits: Limits) -> _Part:
    sign = 1.0 if check.bad == "increase" else -1.0
    allowed = check.allowed_ratio or 1.0
    theta_fail = math.log(allowed)
    tau = math.log(1 + check.worth)
    x, y = _logs(c, sign), _logs(b, sign)
    z_fail = mann_whitney_sorted(x, y, theta_fail, continuity=False).z
    z_worth = mann_whitney_sorted(x, y, theta_fail + tau, continuity=False).z
    # The statistic moves by tau / se between the two shifts: that gap is the information
    # scale (nu = (tau / se)^2) without assuming a distribution.
    nu = (z_fail - z_worth) ** 2
    if nu < _PINNED:
        # Both shifts lie (nearly) beyond every observed difference (the canary is far
        # better, or far worse, than both limits): the rank statistic is pinned at its
        # extreme and hardly moves between them, which says nothing about the scale. The
        # Hodges-Lehmann interval of the shift still measures it.
        hl = hodges_lehmann_sorted(x, y, 0.95)
        nu = max(nu, (tau / max((hl.high - hl.low) / (2 * _Z95), _MIN_SE)) ** 2)
    look = normal_two_sided(z_fail, -z_worth, nu, limits.alpha, limits.beta)
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    effect = f"undescribed (rank statistic {z_fail:+.2f} at the allowed ratio)"
    if limits.describe:
        shift = hodges_lehmann_sorted(
            np.sort(np.log(np.maximum(c, 1e-9))), np.sort(np.log(np.maximum(b, 1e-9))), 0.95
        )
        ratio, low, high = math.exp(shift.estimate), math.exp(shift.low), math.exp(shift.high)
        effect = f"{_pct(ratio)} vs baseline (95% CI {_pct(low)} to {_pct(high)})"
    required = size.location_sample_size(
        _robust_sd(y), tau, limits.alpha, limits.beta, _ratio_of_sides(len(c), len(b))
    )
    bound = allowed * (1 + check.worth) if sign > 0 else 1 / (allowed * (1 + check.worth))
    allowed_side = allowed if sign > 0 else 1 / allowed
    comparison = Comparison(
        against="baseline",
        method="Mann-Whitney on log values (mixture SPRT); Hodges-Lehmann ratio",
        fails_if=f"canary {'above' if sign > 0 else 'below'} {allowed_side:.3g}x baseline",
        passes_if=f"canary {'below' if sign > 0 else 'above'} {bound:.3g}x baseline",
        estimate=ratio,
        low=low,
        high=high,
        z_fail=z_fail,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=-z_worth,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=len(c),
        baseline_n=len(b),
        required_n=required,
    )
    text = _verdict_text(label(check.metric), effect, look, _pct(allowed_side), _pct(bound))
    return _Part(comparison, look, text)


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


def _rate(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> list[_Part]:
    parts: list[_Part] = []
    name = label(check.metric)
    x_c, n_c = _bad_events(check, canary)
    if n_c == 0:
        return parts
    if check.absolute is not None:
        bound = check.absolute if check.bad == "increase" else 1 - check.absolute
        if 0 < bound < 1:
            what = "failed" if check.metric == "error_rate" else "missed the goodput limits"
            parts.append(_share_vs_slo(name, what, x_c, n_c, bound, check.worth, limits))
    allowed = check.allowed_points
    if allowed is not None and baseline is not None:
        x_b, n_b = _bad_events(check, baseline)
        if n_b:
            parts.append(_share_vs_baseline(check, name, x_c, n_c, x_b, n_b, allowed, limits))
    return parts


def _share_vs_baseline(
    check: Check,
    name: str,
    x_c: int,
    n_c: int,
    x_b: int,
    n_b: int,
    allowed: float,
    limits: Limits,
) -> _Part:
    worth = check.worth
    pc, pb = (x_c + 1) / (n_c + 2), (x_b + 1) / (n_b + 2)
    se = math.sqrt(pc * (1 - pc) / (n_c + 2) + pb * (1 - pb) / (n_b + 2))
    d = pc - pb
    look = normal_two_sided(
        (d - allowed) / se,
        (allowed + worth - d) / se,
        (worth / se) ** 2,
        limits.alpha,
        limits.beta,
    )
    raw = two_proportions(x_c, n_c, x_b, n_b)
    base = min(pb + allowed, 0.999)
    required = size.proportions_sample_size(
        base, min(base + worth, 1.0), limits.alpha, limits.beta, n_b / n_c
    )
    # Goodput counts bad requests here; a rise in bad requests is goodput falling.
    sign = 1 if check.bad == "increase" else -1
    comparison = Comparison(
        against="baseline",
        method="difference of shares, Agresti-Caffo (mixture SPRT); Newcombe interval",
        fails_if=f"bad requests above baseline by more than {allowed * 100:.2f} points",
        passes_if=f"bad requests above baseline by less than {(allowed + worth) * 100:.2f} points",
        estimate=sign * raw.difference,
        low=raw.low if sign > 0 else -raw.high,
        high=raw.high if sign > 0 else -raw.low,
        z_fail=(d - allowed) / se,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=(allowed + worth - d) / se,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=n_c,
        baseline_n=n_b,
        required_n=required,
    )
    share_c, share_b = x_c / n_c, x_b / n_b
    shown_c, shown_b = (share_c, share_b) if sign > 0 else (1 - share_c, 1 - share_b)
    effect = (
        f"{shown_c:.2%} vs baseline {shown_b:.2%} ({_points(comparison.estimate or 0.0)}, "
        f"95% CI {_points(comparison.low or 0.0)} to {_points(comparison.high or 0.0)})"
    )
    text = _verdict_text(
        name, effect, look, _points(sign * allowed), _points(sign * (allowed + worth))
    )
    return _Part(comparison, look, text)


# --- quantiles ----------------------------------------------------------------------------


def _quantile(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> list[_Part]:
    base, q = QUANTILES[check.metric]
    name = label(check.metric)
    c = canary.per_request(base)
    parts: list[_Part] = []
    if not len(c):
        return parts
    up = check.bad == "increase"
    if check.absolute is not None:
        over = int(np.count_nonzero(c > check.absolute if up else c < check.absolute))
        share = 1 - q if up else q
        parts.append(
            _share_vs_slo(
                f"{name} SLO",
                f"{'over' if up else 'under'} {check.absolute:g} s",
                over,
                len(c),
                share,
                share,
                limits,
            )
        )
    if check.allowed_ratio is not None and baseline is not None:
        b = baseline.per_request(base)
        if len(b):
            parts.append(_quantile_vs_baseline(check, name, c, b, q, limits))
    return parts


def _quantile_vs_baseline(
    check: Check, name: str, c: FloatArray, b: FloatArray, q: float, limits: Limits
) -> _Part:
    sign = 1.0 if check.bad == "increase" else -1.0
    allowed = check.allowed_ratio or 1.0
    tau = math.log(1 + check.worth)
    x, y = _logs(c, sign), _logs(b, sign)
    at = q if sign > 0 else 1 - q
    fail, _, _ = quantile_test(x, y, at, math.log(allowed))
    worth, _, _ = quantile_test(x, y, at, math.log(allowed) + tau)
    nu = (fail.z - worth.z) ** 2
    if nu < _PINNED:
        # Pinned as in ``_location``: take the scale from the quantiles' own intervals.
        se = math.hypot(_log_quantile_se(x, at), _log_quantile_se(y, at))
        nu = max(nu, (tau / max(se, _MIN_SE)) ** 2)
    look = normal_two_sided(fail.z, -worth.z, nu, limits.alpha, limits.beta)
    qc, qb = float(np.quantile(c, q)), float(np.quantile(b, q))
    ratio = qc / qb if qb > 0 else math.inf
    # The share of baseline requests beyond its quantile shrunk by the regression worth
    # detecting: what the canary's exceedance share would be with that regression.
    beyond = float(np.mean(y > np.quantile(y, at) - tau))
    share = 1 - at
    required = (
        size.proportions_sample_size(share, beyond, limits.alpha, limits.beta, len(b) / len(c))
        if beyond > share
        else None
    )
    allowed_side = allowed if sign > 0 else 1 / allowed
    bound = allowed * (1 + check.worth) if sign > 0 else 1 / (allowed * (1 + check.worth))
    comparison = Comparison(
        against="baseline",
        method="exceedances of the pooled quantile (mixture SPRT)",
        fails_if=f"canary p{round(q * 100)} {'above' if sign > 0 else 'below'} "
        f"{allowed_side:.3g}x baseline",
        passes_if=f"canary p{round(q * 100)} {'below' if sign > 0 else 'above'} "
        f"{bound:.3g}x baseline",
        estimate=ratio if math.isfinite(ratio) else None,
        low=None,
        high=None,
        z_fail=fail.z,
        p_fail=look.p_fail,
        alpha=limits.alpha,
        z_pass=-worth.z,
        p_pass=look.p_pass,
        beta=limits.beta,
        canary_n=len(c),
        baseline_n=len(b),
        required_n=required,
    )
    effect = f"{qc:.3g} vs baseline {qb:.3g} ({_pct(ratio) if math.isfinite(ratio) else 'n/a'})"
    text = _verdict_text(name, effect, look, _pct(allowed_side), _pct(bound))
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


def _total(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> list[_Part]:
    parts: list[_Part] = []
    name = label(check.metric)
    mine = _log_total(check, canary, limits.cost)
    if mine is None:
        return parts
    log_c, se_c, _, n_c = mine
    sign = 1.0 if check.bad == "increase" else -1.0
    tau = math.log(1 + check.worth)
    if check.absolute is not None:
        gap = sign * (log_c - math.log(check.absolute))
        look = normal_two_sided(
            gap / se_c, -gap / se_c, (tau / se_c) ** 2, limits.alpha, limits.beta
        )
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
        text = _verdict_text(
            f"{name} vs SLO",
            f"{figure:.4g} against {check.absolute:g}",
            look,
            f"{check.absolute:g}",
            f"{check.absolute:g}",
        )
        parts.append(_Part(comparison, look, text))
    allowed = check.allowed_ratio
    theirs = _log_total(check, baseline, limits.cost) if baseline is not None else None
    if allowed is not None and theirs is not None:
        log_b, se_b, cv_b, n_b = theirs
        se = math.hypot(se_c, se_b)
        d = sign * (log_c - log_b)
        theta = math.log(allowed)
        look = normal_two_sided(
            (d - theta) / se, (theta + tau - d) / se, (tau / se) ** 2, limits.alpha, limits.beta
        )
        ratio = math.exp(log_c - log_b)
        bound = allowed * (1 + check.worth)
        comparison = Comparison(
            against="baseline",
            method="log-ratio of totals, delta method (mixture SPRT)",
            fails_if=f"canary {'above' if sign > 0 else 'below'} "
            f"{allowed if sign > 0 else 1 / allowed:.3g}x baseline",
            passes_if=f"canary {'below' if sign > 0 else 'above'} "
            f"{bound if sign > 0 else 1 / bound:.3g}x baseline",
            estimate=ratio,
            low=math.exp(log_c - log_b - _Z95 * se),
            high=math.exp(log_c - log_b + _Z95 * se),
            z_fail=(d - theta) / se,
            p_fail=look.p_fail,
            alpha=limits.alpha,
            z_pass=(theta + tau - d) / se,
            p_pass=look.p_pass,
            beta=limits.beta,
            canary_n=n_c,
            baseline_n=n_b,
            required_n=size.location_sample_size(
                cv_b, tau, limits.alpha, limits.beta, n_b / n_c, rank=False
            ),
        )
        effect = (
            f"{_pct(ratio)} vs baseline (95% CI {_pct(comparison.low or 1.0)} to "
            f"{_pct(comparison.high or 1.0)})"
        )
        shown = allowed if sign > 0 else 1 / allowed
        worst = bound if sign > 0 else 1 / bound
        parts.append(
            _Part(comparison, look, _verdict_text(name, effect, look, _pct(shown), _pct(worst)))
        )
    return parts


# --- one check ----------------------------------------------------------------------------


def _figure(check: Check, s: SampleSet | None, cost: CostModel | None) -> float | None:
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


def _parts(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> list[_Part]:
    kind: Callable[[Check, SampleSet, SampleSet | None, Limits], list[_Part]]
    if check.metric in RATES:
        kind = _rate
    elif check.metric in QUANTILES:
        kind = _quantile
    elif check.metric in TOTALS:
        kind = _total
    else:
        kind = _locations
    return kind(check, canary, baseline, limits)


def _locations(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> list[_Part]:
    if baseline is None:
        return []
    c, b = canary.per_request(check.metric), baseline.per_request(check.metric)
    if not len(c) or not len(b):
        return []
    return [_location(check, c, b, limits)]


def evaluate(
    check: Check, canary: SampleSet, baseline: SampleSet | None, limits: Limits
) -> CheckResult:
    """Judge one check at this look: pass, fail, pending or no data, with its evidence."""
    parts = _parts(check, canary, baseline, limits) if len(canary) else []
    mine, theirs = _figure(check, canary, limits.cost), _figure(check, baseline, limits.cost)
    limit = check.absolute
    if limit is None:
        limit = check.allowed_ratio if check.allowed_ratio is not None else check.allowed_points
    if not parts:
        if not len(canary):
            why = "no canary requests"
        elif baseline is None or not len(baseline):
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
    if any(p.look.failed for p in parts):
        outcome = Outcome.FAIL
    elif all(p.look.passed for p in parts):
        outcome = Outcome.PASS
    else:
        outcome = Outcome.PENDING
    return CheckResult(
        check.metric,
        outcome,
        mine,
        theirs,
        limit,
        "; ".join(p.detail for p in parts),
        name=check.label,
        critical=check.critical,
        tests=tuple(p.comparison for p in parts),
    )
