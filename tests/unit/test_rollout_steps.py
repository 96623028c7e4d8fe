"""The rollout's state changes: canary steps, promotion, rollback, the candidate's env."""

from inferops.gitops.manifests import DesiredState, TrackSpec
from inferops.rollout import canary_at, candidate_for, promoted, rolled_back

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
