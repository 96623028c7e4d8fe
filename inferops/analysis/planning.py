"""GPU-aware canary steps: whole replicas, warm-up left out, a stable that keeps up.

On GPUs a traffic weight is only honest when it maps to whole replicas: 5% of
traffic on a canary of one replica out of eight overloads nothing, but the
canary then serves 12.5% at the stable's load per replica, and that is what
its latency shows. ``plan_steps`` turns desired weights into such steps:

- Full size ``R``: replicas that carry the peak with headroom (at least the
  stable's current count). A desired weight ``w`` becomes ``k`` canary
  replicas (``round(w * R / 100)``, at least one) and the step's weight the
  share those replicas carry, ``100 * k / R``; weights mapping to the same
  count merge.
- GPU budget: the stable's GPUs plus the spare ones. While a step starts its
  canary replicas, the stable still serves the previous step's share, so it
  keeps at least the replicas that share needs; beyond that it scales down
  only as far as the budget forces (keeping warm capacity for a rollback).
  A desired step that does not fit is split into the largest steps that do;
  if none fits, ``PlanError`` says how many GPUs are missing.
- Warm-up: every step starts canary replicas, so each leaves ``warmup_s``
  after it is live out of the analysis (CUDA graphs, caches, the new load on
  the batch scheduler): ``SampleSet.between(step.analysis_start(live_at))``.

``Step.seconds_for`` turns a minimum sample into time at the step's traffic.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass


class PlanError(ValueError):
    """The steps cannot be placed on the GPUs available."""


@dataclass(frozen=True)
class Capacity:
    """What the service runs on and must carry."""

    stable_replicas: int
    replica_rps: float
    """Requests per second one replica sustains within its SLOs."""
    peak_rps: float
    gpus_per_replica: int = 1
    spare_gpus: int = 0
    """GPUs beyond the stable's that the canary may use."""
    headroom: float = 0.2
    """Capacity kept above each track's share of the peak."""

    def __post_init__(self) -> None:
        if self.stable_replicas < 0 or self.gpus_per_replica < 1 or self.spare_gpus < 0:
            raise PlanError(f"replica and GPU counts must be non-negative: {self}")
        if self.replica_rps <= 0 or self.peak_rps <= 0 or self.headroom < 0:
            raise PlanError(f"rates must be positive and headroom non-negative: {self}")

    def replicas_for(self, share: float) -> int:
        """Replicas that carry ``share`` of the peak with headroom (0 for no traffic)."""
        if share <= 0:
            return 0
        return math.ceil(share * self.peak_rps * (1 + self.headroom) / self.replica_rps - 1e-9)

    @property
    def full_size(self) -> int:
        """Replicas one version needs for all traffic."""
        return max(self.stable_replicas, self.replicas_for(1.0))

    @property
    def budget(self) -> int:
        """Replicas that fit on the GPUs held: the stable's plus the spare ones."""
        return self.stable_replicas + self.spare_gpus // self.gpus_per_replica


@dataclass(frozen=True)
class Step:
    """One canary step as the platform runs it."""

    weight: int
    """Percent of traffic to the canary."""
    canary_replicas: int
    stable_replicas: int
    """Stable replicas once the step is live (kept for a rollback where GPUs allow)."""
    gpus: int
    exclude_s: float
    """Seconds after the step is live left out of the analysis."""
    canary_rps: float
    """Canary traffic at the peak."""

    def analysis_start(self, live_at: float) -> float:
        """When the step's evidence starts counting (unix time)."""
        return live_at + self.exclude_s

    def seconds_for(self, requests: int) -> float:
        """Seconds of peak traffic the canary needs to serve ``requests``."""
        return requests / self.canary_rps if self.canary_rps > 0 else math.inf


def plan_steps(capacity: Capacity, weights: list[int], warmup_s: float) -> tuple[Step, ...]:
    """Steps for the desired ``weights`` (increasing, ending at 100) on the GPUs available."""
    if not weights or weights[-1] != 100 or any(b <= a for a, b in itertools.pairwise(weights)):
        raise PlanError(f"weights must increase strictly and end at 100, got {weights}")
    if min(weights) <= 0:
        raise PlanError(f"weights must be positive, got {weights}")
    size, budget, g = capacity.full_size, capacity.budget, capacity.gpus_per_replica
    steps: list[Step] = []
    canary, stable, weight = 0, capacity.stable_replicas, 0
    for wanted in weights:
        target = size if wanted == 100 else min(size, max(1, round(wanted * size / 100)))
        while canary < target:
            # The stable keeps serving the previous share while canary replicas start.
            floor = capacity.replicas_for((100 - weight) / 100)
            fits = min(target, budget - floor)
            if fits <= canary:
                missing = (floor + canary + 1 - budget) * g
                raise PlanError(
                    f"the step towards {wanted}% needs {canary + 1} canary replica(s) while the "
                    f"stable keeps {floor} for its {100 - weight}% of {capacity.peak_rps:g} req/s: "
                    f"{missing} more spare GPU(s) needed (have {capacity.spare_gpus})"
                )
            new_weight = 100 if fits == size else max(weight + 1, round(100 * fits / size))
            stable = min(stable, budget - fits)
            steps.append(
                Step(
                    weight=new_weight,
                    canary_replicas=fits,
                    stable_replicas=stable,
                    gpus=(fits + stable) * g,
                    exclude_s=warmup_s,
                    canary_rps=capacity.peak_rps * new_weight / 100,
                )
            )
            canary, weight = fits, new_weight
    return tuple(steps)
