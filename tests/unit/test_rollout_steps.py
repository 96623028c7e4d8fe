"""The rollout's state changes: canary steps, promotion, rollback, the candidate's env."""

from inferops.config import CapacitySettings
from inferops.gitops.manifests import DesiredState, TrackSpec
from inferops.rollout import (
    PlannedStep,
    at_step,
    canary_at,
    candidate_for,
    plan,
    pod_restarts,
    promoted,
    restarts_since,
    rolled_back,
)

OLD = "inferops-service@sha256:" + "d" * 64
NEW = "inferops-service@sha256:" + "c" * 64
STATE = DesiredState(TrackSpec(OLD, 2, (("A", "1"), ("B", "2"))), TrackSpec(OLD, 0))


def test_the_candidate_starts_from_the_stable_environment() -> None:
    candidate = candidate_for(STATE, NEW, {"B": "", "C": "3", "A": "9"})
    assert candidate.image == NEW
    assert candidate.env == (("A", "9"), ("C", "3"))


def test_a_canary_step_runs_as_many_replicas_as_stable() -> None:
    step = canary_at(STATE, candidate_for(STATE, NEW, {}), 25)
    assert step.weight == 25
    assert step.canary == TrackSpec(NEW, 2, STATE.stable.env)
    assert step.stable == STATE.stable


def test_promotion_makes_the_canary_stable_and_empties_the_canary() -> None:
    step = canary_at(STATE, candidate_for(STATE, NEW, {"X": "1"}), 100)
    done = promoted(step)
    assert done.stable == TrackSpec(NEW, 2, (("A", "1"), ("B", "2"), ("X", "1")))
    assert done.canary.replicas == 0 and done.weight == 0


def test_rollback_keeps_stable_untouched() -> None:
    step = canary_at(STATE, candidate_for(STATE, NEW, {}), 50)
    back = rolled_back(step)
    assert back.stable == STATE.stable
    assert back.canary.replicas == 0 and back.weight == 0


def test_without_capacity_the_configured_steps_run_on_fixed_replicas() -> None:
    steps = plan([10, 50, 100], stable_replicas=2, canary_replicas=2, warmup_s=1, capacity=None)
    assert [(s.weight, s.canary_replicas, s.stable_replicas) for s in steps] == [
        (10, 2, 2),
        (50, 2, 2),
        (100, 2, 2),
    ]


def test_with_capacity_steps_are_whole_replicas_and_the_stable_scales_down() -> None:
    capacity = CapacitySettings(replica_rps=10, peak_rps=30, spare_gpus=2, headroom=0)
    steps = plan([25, 50, 100], stable_replicas=3, canary_replicas=2, warmup_s=1, capacity=capacity)
    assert steps[-1].weight == 100 and steps[-1].canary_replicas == 3
    for s in steps:
        assert s.canary_replicas + s.stable_replicas <= 5  # three stable GPUs plus two spare
        # the stable always keeps enough replicas for its share of the peak
        assert s.stable_replicas * 10 >= (100 - s.weight) / 100 * 30 - 1e-9


def test_a_step_scales_the_stable_and_a_rollback_restores_it() -> None:
    step = at_step(STATE, candidate_for(STATE, NEW, {}), PlannedStep(50, 2, 1))
    assert step.stable.replicas == 1 and step.canary.replicas == 2
    assert rolled_back(step, 2).stable.replicas == 2
    assert promoted(step, 2).stable == TrackSpec(NEW, 2, STATE.stable.env)


def test_restarts_count_from_the_release_start_and_new_pods_from_zero() -> None:
    before = pod_restarts(
        [{"name": "stable-0", "track": "stable", "restarts": 4}, {"name": "gone", "restarts": 9}]
    )
    now = [
        {"name": "stable-0", "track": "stable", "restarts": 5},
        {"name": "canary-0", "track": "canary", "restarts": 2, "last": "OOMKilled"},
        {"name": "canary-1", "track": "canary", "restarts": 0, "last": "Error"},
    ]
    restarts = restarts_since(before, now)
    assert (restarts.canary, restarts.stable, restarts.last) == (2, 1, "OOMKilled")
