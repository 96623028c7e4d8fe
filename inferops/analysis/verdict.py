"""The verdict and its evidence: what the commit trailer, the artifact and the report show.

A verdict is never a bool: it is ``promote``, ``continue``, ``rollback`` or
``hold``, with one result per check, the evidence behind each (samples,
windows, statistics, p-values, effect sizes) and one sentence a human can act
on. ``to_dict`` is its JSON form. Value objects only: no logic beyond
serialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from inferops.analysis.evidence import WindowStats


class Decision(StrEnum):
    """What the rollout does next."""

    PROMOTE = "promote"
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    HOLD = "hold"


class Outcome(StrEnum):
    """The result of one check."""

    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"
    PENDING = "pending"
    """Not yet clear either way: more evidence is needed."""


@dataclass(frozen=True)
class Comparison:
    """One statistical comparison behind a check, at this look."""

    against: str
    """``baseline`` (relative) or ``slo`` (absolute)."""
    method: str
    fails_if: str
    passes_if: str
    estimate: float | None
    """The effect: a ratio canary/baseline, a difference in points, or the canary's figure."""
    low: float | None
    high: float | None
    """Fixed-sample 95% interval of the estimate, where one is defined."""
    z_fail: float | None
    p_fail: float
    """Always-valid p-value of "no worse than allowed"; fails at or below ``alpha``."""
    alpha: float
    z_pass: float | None
    p_pass: float
    """Always-valid p-value of "a regression worth detecting"; passes at or below ``beta``."""
    beta: float
    canary_n: int
    baseline_n: int | None
    required_n: int | None
    """Canary requests a fixed-sample test would need for the regression worth detecting."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome with the figures that decided it."""

    metric: str
    outcome: Outcome
    canary: float | None
    baseline: float | None
    limit: float | None
    detail: str
    name: str | None = None
    critical: bool = True
    tests: tuple[Comparison, ...] = ()
    streak: int = 0
    """Consecutive looks this check has failed, this one included."""

    @property
    def label(self) -> str:
        """The check's unique name."""
        return self.name or self.metric


@dataclass(frozen=True)
class Evidence:
    """What a sample-based verdict was drawn from."""

    canary_requests: int
    baseline_requests: int
    canary_window: tuple[float, float] | None
    baseline_window: tuple[float, float] | None
    canary_rps: float | None
    required_requests: int
    """Canary requests needed before a promotion (the largest minimum sample of the checks)."""
    seconds_to_required: float | None
    false_rollback_rate: float
    alpha_per_test: float
    missed_regression_rate: float
    tests: int
    method: str
    canary_summary: Mapping[str, float | int | None] = field(default_factory=dict)
    baseline_summary: Mapping[str, float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A decision with its evidence and a one-sentence reason."""

    decision: Decision
    reason: str
    checks: tuple[CheckResult, ...]
    canary: WindowStats
    baseline: WindowStats | None
    evidence: Evidence | None = None
    streaks: Mapping[str, int] = field(default_factory=dict)
    """Consecutive failing looks per check, for the next look's ``previous``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, as shown in artifacts, reports and ``--json``."""
        return {
            "decision": self.decision.value,
            "reason": self.reason,
            "checks": [asdict(c) | {"outcome": c.outcome.value} for c in self.checks],
            "canary": asdict(self.canary),
            "baseline": asdict(self.baseline) if self.baseline else None,
            "evidence": asdict(self.evidence) if self.evidence else None,
            "streaks": dict(self.streaks),
        }
