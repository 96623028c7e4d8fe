"""How much evidence a verdict needs: sample sizes from the regression worth detecting.

The minimum sample of a check is the number of canary requests at which a
fixed-sample, one-sided test at level ``alpha`` would detect the smallest
regression worth detecting with probability ``1 - beta``. Below it the judge
never promotes: a canary too small to show a regression that size is not
evidence that it has none. With the traffic rate the sample becomes a time.

Formulas (normal approximation, one-sided ``alpha``, power ``1 - beta``;
``k`` = baseline requests per canary request):

- location shift on the log scale with standard deviation ``sigma`` (a rank
  test on normal data is 3/pi as efficient as the t test, so the t-test
  sample is divided by 3/pi): ``n_eff = (z_a + z_b)^2 sigma^2 / delta^2 / (3/pi)``,
  where ``n_eff = n k / (1 + k)``;
- two proportions ``p0 -> p1`` (Fleiss, without continuity correction):
  ``n = (z_a sqrt(pbar qbar (1 + 1/k)) + z_b sqrt(p1 q1 + p0 q0 / k))^2 / (p1 - p0)^2``;
- one proportion against a bound ``p0 -> p1``:
  ``n = (z_a sqrt(p0 q0) + z_b sqrt(p1 q1))^2 / (p1 - p0)^2``;
- a mean's log-ratio with coefficient of variation ``cv``: as the location
  shift with ``sigma = cv`` and no rank-test factor.
"""

from __future__ import annotations

import math

from scipy.special import ndtri

_RANK_EFFICIENCY = 3 / math.pi


def _z(alpha: float, beta: float) -> tuple[float, float]:
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ValueError(f"alpha and beta must lie in (0, 1), got {alpha} and {beta}")
    return float(-ndtri(alpha)), float(-ndtri(beta))


def _per_canary(n_eff: float, ratio: float) -> int:
    """Canary requests giving an effective sample ``n_eff`` with ``ratio`` baseline per canary."""
    if ratio <= 0:
        raise ValueError(f"the baseline-to-canary ratio must be positive, got {ratio}")
    return max(1, math.ceil(n_eff * (1 + ratio) / ratio))


def location_sample_size(
    sigma: float, delta: float, alpha: float, beta: float, ratio: float = 1.0, rank: bool = True
) -> int:
    """Canary requests to detect a log-scale shift ``delta`` given the log-scale ``sigma``."""
    if delta <= 0:
        raise ValueError(f"the regression worth detecting must be positive, got {delta}")
    za, zb = _z(alpha, beta)
    n_eff = ((za + zb) * sigma / delta) ** 2 / (_RANK_EFFICIENCY if rank else 1.0)
    return _per_canary(n_eff, ratio)


def proportions_sample_size(
    p0: float, p1: float, alpha: float, beta: float, ratio: float = 1.0
) -> int:
    """Canary requests to detect a share rising from ``p0`` (baseline) to ``p1`` (canary)."""
    if not 0 <= p0 < p1 <= 1:
        raise ValueError(f"need 0 <= p0 < p1 <= 1, got {p0} and {p1}")
    za, zb = _z(alpha, beta)
    pbar = (p1 + p0 * ratio) / (1 + ratio)
    spread = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p1 * (1 - p1) + p0 * (1 - p0) / ratio
    )
    return max(1, math.ceil((spread / (p1 - p0)) ** 2))


def bound_sample_size(p0: float, p1: float, alpha: float, beta: float) -> int:
    """Requests to tell a share ``p1`` from a bound ``p0`` (either side)."""
    if not (0 < p0 < 1 and 0 <= p1 <= 1 and p0 != p1):
        raise ValueError(f"need distinct shares in (0, 1), got {p0} and {p1}")
    za, zb = _z(alpha, beta)
    spread = za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))
    return max(1, math.ceil((spread / (p1 - p0)) ** 2))


def seconds_to_collect(requests: int, rate_rps: float | None) -> float | None:
    """Seconds of traffic at ``rate_rps`` needed for ``requests``; None when there is none."""
    if requests <= 0:
        return 0.0
    if rate_rps is None or rate_rps <= 0:
        return None
    return requests / rate_rps
