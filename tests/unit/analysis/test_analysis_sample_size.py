"""Minimum samples against textbook values, and as time at a traffic rate."""

import pytest

from inferops.analysis.sample_size import (
    bound_sample_size,
    location_sample_size,
    proportions_sample_size,
    seconds_to_collect,
)


def test_two_means_textbook() -> None:
    # sigma 1, difference 0.5, two-sided 5% (one-sided 2.5%), power 80%: 63 per group.
    assert location_sample_size(1.0, 0.5, 0.025, 0.2, rank=False) == 63


def test_a_rank_test_needs_pi_over_three_times_more() -> None:
    t_test = location_sample_size(0.4, 0.1, 0.01, 0.05, rank=False)
    rank = location_sample_size(0.4, 0.1, 0.01, 0.05)
    assert rank / t_test == pytest.approx(3.14159 / 3, rel=0.01)


def test_two_proportions_textbook() -> None:
    # Fleiss without continuity correction: 5% vs 10%, two-sided 5%, power 80%: 435 per group.
    assert proportions_sample_size(0.05, 0.10, 0.025, 0.2) == 435


def test_a_larger_baseline_needs_fewer_canary_requests() -> None:
    equal = proportions_sample_size(0.005, 0.025, 0.00125, 0.05)
    nine_to_one = proportions_sample_size(0.005, 0.025, 0.00125, 0.05, ratio=9.0)
    assert nine_to_one < equal
    assert location_sample_size(0.5, 0.1, 0.01, 0.05, ratio=9.0) < location_sample_size(
        0.5, 0.1, 0.01, 0.05
    )


def test_one_share_against_a_bound() -> None:
    # (1.6449 sqrt(.05 .95) + 1.2816 sqrt(.1 .9))^2 / .05^2 = (0.3585 + 0.3845)^2 / .0025 = 220.8
    assert bound_sample_size(0.05, 0.10, 0.05, 0.10) == 221


def test_sample_to_time() -> None:
    assert seconds_to_collect(600, 10.0) == 60.0
    assert seconds_to_collect(0, None) == 0.0
    assert seconds_to_collect(10, None) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: location_sample_size(1.0, 0.0, 0.05, 0.2),
        lambda: proportions_sample_size(0.1, 0.05, 0.05, 0.2),
        lambda: location_sample_size(1.0, 0.1, 0.0, 0.2),
    ],
)
def test_impossible_requests_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
