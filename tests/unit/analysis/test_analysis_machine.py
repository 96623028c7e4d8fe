"""The rollout machine on simulated LLM traffic: the same object the rollout flow drives."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.traffic import BASELINE, Scenario, draw_poisson
from inferops.analysis.machine import Action, MachineError, Restarts, RolloutMachine, StepPlan
from inferops.analysis.release_plan import plan_release
from inferops.analysis.sample_judge import judge_samples
from inferops.analysis.spec import parse_spec
from inferops.analysis.verdict import Decision
from inferops.rollout import PlannedStep

ROOT = Path(__file__).resolve().parents[3]
SPEC = parse_spec(yaml.safe_load((ROOT / "loadtests/checks/llm-canary.yaml").read_text()))
STEPS = [
    StepPlan(10, dwell_s=10, min_requests=50),
    StepPlan(50, dwell_s=10, min_requests=50),
    StepPlan(100, dwell_s=10, min_requests=0),
]


def release(
    scenario: Scenario, seed: int, rate: float = 200.0, steps: list[StepPlan] = STEPS
) -> tuple[list[str], str]:
    """Drive one release to its end; the actions taken and the last reason."""
    rng = np.random.default_rng(seed)
    machine = RolloutMachine(SPEC, steps, budget_s=1800, started_at=0.0, warmup_s=2)
    now, actions = 1.0, []
    machine.step_live(now)
    while True:
        times = np.sort(now + rng.random(rng.poisson(rate * 10)) * 10)
        to_canary = rng.random(len(times)) < machine.step.weight / 100
        machine.observe(
            draw_poisson(rng, times[to_canary], scenario, "canary"),
            draw_poisson(rng, times[~to_canary], BASELINE, "stable"),
        )
        now += 10
        answer = machine.decide(now)
        actions.append(answer.action.value)
        if answer.action is Action.NEXT:
            now += 1
            machine.step_live(now)
        elif answer.done:
            return actions, answer.reason


def test_an_unchanged_canary_walks_every_step_and_is_promoted() -> None:
    actions, reason = release(Scenario("A/A"), seed=1)
    assert actions[-1] == "promote"
    assert actions.count("next") == 2
    assert reason.startswith("promoted: every check passed")


@pytest.mark.parametrize(
    ("scenario", "check"),
    [
        (Scenario("slower model", latency=1.3), ("TTFT", "time per output token")),
        (Scenario("errors", errors=0.05), ("error rate",)),
        (Scenario("longer answers", tokens=1.5), ("output tokens", "cost")),
    ],
)
def test_a_regression_is_rolled_back_naming_the_check(
    scenario: Scenario, check: tuple[str, ...]
) -> None:
    actions, reason = release(scenario, seed=2)
    assert actions[-1] == "rollback"
    assert reason.startswith(check)
    assert "promote" not in actions


def test_evidence_carries_across_steps() -> None:
    """Once the canary left the first step, its requests there still count."""
    rng = np.random.default_rng(3)
    machine = RolloutMachine(SPEC, STEPS, budget_s=1800, started_at=0.0)
    machine.step_live(0.0)
    times = np.sort(rng.random(4000) * 20)
    machine.observe(
        draw_poisson(rng, times[:400], BASELINE, "canary"),
        draw_poisson(rng, times[400:], BASELINE, "stable"),
    )
    assert machine.decide(20.0).action is Action.NEXT
    machine.step_live(21.0)
    later = np.sort(21 + rng.random(400) * 20)
    machine.observe(
        draw_poisson(rng, later[:200], BASELINE, "canary"),
        draw_poisson(rng, later[200:], BASELINE, "stable"),
    )
    answer = machine.decide(41.0)
    error = next(p for p in answer.progress if p.check == "error_rate")
    assert error.canary_n == 600 and error.baseline_n == 3800


def test_requests_before_the_step_or_in_its_warm_up_do_not_count() -> None:
    rng = np.random.default_rng(4)
    machine = RolloutMachine(SPEC, STEPS, budget_s=1800, started_at=0.0, warmup_s=5)
    machine.step_live(10.0)
    times = np.linspace(0, 30, 300)
    machine.observe(
        draw_poisson(rng, times, BASELINE, "canary"), draw_poisson(rng, times, BASELINE, "stable")
    )
    assert len(machine.pooled()[0]) == int(np.sum(times >= 15))


def test_an_inconclusive_release_rolls_back_at_its_budget_and_says_so() -> None:
    rng = np.random.default_rng(5)
    machine = RolloutMachine(SPEC, STEPS, budget_s=60, started_at=0.0)
    machine.step_live(0.0)
    times = np.sort(rng.random(40) * 61)
    machine.observe(
        draw_poisson(rng, times, BASELINE, "canary"), draw_poisson(rng, times, BASELINE, "stable")
    )
    answer = machine.decide(61.0)
    assert answer.action is Action.ROLLBACK
    assert answer.reason.startswith("inconclusive")
    with pytest.raises(MachineError):
        machine.decide(62.0)


def test_steps_with_unmatched_pods_feed_only_the_absolute_checks() -> None:
    """Without a load-matched step below 100% the relative checks never pass: no promotion."""
    steps = [StepPlan(10, 10, 50, comparable=False), StepPlan(100, 10, 0)]
    actions, _ = release(Scenario("A/A"), seed=6, steps=steps)
    assert "promote" not in actions


def test_a_large_unchanged_canary_is_not_rolled_back() -> None:
    """Some 40,000 requests per track with 1% failing: the absolute checks must hold."""
    rng = np.random.default_rng(7)
    times = np.sort(rng.random(40_000) * 600)
    canary = draw_poisson(rng, times, BASELINE, "canary")
    stable = draw_poisson(rng, times, BASELINE, "stable")
    verdict = judge_samples(canary, stable, SPEC, describe=False)
    assert verdict.decision is Decision.PROMOTE, verdict.reason
    machine = RolloutMachine(SPEC, STEPS[1:], budget_s=1800, started_at=0.0)
    machine.step_live(0.0)
    machine.observe(canary, stable)
    assert machine.decide(600.0).action is Action.NEXT


def placed(*weights: int, canary: int = 1, stable: int = 1) -> list[PlannedStep]:
    """Steps on ``canary`` and ``stable`` replicas."""
    return [PlannedStep(w, canary, stable) for w in weights]


def test_the_plan_refuses_a_release_the_traffic_cannot_judge_in_time() -> None:
    steps = placed(10, 50, 100)
    slow = plan_release(SPEC, steps, window_s=10, budget_s=1800, rate_rps=1.0)
    assert not slow.fits
    assert slow.needed_rps is not None and slow.needed_rps > 1.0
    assert "synthetic load" in slow.refusal()
    fast = plan_release(SPEC, steps, window_s=10, budget_s=1800, rate_rps=100.0)
    assert fast.fits and fast.expected_s is not None and fast.expected_s < 600
    assert [s.machine.comparable for s in fast.steps] == [False, True, False]


def test_real_traffic_alone_forecasts_but_does_not_refuse() -> None:
    """The release adds its own load to what the metrics show: too low a figure to refuse on."""
    plan = plan_release(
        SPEC, placed(10, 50, 100), window_s=10, budget_s=1800, rate_rps=1.0, rate_is_total=False
    )
    assert plan.fits and plan.needed_rps is not None
    assert "at the real traffic alone" in plan.describe()


def test_a_plan_without_a_load_matched_step_is_refused_saying_what_to_change() -> None:
    plan = plan_release(
        SPEC, placed(10, 25, 100, stable=9 * 4), window_s=10, budget_s=1800, rate_rps=100.0
    )
    assert not plan.fits and plan.needed_rps is None
    assert "canary_replicas / stable_replicas" in plan.refusal()


def test_the_plan_falls_back_to_coarser_regressions_where_the_spec_allows_and_says_so() -> None:
    plan = plan_release(SPEC, placed(50, 100), window_s=10, budget_s=1800, rate_rps=10.0)
    error = next(c for c in plan.spec.checks if c.metric == "error_rate")
    assert SPEC.checks[0].worth < error.worth <= 0.02
    assert any("error rate" in note for note in plan.coarsened)


def test_a_canary_whose_pods_restart_is_rolled_back_whatever_the_samples_say() -> None:
    rng = np.random.default_rng(9)
    machine = RolloutMachine(SPEC, STEPS, budget_s=1800, started_at=0.0)
    machine.step_live(0.0)
    times = np.sort(rng.random(2000) * 10)
    canary = draw_poisson(rng, times[:200], BASELINE, "canary")
    stable = draw_poisson(rng, times[200:], BASELINE, "stable")
    machine.observe(canary, stable)
    machine.observe_restarts(Restarts(canary=0, stable=2))  # the stable side's churn is not ours
    assert machine.decide(10.0).action is Action.NEXT
    machine.step_live(11.0)
    machine.observe_restarts(Restarts(canary=1, stable=2, last="OOMKilled"))
    answer = machine.decide(12.0)
    assert answer.action is Action.ROLLBACK
    assert answer.headline == (
        "the canary's pods restarted 1 time at step 2 of 3 (50%), last ending OOMKilled "
        "(at most 0 allowed)."
    )
    assert answer.statistics == "restarts since the release began: canary 1, stable 2"


def test_the_machine_keeps_at_most_max_kept_requests_a_track(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("inferops.analysis.machine.MAX_KEPT", 500)
    rng = np.random.default_rng(3)
    machine = RolloutMachine(SPEC, STEPS, budget_s=1800, started_at=0.0)
    machine.step_live(0.0)
    for second in range(3):
        times = second + np.sort(rng.random(400))
        machine.observe(
            draw_poisson(rng, times, BASELINE, "canary"),
            draw_poisson(rng, times[:100], BASELINE, "stable"),
        )
    canary, stable = machine.pooled()
    assert (len(canary), len(stable)) == (500, 300)
    assert canary.ts.max() < 2  # the first requests are kept, the later ones left out
