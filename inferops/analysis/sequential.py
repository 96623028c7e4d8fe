"""Anytime-valid tests: look at the evidence as often as you like, stop when it is clear.

The judge looks at a canary again and again (every window, every extension,
at whatever traffic arrives) and stops at the first clear answer. A fixed-sample
p-value checked at every look inflates the false-rollback rate with each look;
the tests here do not: their p-values are *always valid*, so the chance that
an unchanged canary is *ever* rolled back, over any number of looks at any
times, stays at most ``alpha``.

Method: mixture sequential probability ratio tests (mSPRT: Robbins 1970;
"always valid p-values", Johari, Pekelis & Walsh 2017; confidence sequences,
Howard, Ramdas, McAuliffe & Sekhon 2021). For a hypothesis "the drift is at
most 0" the test statistic is a likelihood ratio averaged over alternatives
(the mixture); under the null it is a non-negative supermartingale, so by
Ville's inequality it ever exceeds ``1/alpha`` with probability at most
``alpha``. The always-valid p-value is ``min(1, 1/ratio)``.

- ``normal_mixture_log_lr``: for an asymptotically normal statistic ``z`` with
  information ``I`` (Mann-Whitney on log values, differences of proportions,
  log-ratios of means). A half-normal mixture of scale ``tau`` on the drift
  gives a closed form depending only on ``z`` and ``nu = tau^2 * I``; ``tau``
  is the smallest regression worth detecting, which makes the test most
  powerful where it matters. Valid asymptotically (as the statistic's
  normality is), which the tests check by simulation at small samples.
- ``binomial_mixture_log_lr``: exact, for a share of bad requests against a
  bound (absolute SLOs on error rates and quantiles): a beta mixture over
  shares beyond the bound, valid at every sample size.

Why not a group-sequential design with alpha spending (O'Brien-Fleming,
Lan-DeMets)? It is more powerful at its planned horizon, but it needs the
maximum sample and the information at each look fixed in advance. A canary's
looks are not planned: traffic varies, steps are extended, windows are cut
short by a rollout. The mixture tests need no horizon and no look schedule,
at the price of somewhat wider bounds at any single planned look.

Each check runs two one-sided tests (a sequential version of the
two-one-sided-tests idea): *fail* rejects "no worse than the allowed
degradation" at ``alpha``; *pass* rejects "worse by the smallest regression
worth detecting" at ``beta``. Between the two the judge keeps gathering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import betainc, betaincc, betaln, log_ndtr

_TINY = 1e-300


def normal_mixture_log_lr(z: float, nu: float) -> float:
    """Log one-sided normal-mixture likelihood ratio for a positive drift, given z and nu."""
    if nu <= 0 or not math.isfinite(z):
        return 0.0 if nu <= 0 else (math.inf if z > 0 else -math.inf)
    r = nu / (1 + nu)
    return math.log(2) + float(log_ndtr(z * math.sqrt(r))) + z * z * r / 2 - math.log1p(nu) / 2


def always_valid_p(log_lr: float) -> float:
    """The always-valid p-value of a mixture likelihood ratio: min(1, 1/ratio)."""
    return 1.0 if log_lr <= 0 else math.exp(-log_lr)


def normal_mixture_p(z: float, nu: float) -> float:
    """Always-valid p-value that the drift is positive, for z with nu = tau^2 * information."""
    return always_valid_p(normal_mixture_log_lr(z, nu))


def beta_prior(p0: float, worth: float, above: bool) -> tuple[float, float]:
    """Beta(a, b) centred a regression worth detecting away from p0, about that wide."""
    mean = min(p0 + worth, 0.99) if above else max(p0 - worth, p0 / 2)
    width = abs(mean - p0)
    strength = max(mean * (1 - mean) / (width * width) - 1, 2.0)
    return mean * strength, (1 - mean) * strength


def binomial_mixture_log_lr(events: int, n: int, p0: float, worth: float, above: bool) -> float:
    """Log beta-mixture likelihood ratio that the share of events is above (below) p0."""
    if n <= 0:
        return 0.0
    # The binomial likelihood peaks at the observed share. When that share lies on the null's
    # side of p0, every share in the mixture is less likely than p0 itself, so the ratio is at
    # most 1. Holding to that matters at large samples: there the posterior mass beyond p0
    # underflows, and the clamped mass would turn overwhelming evidence *for* the null into
    # a spurious rejection (an unchanged canary rolled back after some 30,000 requests).
    null_side = (events / n <= p0) if above else (events / n >= p0)
    a, b = beta_prior(p0, worth, above)
    tail = betaincc if above else betainc
    # The prior is truncated to the alternative's side of p0: each ratio in the mixture is
    # then a supermartingale under every share on the null's side, not only at p0.
    posterior_mass = max(float(tail(a + events, b + n - events, p0)), _TINY)
    prior_mass = max(float(tail(a, b, p0)), _TINY)
    log_lr = (
        float(betaln(a + events, b + n - events) - betaln(a, b))
        + math.log(posterior_mass)
        - math.log(prior_mass)
        - events * math.log(p0)
        - (n - events) * math.log1p(-p0)
    )
    return min(log_lr, 0.0) if null_side else log_lr


@dataclass(frozen=True)
class TwoSided:
    """A look at the two one-sided tests behind a check."""

    p_fail: float
    p_pass: float
    alpha: float
    beta: float

    @property
    def failed(self) -> bool:
        """Evidence that the canary is worse than allowed."""
        return self.p_fail <= self.alpha

    @property
    def passed(self) -> bool:
        """Evidence that the canary has no regression worth detecting."""
        return self.p_pass <= self.beta and not self.failed


WIDE = 4.0
"""The fail test also mixes over regressions this many times the one worth detecting."""


def wide_mixture_p(z: float, nu: float) -> float:
    """Always-valid p-value of a mixture over two scales: worth detecting, and ``WIDE`` times it.

    The average of two test supermartingales is one. A mixture tuned to the regression
    worth detecting needs about twice the evidence to reject a regression four times as
    large as one tuned to it; a rollback should be quick for large regressions too. The
    price is at most log 2 of evidence at the small scale.
    """
    a = normal_mixture_log_lr(z, nu)
    b = normal_mixture_log_lr(z, nu * WIDE * WIDE)
    top = max(a, b)
    if math.isinf(top):
        return always_valid_p(top)
    return always_valid_p(top + math.log((math.exp(a - top) + math.exp(b - top)) / 2))


def normal_two_sided(
    z_fail: float, z_pass: float, nu: float, alpha: float, beta: float
) -> TwoSided:
    """Both tests from z statistics (positive: towards failing / towards passing).

    The fail test mixes over two scales (``wide_mixture_p``); the pass test over the
    regression worth detecting alone, the one an unchanged canary must rule out.
    """
    return TwoSided(wide_mixture_p(z_fail, nu), normal_mixture_p(z_pass, nu), alpha, beta)


def binomial_two_sided(
    events: int, n: int, bound: float, worth: float, alpha: float, beta: float
) -> TwoSided:
    """Both tests for a share of bad requests against an absolute bound."""
    fail = always_valid_p(binomial_mixture_log_lr(events, n, bound, worth, above=True))
    passed = always_valid_p(binomial_mixture_log_lr(events, n, bound, worth, above=False))
    return TwoSided(fail, passed, alpha, beta)
