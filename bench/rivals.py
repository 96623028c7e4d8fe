"""Today's canary judges, modelled from their documented rules, for the benchmark.

- ``FlaggerLike``: every interval (1 minute) it reads the canary's success rate
  and p99 latency over that interval and checks each against a threshold. A
  failing interval adds a failed check and the weight does not advance; at
  ``threshold`` failed checks it rolls back; after ``iterations`` passing
  intervals (e.g. ``stepWeight: 5`` up to ``maxWeight: 50``) it promotes.
- ``KayentaLike``: one analysis at the end of a fixed lifetime (30 minutes).
  Each metric's per-minute series of canary and baseline is compared with a
  Mann-Whitney test; the Hodges-Lehmann shift's 98% interval must lie above
  ``tolerance`` (0.25) times the shift itself, and the canary's mean at least
  the baseline's, for the metric to be classified High (a failure). The
  score is the share of metrics that pass: at least 95 promotes, below 75
  rolls back (and so does a marginal score at the last analysis).

Both take per-minute aggregates of many simulated canaries at once: arrays
of shape (canaries, minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inferops.analysis.stats import hodges_lehmann

Array = npt.NDArray[np.float64]

ROLLBACK, PROMOTE, HOLD = "rollback", "promote", "hold"


@dataclass(frozen=True)
class Outcomes:
    """Per simulated canary: the decision and the minute it was taken (NaN for hold)."""

    decisions: npt.NDArray[np.str_]
    minutes: Array


@dataclass(frozen=True)
class FlaggerLike:
    """Fixed-interval thresholds with a failed-check budget."""

    threshold: int
    max_p99_s: float
    min_success_rate: float = 0.99
    iterations: int = 10

    def run(self, canary: dict[str, Array]) -> Outcomes:
        """Judge every canary minute by minute until rollback, promotion or the data's end."""
        success = 1 - canary["errors"] / canary["requests"]
        failing = (success < self.min_success_rate) | (canary["latency_p99_s"] > self.max_p99_s)
        failed = np.cumsum(failing, axis=1)
        passed = np.cumsum(~failing, axis=1)
        count, minutes = failing.shape
        decisions = np.full(count, HOLD, dtype=object)
        taken = np.full(count, np.nan)
        for i in range(count):
            rollback_at = np.flatnonzero(failed[i] >= self.threshold)
            promote_at = np.flatnonzero(passed[i] >= self.iterations)
            first_rollback = rollback_at[0] if len(rollback_at) else minutes
            first_promote = promote_at[0] if len(promote_at) else minutes
            if first_rollback < first_promote:
                decisions[i], taken[i] = ROLLBACK, first_rollback + 1
            elif first_promote < minutes:
                decisions[i], taken[i] = PROMOTE, first_promote + 1
        return Outcomes(decisions.astype(str), taken)


@dataclass(frozen=True)
class KayentaLike:
    """One Mann-Whitney analysis of per-minute series at the end of a fixed lifetime."""

    lifetime_min: int = 30
    confidence: float = 0.98
    tolerance: float = 0.25
    pass_score: float = 95.0
    marginal_score: float = 75.0
    metrics: tuple[str, ...] = ("error_rate", "latency_mean_s", "latency_p99_s")

    def _high(self, canary: Array, baseline: Array) -> bool:
        if (
            np.array_equal(np.sort(canary), np.sort(baseline))
            or np.ptp(np.concatenate((canary, baseline))) == 0
        ):
            return False
        shift = hodges_lehmann(canary, baseline, self.confidence)
        bound = self.tolerance * abs(shift.estimate)
        base_mean = float(np.mean(baseline))
        ratio = float(np.mean(canary)) / base_mean if base_mean != 0 else 1.0
        return shift.low > bound and ratio >= 1.0

    def run(self, canary: dict[str, Array], baseline: dict[str, Array]) -> Outcomes:
        """Score every canary at the end of its lifetime."""
        series_c = _series(canary, self.lifetime_min)
        series_b = _series(baseline, self.lifetime_min)
        count = next(iter(series_c.values())).shape[0]
        decisions = np.full(count, HOLD, dtype=object)
        for i in range(count):
            passed = sum(not self._high(series_c[m][i], series_b[m][i]) for m in self.metrics)
            score = 100 * passed / len(self.metrics)
            decisions[i] = PROMOTE if score >= self.pass_score else ROLLBACK
        return Outcomes(decisions.astype(str), np.full(count, float(self.lifetime_min)))


def _series(minutes: dict[str, Array], lifetime: int) -> dict[str, Array]:
    out = {k: v[:, :lifetime] for k, v in minutes.items()}
    out["error_rate"] = out["errors"] / out["requests"]
    return out
