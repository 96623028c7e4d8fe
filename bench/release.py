"""Whole releases, simulated: the rollout machine as shipped, fed LLM-shaped traffic.

Each simulated release runs the path ``inferops release`` runs: the plan that
``inferops.analysis.release_plan.plan_release`` makes from an environment's
canary settings and SLO file at the given total traffic, then the very
``RolloutMachine`` the rollout flow drives, looked at every ``window_s`` (the
flow's load window), with ``live_s`` seconds to make each step live and the
warm-up left out. Traffic (``bench.traffic``): Poisson arrivals at the total
rate with bursts (a tenth of the windows at three times the rate), each
request routed to the canary with the step's weight, heavy-tailed latencies
and answer lengths, and 1% of requests failing on both versions.

The pods' speed does not depend on their load here, so every step below 100%
is load-matched (``all_comparable``): this measures the statistics, and the
platform's replica plan decides which steps are comparable in a real run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.traffic import BASELINE, Scenario, draw_poisson
from inferops.analysis.machine import Action
from inferops.analysis.release_plan import ReleasePlan, plan_release
from inferops.analysis.spec import AnalysisSpec
from inferops.rollout import PlannedStep


@dataclass(frozen=True)
class Settings:
    """The environment's canary settings, as the rollout flow reads them."""

    steps: tuple[int, ...]
    window_s: float
    warmup_s: float
    budget_s: float
    live_s: float = 5.0
    burst_share: float = 0.1
    burst_factor: float = 3.0


def release_plan(spec: AnalysisSpec, settings: Settings, rate: float) -> ReleasePlan:
    """The plan the flow would make at ``rate`` req/s of total traffic."""
    return plan_release(
        spec,
        [PlannedStep(w, 1, 1) for w in settings.steps],
        window_s=settings.window_s,
        budget_s=settings.budget_s,
        rate_rps=rate,
        rate_source="simulated",
        all_comparable=True,
    )


@dataclass(frozen=True)
class Outcome:
    """How one simulated release ended."""

    action: str
    minutes: float
    step: int
    canary_requests: int


def simulate(
    plan: ReleasePlan,
    settings: Settings,
    rate: float,
    scenario: Scenario,
    rng: np.random.Generator,
) -> Outcome:
    """One release from its first commit to its promotion or rollback."""
    machine = plan.machine(0.0, settings.warmup_s, describe=False)
    now = settings.live_s
    machine.step_live(now)
    while True:
        weight = machine.step.weight / 100
        factor = settings.burst_factor if rng.random() < settings.burst_share else 1.0
        arrivals = rng.poisson(rate * factor * settings.window_s)
        to_canary = rng.random(arrivals) < weight
        times = np.sort(now + rng.random(arrivals) * settings.window_s)
        canary = draw_poisson(rng, times[to_canary], scenario, "canary")
        stable = draw_poisson(rng, times[~to_canary], BASELINE, "stable")
        now += settings.window_s
        machine.observe(canary, stable)
        answer = machine.decide(now)
        if answer.action is Action.NEXT:
            now += settings.live_s
            machine.step_live(now)
        elif answer.done:
            return Outcome(
                answer.action.value,
                now / 60,
                answer.step,
                answer.verdict.evidence.canary_requests if answer.verdict.evidence else 0,
            )


def run_releases(
    spec: AnalysisSpec,
    settings: Settings,
    rate: float,
    scenario: Scenario,
    releases: int,
    seed: int,
) -> list[Outcome]:
    """``releases`` independent releases of one scenario at one rate."""
    plan = release_plan(spec, settings, rate)
    rng = np.random.default_rng(seed)
    return [simulate(plan, settings, rate, scenario, rng) for _ in range(releases)]


def wilson(hits: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a share."""
    if n == 0:
        return 0.0, 1.0
    z = 1.959963984540054
    p = hits / n
    centre = p + z * z / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n)), min(
        1.0, (centre + margin) / (1 + z * z / n)
    )


def median_interval(values: npt.NDArray[np.float64]) -> tuple[float, float] | None:
    """95% distribution-free interval of a median (binomial order statistics)."""
    n = len(values)
    if n < 6:
        return None
    ordered = np.sort(values)
    half = 1.959963984540054 * np.sqrt(n) / 2
    low = max(0, int(np.floor(n / 2 - half)))
    high = min(n - 1, int(np.ceil(n / 2 + half)))
    return float(ordered[low]), float(ordered[high])
