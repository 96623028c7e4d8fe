"""The judge's statistics against scipy, brute force and textbook values."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency, mannwhitneyu

from inferops.analysis.stats import (
    hodges_lehmann,
    mann_whitney,
    quantile_test,
    two_proportions,
    wilson_interval,
)


def samples(seed: int, n_x: int, n_y: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0.2, 1.0, n_x)
    y = rng.lognormal(0.0, 1.0, n_y)
    if ties:
        x, y = np.round(x, 1), np.round(y, 1)
    return x, y


@pytest.mark.parametrize(("n_x", "n_y", "ties"), [(8, 11, False), (40, 25, True), (300, 260, True)])
def test_mann_whitney_matches_scipy(n_x: int, n_y: int, ties: bool) -> None:
    x, y = samples(n_x, n_x, n_y, ties)
    mine = mann_whitney(x, y)
    greater = mannwhitneyu(x, y, alternative="greater", method="asymptotic")
    both = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert mine.u == pytest.approx(greater.statistic)
    assert mine.p_greater == pytest.approx(greater.pvalue, rel=1e-9)
    assert mine.p_two_sided == pytest.approx(both.pvalue, rel=1e-9)


def test_mann_whitney_without_continuity_matches_scipy() -> None:
    x, y = samples(3, 50, 70, ties=True)
    mine = mann_whitney(x, y, continuity=False)
    ref = mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=False)
    assert mine.p_greater == pytest.approx(ref.pvalue, rel=1e-9)


def test_a_shifted_test_is_the_test_of_shifted_values() -> None:
    x, y = samples(4, 60, 45, ties=False)
    assert mann_whitney(x, y, shift=0.3).z == pytest.approx(mann_whitney(x - 0.3, y).z)


def test_mann_whitney_of_identical_constants_is_uninformative() -> None:
    result = mann_whitney([1.0, 1.0, 1.0], [1.0, 1.0])
    assert (result.z, result.p_greater, result.p_two_sided) == (0.0, 1.0, 1.0)


def brute_force_interval(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, ...]:
    """Hodges-Lehmann by listing every difference (Hollander & Wolfe's large-sample C)."""
    d = np.sort((x[:, None] - y[None, :]).ravel())
    m, n = len(d), len(x) + len(y)
    merged = np.sort(np.concatenate((x, y)))
    _, counts = np.unique(merged, return_counts=True)
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    sd = math.sqrt(len(x) * len(y) / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = 2.5758293035489004 if confidence == 0.99 else 1.959963984540054
    c = max(1, math.floor(m / 2 - z * sd))
    return float(np.median(d)), float(d[c - 1]), float(d[m - c])


@pytest.mark.parametrize(
    ("seed", "n_x", "n_y", "ties"),
    [
        (1, 1, 1, False),
        (2, 9, 14, False),
        (3, 30, 30, True),
        (4, 150, 90, True),
        (5, 400, 350, False),
    ],
)
def test_hodges_lehmann_is_exact(seed: int, n_x: int, n_y: int, ties: bool) -> None:
    x, y = samples(seed, n_x, n_y, ties)
    for confidence in (0.95, 0.99):
        shift = hodges_lehmann(x, y, confidence)
        expected = brute_force_interval(x, y, confidence)
        assert (shift.estimate, shift.low, shift.high) == pytest.approx(expected, abs=1e-12)


def test_hodges_lehmann_on_integers_with_heavy_ties() -> None:
    rng = np.random.default_rng(8)
    x = np.log(rng.integers(1, 30, 700).astype(float))
    y = np.log(rng.integers(1, 25, 800).astype(float))
    shift = hodges_lehmann(x, y)
    assert (shift.estimate, shift.low, shift.high) == pytest.approx(
        brute_force_interval(x, y, 0.95), abs=1e-12
    )


def test_hodges_lehmann_textbook_shift() -> None:
    # Every difference of {1, 2, 3} and {0} is {1, 2, 3}: the median is 2.
    assert hodges_lehmann([1.0, 2.0, 3.0], [0.0]).estimate == 2.0
    # A pure shift is recovered exactly.
    y = np.arange(50, dtype=float)
    assert hodges_lehmann(y + 7.5, y).estimate == 7.5


def test_hodges_lehmann_needs_both_samples() -> None:
    with pytest.raises(ValueError, match="both sides"):
        hodges_lehmann([], [1.0])


def test_two_proportions_z_is_the_chi_square_test() -> None:
    result = two_proportions(56, 70, 48, 80)
    chi2 = chi2_contingency([[56, 14], [48, 32]], correction=False)
    assert result.z**2 == pytest.approx(chi2.statistic)
    assert result.p_two_sided == pytest.approx(chi2.pvalue)
    assert result.difference == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("counts", "interval"),
    # Newcombe (1998), Statistics in Medicine 17:873, method 10 (hybrid score).
    [((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090))],
)
def test_newcombe_interval_textbook_values(
    counts: tuple[int, int, int, int], interval: tuple[float, float]
) -> None:
    result = two_proportions(*counts)
    assert (result.low, result.high) == pytest.approx(interval, abs=5e-5)


@pytest.mark.parametrize(("events", "n"), [(0, 20), (3, 40), (56, 70), (999, 1000)])
def test_wilson_interval_matches_scipy(events: int, n: int) -> None:
    ref = binomtest(events, n).proportion_ci(0.95, method="wilson")
    assert wilson_interval(events, n) == pytest.approx((ref.low, ref.high))


def test_no_trials_gives_no_information() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    empty = two_proportions(0, 0, 3, 10)
    assert (empty.z, empty.p_two_sided) == (0.0, 1.0)


def test_quantile_test_counts_exceedances_of_the_pooled_quantile() -> None:
    x = np.arange(1, 101, dtype=float)
    y = np.arange(1, 101, dtype=float) / 2
    result, over_x, over_y = quantile_test(x, y, 0.9)
    # The pooled 90th percentile (linear interpolation) of 1..100 and 0.5..50 is 80.1:
    # x has 20 values above it, y none.
    assert (over_x, over_y) == (20, 0)
    assert result.difference == pytest.approx(0.2)
    assert result.p_greater < 1e-4
