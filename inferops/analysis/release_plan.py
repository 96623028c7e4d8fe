"""The release planned from its traffic, before the first commit.

``plan_release`` turns the canary settings, the SLO file and the traffic the
canary will see into the steps the rollout machine judges
(``inferops.analysis.machine``) and an estimate of how long an unchanged
canary takes to be promoted. A plan that cannot finish within the
environment's time budget is refused *before* the release starts, with the
time it would need and the traffic (synthetic load added to the real one)
that would make it fit.

How the estimate is made (normal approximations; the judge itself is exact
where it matters and sequential, so this is a forecast, not a promise):

- each step's dwell is ``window_s``, or longer where the canary needs more
  time to serve ``min_requests`` at the step's share of ``rate_rps``;
- a relative comparison between canary and stable gains information at
  ``1 / (sigma^2 (1/r_c + 1/r_s))`` per second (``r_c``, ``r_s`` the tracks'
  request rates, ``sigma^2`` one request's variance on the comparison's scale),
  in every comparable step; an unchanged canary passes once that information
  reaches the level at which the mixture test's pass evidence crosses
  ``missed_regression_rate`` with the regression worth detecting as drift;
- ``sigma`` comes from ``Priors``: the error rate the metrics provider shows
  (or 1%), and typical log-scale spreads of LLM latencies, tokens and costs.

A step is *comparable* when each canary pod carries about the load of each
stable pod (within ``LOAD_MATCH``): on two replicas at 10%, a canary pod
serves a ninth of a stable pod's load and looks faster than it is, so such a
step feeds only the absolute checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from scipy.optimize import brentq

from inferops.analysis.checks import bounds, is_relative, label, limits_for
from inferops.analysis.machine import StepPlan
from inferops.analysis.sequential import normal_mixture_log_lr
from inferops.analysis.spec import QUANTILES, RATES, TOTALS, AnalysisSpec, Check

PLAN_SHARE = 1 / 3
"""Share of the time budget an unchanged canary is planned to need: a sequential test's
time to a verdict has a long tail, and the rest of the budget absorbs it."""

LOAD_MATCH = 1.25
"""Largest ratio of per-pod loads (canary to stable, either way) of a comparable step."""

SPREADS: Mapping[str, float] = {
    "latency_s": 0.8,
    "ttft_s": 0.6,
    "tpot_s": 0.3,
    "latency_per_token_s": 0.5,
    "output_tokens": 0.8,
    "output_tokens_per_s": 0.5,
    "cost_per_1k_requests_usd": 0.8,
    "cost_per_1m_output_tokens_usd": 0.8,
}
"""Typical standard deviations of one request's log value (or a cost's CV) in LLM traffic."""

_RANK_EFFICIENCY = 3 / math.pi


class PlanRefused(ValueError):
    """The release cannot be judged within its time budget at the traffic it will see."""


@dataclass(frozen=True)
class Priors:
    """What the planner assumes of the traffic before it has seen the canary."""

    error_rate: float = 0.01
    spreads: Mapping[str, float] = field(default_factory=lambda: dict(SPREADS))


@dataclass(frozen=True)
class PlannedStep:
    """One step of the plan: replicas, the machine's view, and its expected duration."""

    weight: int
    canary_replicas: int
    stable_replicas: int
    machine: StepPlan
    canary_rps: float | None
    expected_s: float | None


@dataclass(frozen=True)
class Need:
    """One relative comparison's evidence need."""

    check: str
    information: float
    """Information (tau^2 I) at which an unchanged canary passes."""
    rate: float | None
    """Information gained per second at the gate step (None: rate unknown)."""


@dataclass(frozen=True)
class ReleasePlan:
    """The steps, their expected durations and whether the release fits its budget."""

    steps: tuple[PlannedStep, ...]
    rate_rps: float | None
    rate_source: str
    budget_s: float
    expected_s: float | None
    needs: tuple[Need, ...]
    slowest: str | None
    """The check that sets the release's pace."""
    fits: bool
    needed_rps: float | None
    """Total traffic at which the plan fits the budget (when it does not)."""
    spec: AnalysisSpec
    """The checks the machine judges: the SLO file's, coarsened where the plan had to."""
    coarsened: tuple[str, ...] = ()
    """Sentences naming each check judged on a coarser regression than the finest asked."""

    def describe(self) -> str:
        """The plan as people read it."""
        rate = (
            f"{self.rate_rps:.3g} req/s ({self.rate_source})"
            if self.rate_rps
            else f"unknown ({self.rate_source})"
        )
        lines = [f"traffic: {rate}; time budget {self.budget_s / 60:.0f} min"]
        for i, s in enumerate(self.steps, start=1):
            when = f"~{s.expected_s / 60:.1f} min" if s.expected_s is not None else "?"
            canary = f", canary {s.canary_rps:.3g} req/s" if s.canary_rps else ""
            kind = "" if s.machine.comparable or s.weight == 100 else ", absolute checks only"
            lines.append(
                f"  step {i}: {s.weight:>3}% on {s.canary_replicas} canary / "
                f"{s.stable_replicas} stable pod(s){canary}: {when}{kind}"
            )
        lines += [f"note: {c}" for c in self.coarsened]
        if self.expected_s is not None:
            lines.append(
                f"expected: an unchanged canary is promoted in about "
                f"{self.expected_s / 60:.1f} min"
                + (f"; the {self.slowest} check sets the pace" if self.slowest else "")
            )
        else:
            lines.append("expected: unknown until traffic is measured (the budget still holds)")
        if not self.fits:
            lines.append(self.refusal())
        return "\n".join(lines)

    def refusal(self) -> str:
        """Why the plan does not fit, and what would make it fit."""
        need = f"about {self.expected_s / 60:.0f} min" if self.expected_s else "more time"
        fix = (
            f"; it fits with about {self.needed_rps:.3g} req/s of total traffic "
            f"(add {self.needed_rps - (self.rate_rps or 0):.3g} req/s of synthetic load)"
            if self.needed_rps
            else ""
        )
        return (
            f"the release needs {need} at {self.rate_rps or 0:.3g} req/s to rule out the "
            f"regressions worth detecting (the {self.slowest or 'slowest'} check sets the pace), "
            f"more than a third of its {self.budget_s / 60:.0f} min budget (the rest absorbs "
            f"chance){fix}, or raise budget_s, "
            "or detect only larger regressions (worth_detecting)"
        )


def pass_information(alpha_beta: float) -> float:
    """The information (nu) at which the mixture test passes an unchanged canary."""
    level = math.log(1 / alpha_beta)
    return float(brentq(lambda nu: normal_mixture_log_lr(math.sqrt(nu), nu) - level, 1e-6, 1e6))


def comparable(weight: int, canary_replicas: int, stable_replicas: int) -> bool:
    """Whether each canary pod carries about each stable pod's load at ``weight``."""
    if weight >= 100 or canary_replicas <= 0 or stable_replicas <= 0:
        return False
    ratio = (weight / canary_replicas) / ((100 - weight) / stable_replicas)
    return 1 / LOAD_MATCH <= ratio <= LOAD_MATCH


def _variance(check: Check, priors: Priors) -> float:
    """One request's variance on the comparison's scale (rank tests: per efficiency)."""
    if check.metric in RATES:
        p = min(max(priors.error_rate, 1e-4), 0.5)
        return p * (1 - p)
    base = QUANTILES[check.metric][0] if check.metric in QUANTILES else check.metric
    spread = priors.spreads.get(base, 0.8)
    if check.metric in TOTALS:
        return spread**2
    if check.metric in QUANTILES:
        return 4 * spread**2  # exceedances of a tail quantile carry little information
    return spread**2 / _RANK_EFFICIENCY


def _plan_fixed(
    spec: AnalysisSpec,
    steps: Sequence[tuple[int, int, int]],
    *,
    window_s: float,
    budget_s: float,
    rate_rps: float | None,
    rate_source: str = "configured",
    priors: Priors | None = None,
    all_comparable: bool = False,
) -> ReleasePlan:
    """Plan ``steps`` (weight, canary replicas, stable replicas) at ``rate_rps`` of traffic.

    ``all_comparable`` treats every step below 100% as load-matched (a simulation whose
    pods' speed does not depend on their load).
    """
    priors = priors or Priors()
    limits = limits_for(spec, describe=False)
    needed_nu = pass_information(limits.beta)
    relative = [c for c in spec.checks if is_relative(c)]

    def layout(rate: float | None) -> tuple[list[PlannedStep], list[Need], str | None]:
        planned: list[PlannedStep] = []
        gained = dict.fromkeys((c.label for c in relative), 0.0)
        shown: list[Need] = []
        slowest: str | None = None
        flags = [(all_comparable and w < 100) or comparable(w, c, s) for w, c, s in steps]
        gate = max((i for i, f in enumerate(flags) if f), default=None)
        for i, ((weight, canary_replicas, stable_replicas), flag) in enumerate(
            zip(steps, flags, strict=True)
        ):
            share = weight / 100
            canary_rps = rate * share if rate else None
            dwell = window_s
            if canary_rps:
                dwell = max(window_s, spec.min_requests / 4 / canary_rps if weight < 100 else 0)
            expected: float | None = dwell if rate else None
            rates: dict[str, float] = {}
            if rate and flag:
                rc, rs = rate * share, rate * (1 - share)
                for c in relative:
                    _, tau = bounds(c)
                    rates[c.label] = tau**2 / (_variance(c, priors) * (1 / rc + 1 / rs))
            if i == gate and rate:
                waits = {
                    lbl: max(0.0, needed_nu - gained[lbl]) / r for lbl, r in rates.items() if r > 0
                }
                longest = max(waits.values(), default=0.0)
                if waits:
                    slowest = max(waits, key=waits.__getitem__)
                expected = max(dwell, longest)
                shown = [Need(lbl, needed_nu, rates.get(lbl)) for lbl in gained]
            if rate:
                for lbl, r in rates.items():
                    gained[lbl] += r * (expected or 0.0)
            planned.append(
                PlannedStep(
                    weight,
                    canary_replicas,
                    stable_replicas,
                    StepPlan(
                        weight,
                        dwell_s=dwell,
                        min_requests=math.ceil(spec.min_requests / 4) if weight < 100 else 0,
                        comparable=flag,
                    ),
                    canary_rps,
                    expected,
                )
            )
        if gate is None and relative:
            slowest = "no step below 100% with load-matched pods"
        return planned, shown, slowest

    planned, needs, slowest = layout(rate_rps)
    no_gate = bool(relative) and not any(p.machine.comparable for p in planned)
    expected = sum(p.expected_s or 0.0 for p in planned) if rate_rps and not no_gate else None
    fits = not no_gate and (expected is None or expected <= PLAN_SHARE * budget_s)
    needed_rps: float | None = None
    if not fits and not no_gate and rate_rps:

        def over(rate: float) -> float:
            steps_at, _, _ = layout(rate)
            return sum(s.expected_s or 0.0 for s in steps_at) - PLAN_SHARE * budget_s

        high = rate_rps
        for _ in range(40):
            high *= 2
            if over(high) <= 0:
                needed_rps = float(brentq(over, rate_rps, high, xtol=0.01))
                break
    return ReleasePlan(
        tuple(planned),
        rate_rps,
        rate_source,
        budget_s,
        expected,
        tuple(needs),
        slowest,
        fits,
        needed_rps,
        spec,
    )


_LADDER = 1.25
"""Each coarser regression tried is this much larger than the last."""


def plan_release(
    spec: AnalysisSpec,
    steps: Sequence[tuple[int, int, int]],
    *,
    window_s: float,
    budget_s: float,
    rate_rps: float | None,
    rate_source: str = "configured",
    priors: Priors | None = None,
    all_comparable: bool = False,
) -> ReleasePlan:
    """Plan ``steps`` (weight, canary replicas, stable replicas) at ``rate_rps`` of traffic.

    Where the finest regressions worth detecting cannot be shown within ``PLAN_SHARE`` of
    the budget, checks that allow it (``worth_detecting_max``) fall back, the slowest
    first, to coarser ones; the plan names each. ``all_comparable`` treats every step
    below 100% as load-matched (a simulation whose pods' speed does not depend on load).
    """

    def attempt(current: AnalysisSpec) -> ReleasePlan:
        return _plan_fixed(
            current,
            steps,
            window_s=window_s,
            budget_s=budget_s,
            rate_rps=rate_rps,
            rate_source=rate_source,
            priors=priors,
            all_comparable=all_comparable,
        )

    plan = attempt(spec)
    current = spec
    changed: dict[str, tuple[float, float]] = {}
    while plan.expected_s is not None and plan.expected_s > PLAN_SHARE * budget_s:
        slow = next((c for c in current.checks if c.label == plan.slowest), None)
        coarsest = slow.worth_detecting_max if slow is not None else None
        if slow is None or coarsest is None or slow.worth >= coarsest:
            break
        wider = min(slow.worth * _LADDER, coarsest)
        first = changed.get(slow.label, (slow.worth, wider))[0]
        changed[slow.label] = (first, wider)
        checks = [
            c.model_copy(update={"worth_detecting": wider}) if c.label == slow.label else c
            for c in current.checks
        ]
        current = current.model_copy(update={"checks": checks})
        plan = attempt(current)
    notes = tuple(
        f"{name}: a regression of {_amount(spec, name, finest)} cannot be shown within "
        f"{PLAN_SHARE * budget_s / 60:.0f} min at {rate_rps:g} req/s; this release detects "
        f"{_amount(spec, name, used)} and more"
        for name, (finest, used) in changed.items()
    )
    return replace(plan, coarsened=notes)


def _amount(spec: AnalysisSpec, name: str, worth: float) -> str:
    check = next(c for c in spec.checks if c.label == name)
    if check.metric in RATES:
        return f"+{worth * 100:.2g} points of {label(check.metric)}"
    return f"+{worth:.0%} {label(check.metric)}"
