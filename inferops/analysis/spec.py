"""What the judge checks: the SLO file's checks, validated.

A check compares one canary metric against an absolute limit (the SLO) and,
where a baseline exists, against the baseline (a ratio for latencies, an
added share for error rates). ``min_requests`` is the evidence needed before
any verdict other than ``hold``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Metric = Literal["error_rate", "latency_p50_s", "latency_p95_s", "latency_p99_s", "ttft_p95_s"]


class SpecError(ValueError):
    """The SLO file is invalid."""


class Check(BaseModel):
    """One metric, its absolute limit and its allowed degradation against the baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    max: Annotated[float, Field(gt=0)] | None = Field(default=None, description="Absolute SLO.")
    max_ratio: Annotated[float, Field(ge=1)] | None = Field(
        default=None, description="Canary may be at most this times the baseline (latencies)."
    )
    max_increase: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Canary may exceed the baseline by this share (error rate)."
    )
    slack_s: Annotated[float, Field(ge=0)] = Field(
        default=0.02, description="Latency difference always tolerated (histogram resolution)."
    )
    critical: bool = True

    @model_validator(mode="after")
    def _has_a_limit(self) -> Check:
        if self.max is None and self.max_ratio is None and self.max_increase is None:
            raise ValueError(f"check {self.metric} needs max, max_ratio or max_increase")
        if self.metric == "error_rate" and self.max_ratio is not None:
            raise ValueError("error_rate compares with max_increase, not max_ratio")
        if self.metric != "error_rate" and self.max_increase is not None:
            raise ValueError(f"{self.metric} compares with max_ratio, not max_increase")
        return self


class AnalysisSpec(BaseModel):
    """The SLO file: evidence required and the checks a canary must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_requests: Annotated[int, Field(ge=1)] = 50
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    checks: list[Check] = Field(min_length=1)


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
