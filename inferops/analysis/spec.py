"""What the judge checks: the SLO file's checks, validated.

A check compares one canary metric against an absolute limit (the SLO) and,
where a baseline exists, against the baseline (a ratio for latencies, tokens
and cost, an added share for rates). Each metric has a bad direction: higher
latency is bad, lower goodput is bad; ``direction`` overrides the default.

Limits, in the bad direction: ``max``/``min`` (absolute), ``max_ratio``/
``min_ratio`` (relative to the baseline) and ``max_increase``/``max_decrease``
(rates, in points). The relative limit is the *allowed degradation*: the
sample-based judge rolls back only on evidence that the canary is worse than
it. ``worth_detecting`` is the smallest regression beyond it that must not be
promoted: it sets the minimum sample and the promotion bound.

``min_requests`` is the floor under any promotion; ``confidence`` is what the
interval-based judge uses for error rates; ``false_rollback_rate`` and
``missed_regression_rate`` are the sample-based judge's error rates, and
``failure_limit`` how many consecutive failing looks a non-critical check may
have before it rolls back (a critical check rolls back on its first).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Metric = Literal[
    "error_rate",
    "goodput",
    "latency_s",
    "ttft_s",
    "tpot_s",
    "latency_per_token_s",
    "output_tokens",
    "output_tokens_per_s",
    "latency_p50_s",
    "latency_p95_s",
    "latency_p99_s",
    "ttft_p50_s",
    "ttft_p95_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p95_s",
    "tpot_p99_s",
    "cost_per_1k_requests_usd",
    "cost_per_1m_output_tokens_usd",
]
Direction = Literal["increase", "decrease"]
PerRequest = Literal["latency_s", "ttft_s", "tpot_s"]

RATES: frozenset[str] = frozenset({"error_rate", "goodput"})
"""Share of requests that are bad (failed, or outside the goodput limits)."""
LOCATIONS: frozenset[str] = frozenset(
    {
        "latency_s",
        "ttft_s",
        "tpot_s",
        "latency_per_token_s",
        "output_tokens",
        "output_tokens_per_s",
    }
)
"""Per-request values compared as whole distributions (a rank test on a ratio scale)."""
TOTALS: frozenset[str] = frozenset({"cost_per_1k_requests_usd", "cost_per_1m_output_tokens_usd"})
"""Ratios of sums over all requests."""
QUANTILES: dict[str, tuple[str, float]] = {
    f"{base}_p{p}_s": (f"{base}_s", p / 100)
    for base in ("latency", "ttft", "tpot")
    for p in (50, 95, 99)
}
"""Quantile metric -> (per-request metric, quantile)."""
DECREASE_IS_BAD: frozenset[str] = frozenset({"goodput", "output_tokens_per_s"})

DEFAULT_WORTH_DETECTING_SHARE = 0.10
DEFAULT_WORTH_DETECTING_POINTS = 0.01


class SpecError(ValueError):
    """The SLO file is invalid."""


class CostModel(BaseModel):
    """Prices that account a request's cost when samples carry no ``cost_usd``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd_per_1m_input_tokens: Annotated[float, Field(ge=0)] = 0.0
    usd_per_1m_output_tokens: Annotated[float, Field(ge=0)] = 0.0
    usd_per_request: Annotated[float, Field(ge=0)] = 0.0


class Check(BaseModel):
    """One metric, its absolute limit and its allowed degradation against the baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    name: str | None = Field(default=None, description="Unique label; defaults to the metric.")
    direction: Direction | None = Field(
        default=None, description="Which change is bad; defaults per metric."
    )
    max: Annotated[float, Field(gt=0)] | None = Field(default=None, description="Absolute SLO.")
    min: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="Absolute SLO where a decrease is bad."
    )
    max_ratio: Annotated[float, Field(ge=1)] | None = Field(
        default=None, description="Canary may be at most this times the baseline."
    )
    min_ratio: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="Canary must be at least this times the baseline."
    )
    max_increase: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Canary may exceed the baseline by this share (rates)."
    )
    max_decrease: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Canary may fall below the baseline by this share (rates)."
    )
    worth_detecting: Annotated[float, Field(gt=0, le=10)] | None = Field(
        default=None,
        description="Smallest regression beyond the allowed one worth detecting: a share "
        "(0.10 = 10%) for ratios, points (0.01 = 1 point) for rates.",
    )
    worth_detecting_max: Annotated[float, Field(gt=0, le=10)] | None = Field(
        default=None,
        description="Coarsest regression worth detecting the release plan may fall back to "
        "when the traffic cannot show worth_detecting within a third of the time budget (the plan "
        "says so before the release starts); unset: never coarser, and such a plan is refused.",
    )
    within: dict[PerRequest, Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="goodput: the per-request limits a good request meets."
    )
    slack_s: Annotated[float, Field(ge=0)] = Field(
        default=0.02, description="Latency difference always tolerated (histogram resolution)."
    )
    critical: bool = True
    failure_limit: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Consecutive failing looks before a non-critical check fails."
    )

    @property
    def label(self) -> str:
        """The check's unique name."""
        return self.name or self.metric

    @property
    def bad(self) -> Direction:
        """The direction in which a change is a regression."""
        if self.direction is not None:
            return self.direction
        return "decrease" if self.metric in DECREASE_IS_BAD else "increase"

    @property
    def absolute(self) -> float | None:
        """The absolute limit in the bad direction, if any."""
        return self.max if self.bad == "increase" else self.min

    @property
    def allowed_ratio(self) -> float | None:
        """Allowed degradation as a factor >= 1 in the bad direction (ratio checks)."""
        if self.bad == "increase":
            return self.max_ratio
        return None if self.min_ratio is None else 1 / self.min_ratio

    @property
    def allowed_points(self) -> float | None:
        """Allowed degradation in points in the bad direction (rate checks)."""
        return self.max_increase if self.bad == "increase" else self.max_decrease

    @property
    def worth(self) -> float:
        """Smallest regression worth detecting, with the kind's default."""
        if self.worth_detecting is not None:
            return self.worth_detecting
        if self.metric in RATES:
            return DEFAULT_WORTH_DETECTING_POINTS
        return DEFAULT_WORTH_DETECTING_SHARE

    @model_validator(mode="after")
    def _has_a_limit(self) -> Check:
        upward = (self.max, self.max_ratio, self.max_increase)
        downward = (self.min, self.min_ratio, self.max_decrease)
        wrong, right = (downward, upward) if self.bad == "increase" else (upward, downward)
        if any(x is not None for x in wrong):
            takes = (
                "max, max_ratio or max_increase, not min, min_ratio or max_decrease"
                if self.bad == "increase"
                else "min, min_ratio or max_decrease, not max, max_ratio or max_increase"
            )
            raise ValueError(
                f"check {self.metric}: {'an increase' if self.bad == 'increase' else 'a decrease'} "
                f"is bad, so it takes {takes} "
                "(or set direction)"
            )
        if all(x is None for x in right):
            needs = (
                "max, max_ratio or max_increase"
                if self.bad == "increase"
                else "min, min_ratio or max_decrease"
            )
            raise ValueError(f"check {self.metric} needs {needs}")
        if self.metric in RATES:
            if self.max_ratio is not None or self.min_ratio is not None:
                what = "max_increase" if self.bad == "increase" else "max_decrease"
                raise ValueError(f"{self.metric} compares with {what}, not a ratio")
            if self.absolute is not None and self.absolute >= 1:
                raise ValueError(
                    f"{self.metric} is a share: its limit must lie strictly between 0 and 1"
                )
        elif self.max_increase is not None or self.max_decrease is not None:
            what = "max_ratio" if self.bad == "increase" else "min_ratio"
            raise ValueError(f"{self.metric} compares with {what}, not max_increase/max_decrease")
        if self.worth_detecting_max is not None and self.worth_detecting_max < self.worth:
            raise ValueError(
                f"check {self.metric}: worth_detecting_max ({self.worth_detecting_max:g}) is "
                f"below worth_detecting ({self.worth:g}); it is the coarsest fallback"
            )
        if self.metric in LOCATIONS and self.absolute is not None:
            raise ValueError(
                f"{self.metric} compares the whole distribution with the baseline "
                "(max_ratio/min_ratio); put an absolute SLO on a quantile such as latency_p95_s"
            )
        if (self.metric == "goodput") != (self.within is not None):
            raise ValueError(
                "goodput needs `within` (the per-request limits a good request meets), "
                "and only goodput takes it"
            )
        return self


class AnalysisSpec(BaseModel):
    """The SLO file: evidence required and the checks a canary must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_requests: Annotated[int, Field(ge=1)] = 50
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    false_rollback_rate: Annotated[float, Field(gt=0, lt=0.5)] = Field(
        default=0.01,
        description="Chance that an unchanged canary is rolled back, over the whole release.",
    )
    missed_regression_rate: Annotated[float, Field(gt=0, lt=0.5)] = Field(
        default=0.05,
        description="Chance that a check promotes a canary with a regression worth detecting.",
    )
    failure_limit: Annotated[int, Field(ge=1)] = Field(
        default=3, description="Consecutive failing looks before a non-critical check fails."
    )
    cost: CostModel | None = Field(
        default=None, description="Prices for samples that carry no cost_usd."
    )
    max_restarts: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description=(
            "Container restarts of the canary's pods tolerated during a release (a crash, an "
            "out-of-memory kill); one more rolls back at once, whatever the samples say."
        ),
    )
    checks: list[Check] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> AnalysisSpec:
        labels = [c.label for c in self.checks]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"checks need unique names; give `name` to the repeated {twice}")
        return self


def parse_spec(data: Any, source: str = "SLO file") -> AnalysisSpec:
    """Validate the parsed SLO file."""
    try:
        return AnalysisSpec.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise SpecError(f"invalid {source}: {details}") from None
