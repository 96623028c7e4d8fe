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

- each step lasts at least ``window_s`` and until the canary has served
  ``min_requests / STEP_SHARE`` requests at the step's share of ``rate_rps``
  (the machine waits on the requests themselves, not on this forecast);
- a relative comparison between canary and stable gains information at
  ``1 / (sigma^2 (1/r_c + 1/r_s))`` per second (``r_c``, ``r_s`` the tracks'
  request rates, ``sigma^2`` one request's variance on the comparison's scale),
  in every comparable step; an unchanged canary passes once that information
  reaches the level at which the mixture test's pass evidence crosses
  ``missed_regression_rate`` with the regression worth detecting as drift;
- ``sigma`` comes from ``Priors``: the stable version's error rate (what the
  metrics provider shows on a cluster, else 1%) and typical log-scale spreads
  of LLM latencies, tokens and costs.

A step is *comparable* when each canary pod carries about the load of each
stable pod (within ``LOAD_MATCH``): on two replicas at 10%, a canary pod
serves a ninth of a stable pod's load and looks faster than it is, so such a
step feeds only the absolute checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from scipy.optimize import brentq

from inferops.analysis.checks import bounds, is_relative, label, limits_for
from inferops.analysis.machine import RolloutMachine, StepPlan
from inferops.analysis.sequential import normal_mixture_log_lr
from inferops.analysis.spec import QUANTILES, RATES, TOTALS, AnalysisSpec, Check

PLAN_SHARE = 1 / 3
"""Share of the time budget an unchanged canary is planned to need: a sequential test's
time to a verdict has a long tail, and the rest of the budget absorbs it."""

LOAD_MATCH = 1.25
"""Largest ratio of per-pod loads (canary to stable, either way) of a comparable step."""

SPREADS: Mapping[str, float] = {
    "latency_s": 0.8,
    "ttft_s": 0.4,  # within prompt-size bins (0.6 without the sizes)
    "tpot_s": 0.3,
    "latency_per_token_s": 0.5,
    "output_tokens": 0.8,
    "output_tokens_per_s": 0.5,
    "cost_per_1k_requests_usd": 0.8,
    "cost_per_1m_output_tokens_usd": 0.8,
}
"""Typical standard deviations of one request's log value (or a cost's CV) in LLM traffic."""

_RANK_EFFICIENCY = 3 / math.pi


class Placement(Protocol):
    """One step as the platform runs it: the weight and both tracks' replicas."""

    @property
    def weight(self) -> int: ...
    @property
    def canary_replicas(self) -> int: ...
    @property
    def stable_replicas(self) -> int: ...


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
class ReleasePlan:
    """The steps, their expected durations and whether the release fits its budget."""

    steps: tuple[PlannedStep, ...]
    rate_rps: float | None
    rate_source: str
    budget_s: float
    expected_s: float | None
    slowest: str | None
    """The check that sets the release's pace."""
    fits: bool
    needed_rps: float | None
    """Total traffic at which the plan fits the budget (when it does not)."""
    spec: AnalysisSpec
    """The checks the machine judges: the SLO file's, coarsened where the plan had to."""
    coarsened: tuple[str, ...] = ()
    """Sentences naming each check judged on a coarser regression than the finest asked."""
    problem: str | None = None
    """Why no traffic can make the plan fit (it then does not fit)."""
    rate_is_total: bool = True
    """False: ``rate_rps`` is the real traffic alone, before the release's own load."""

    def machine(self, started_at: float, warmup_s: float, describe: bool = True) -> RolloutMachine:
        """The rollout machine that judges this plan, its clock starting at ``started_at``."""
        return RolloutMachine(
            self.spec,
            [s.machine for s in self.steps],
            budget_s=self.budget_s,
            started_at=started_at,
            warmup_s=warmup_s,
            describe=describe,
        )

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
        elif self.needed_rps:
            lines.append(
                f"note: at the real traffic alone {self.refusal()}; the release's own load "
                "comes on top, so it starts and the budget decides"
            )
        return "\n".join(lines)

    def refusal(self) -> str:
        """Why the plan does not fit, and what would make it fit."""
        if self.problem:
            return self.problem
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


STEP_SHARE = 10
"""A step below 100% serves at least ``min_requests / STEP_SHARE`` canary requests: enough
for the exact SLO tests to show a broken canary (20 of 20 requests failing is far beyond a
5% error SLO), few enough that a slow service reaches 50% soon, where the comparisons
with the stable version learn fastest."""


@dataclass(frozen=True)
class _Inputs:
    steps: Sequence[Placement]
    window_s: float
    budget_s: float
    rate_rps: float | None
    rate_source: str
    priors: Priors
    all_comparable: bool
    rate_is_total: bool


def _layout(
    spec: AnalysisSpec, inputs: _Inputs, rate: float | None
) -> tuple[list[PlannedStep], str | None]:
    """The steps at ``rate`` with their expected durations, and the check setting the pace."""
    relative = [c for c in spec.checks if is_relative(c)]
    needed_nu = pass_information(limits_for(spec, describe=False).beta)
    step_requests = math.ceil(spec.min_requests / STEP_SHARE)
    flags = [
        (inputs.all_comparable and p.weight < 100)
        or comparable(p.weight, p.canary_replicas, p.stable_replicas)
        for p in inputs.steps
    ]
    gate = max((i for i, f in enumerate(flags) if f), default=None)
    gained = dict.fromkeys((c.label for c in relative), 0.0)
    planned: list[PlannedStep] = []
    slowest: str | None = None
    for i, (placed, flag) in enumerate(zip(inputs.steps, flags, strict=True)):
        weight = placed.weight
        share = weight / 100
        canary_rps = rate * share if rate else None
        # The machine's dwell is the window; the forecast adds the time the canary needs for
        # the step's requests at the planned rate (a forecast only: the rate may be a guess).
        dwell = inputs.window_s
        if canary_rps and weight < 100:
            dwell_forecast = max(dwell, step_requests / canary_rps)
        else:
            dwell_forecast = dwell
        # Information per second each relative comparison gains at this step.
        gains: dict[str, float] = {}
        if rate and flag:
            per_request = 1 / (rate * share) + 1 / (rate * (1 - share))
            gains = {
                c.label: bounds(c)[1] ** 2 / (_variance(c, inputs.priors) * per_request)
                for c in relative
            }
        expected: float | None = dwell_forecast if rate else None
        if i == gate and gains:
            waits = {lbl: max(0.0, needed_nu - gained[lbl]) / g for lbl, g in gains.items()}
            slowest = max(waits, key=waits.__getitem__)
            expected = max(dwell_forecast, waits[slowest])
        for lbl, g in gains.items():
            gained[lbl] += g * (expected or 0.0)
        machine = StepPlan(
            weight,
            dwell_s=dwell,
            min_requests=step_requests if weight < 100 else 0,
            comparable=flag,
        )
        planned.append(
            PlannedStep(
                weight,
                placed.canary_replicas,
                placed.stable_replicas,
                machine,
                canary_rps,
                expected,
            )
        )
    return planned, slowest


def _total(steps: Sequence[PlannedStep]) -> float:
    return sum(s.expected_s or 0.0 for s in steps)


def _plan_fixed(spec: AnalysisSpec, inputs: _Inputs) -> ReleasePlan:
    """The plan for ``spec`` as it is (no regression coarsened)."""
    planned, slowest = _layout(spec, inputs, inputs.rate_rps)
    target = PLAN_SHARE * inputs.budget_s
    problem: str | None = None
    if any(is_relative(c) for c in spec.checks) and not any(p.machine.comparable for p in planned):
        problem = (
            "no step below 100% has canary pods loaded like the stable ones (within "
            f"{LOAD_MATCH:g}x per pod), so the comparisons with the stable version cannot be "
            "judged: add a step where canary_replicas / stable_replicas is about "
            "weight / (100 - weight)"
        )
    expected = _total(planned) if inputs.rate_rps and not problem else None
    # A rate that is only the real traffic leaves out the load the release adds: too low a
    # figure to refuse on, so the budget alone judges such a release.
    slow = expected is not None and expected > target
    fits = problem is None and not (slow and inputs.rate_is_total)
    needed_rps: float | None = None
    if slow and not problem and inputs.rate_rps:

        def over(rate: float) -> float:
            return _total(_layout(spec, inputs, rate)[0]) - target

        high = inputs.rate_rps
        for _ in range(40):
            high *= 2
            if over(high) <= 0:
                needed_rps = float(brentq(over, inputs.rate_rps, high, xtol=0.01))
                break
    return ReleasePlan(
        tuple(planned),
        inputs.rate_rps,
        inputs.rate_source,
        inputs.budget_s,
        expected,
        slowest,
        fits,
        needed_rps,
        spec,
        problem=problem,
        rate_is_total=inputs.rate_is_total,
    )


_LADDER = 1.25
"""Each coarser regression tried is this much larger than the last."""


def plan_release(
    spec: AnalysisSpec,
    steps: Sequence[Placement],
    *,
    window_s: float,
    budget_s: float,
    rate_rps: float | None,
    rate_source: str = "configured",
    priors: Priors | None = None,
    all_comparable: bool = False,
    rate_is_total: bool = True,
) -> ReleasePlan:
    """Plan ``steps`` at ``rate_rps`` of total traffic.

    Where the finest regressions worth detecting cannot be shown within ``PLAN_SHARE`` of
    the budget, checks that allow it (``worth_detecting_max``) fall back, the slowest
    first, to coarser ones; the plan names each. ``all_comparable`` treats every step
    below 100% as load-matched (a simulation whose pods' speed does not depend on load).
    ``rate_is_total=False`` says ``rate_rps`` leaves out the load the release adds: such a
    plan coarsens and forecasts as usual but is not refused for being slow.
    """

    inputs = _Inputs(
        steps,
        window_s,
        budget_s,
        rate_rps,
        rate_source,
        priors or Priors(),
        all_comparable,
        rate_is_total,
    )
    plan = _plan_fixed(spec, inputs)
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
        plan = _plan_fixed(current, inputs)
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
