"""GPU-aware steps: whole replicas, GPU budget, a stable that keeps its share, warm-up."""

import numpy as np
import pytest

from inferops.analysis.planning import Capacity, PlanError, plan_steps
from inferops.analysis.samples import SampleSet

# Eight replicas of 5 req/s carry 30 req/s with 20% headroom (30 * 1.2 / 5 = 7.2).
EIGHT = Capacity(stable_replicas=8, replica_rps=5, peak_rps=30, spare_gpus=2)


def test_weights_map_to_whole_replicas() -> None:
    steps = plan_steps(EIGHT, [5, 25, 50, 100], warmup_s=120)
    assert [(s.weight, s.canary_replicas) for s in steps] == [
        (12, 1),
        (25, 2),
        (50, 4),
        (75, 6),
        (100, 8),
    ]
    assert all(s.canary_rps == pytest.approx(30 * s.weight / 100) for s in steps)


def test_the_stable_never_drops_below_the_share_it_still_serves() -> None:
    steps = plan_steps(EIGHT, [5, 25, 50, 100], warmup_s=120)
    previous_weight = 0
    for step in steps:
        assert step.stable_replicas >= EIGHT.replicas_for((100 - previous_weight) / 100)
        assert step.gpus <= (EIGHT.stable_replicas + EIGHT.spare_gpus)
        previous_weight = step.weight
    # The stable shrinks only as GPUs force it: it keeps all 8 while the spare GPUs suffice.
    assert [s.stable_replicas for s in steps] == [8, 8, 6, 4, 2]


def test_a_step_too_big_for_the_gpus_is_split() -> None:
    one_spare = Capacity(stable_replicas=8, replica_rps=5, peak_rps=30, spare_gpus=1)
    steps = plan_steps(one_spare, [10, 50, 100], warmup_s=60)
    assert [s.canary_replicas for s in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(s.gpus <= 9 for s in steps)


def test_weights_that_map_to_the_same_replicas_merge() -> None:
    # 1%, 5% and 10% of eight replicas all round to one canary replica: one step.
    steps = plan_steps(EIGHT, [1, 5, 10, 100], warmup_s=60)
    assert [s.canary_replicas for s in steps] == [1, 3, 5, 7, 8]
    assert [s.weight for s in steps] == [12, 38, 62, 88, 100]


def test_no_room_for_a_canary_says_how_many_gpus_are_missing() -> None:
    full = Capacity(stable_replicas=4, replica_rps=10, peak_rps=30, spare_gpus=0)
    with pytest.raises(PlanError, match="1 more spare GPU"):
        plan_steps(full, [10, 100], warmup_s=60)


def test_multi_gpu_replicas_count_gpus() -> None:
    big = Capacity(stable_replicas=2, replica_rps=20, peak_rps=30, gpus_per_replica=4, spare_gpus=4)
    steps = plan_steps(big, [50, 100], warmup_s=300)
    assert [(s.weight, s.canary_replicas, s.gpus) for s in steps] == [(50, 1, 12), (100, 2, 12)]


@pytest.mark.parametrize("weights", [[], [10, 50], [50, 25, 100], [0, 100]])
def test_invalid_weights_are_refused(weights: list[int]) -> None:
    with pytest.raises(PlanError, match="weights"):
        plan_steps(EIGHT, weights, warmup_s=60)


def test_warm_up_is_left_out_of_the_analysis() -> None:
    step = plan_steps(EIGHT, [25, 100], warmup_s=90)[0]
    live_at = 1000.0
    samples = SampleSet.from_columns(
        "canary", ts=live_at + np.arange(0, 300, 10.0), latency_s=np.ones(30), ok=[True] * 30
    )
    counted = samples.between(step.analysis_start(live_at))
    assert counted.ts.min() == live_at + 90
    assert step.seconds_for(600) == pytest.approx(600 / 7.5)
