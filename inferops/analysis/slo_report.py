"""A load test judged against the SLO file: does the service meet its absolute limits?

A release compares a canary with the stable version; a load test has one version under
load and asks only whether it meets the SLOs: each check of the SLO file with an
absolute limit (``max``, or ``min`` where a decrease is bad) is read off the run's
requests as a dashboard would show it (the p95 of TTFT, the share of failed requests,
the cost per 1M output tokens at the file's prices) and compared with its limit. Checks
with only relative limits need a baseline; they are listed as not judged.

Pure: no I/O, so the figures and their wording are tested on their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from inferops.analysis.checks import figure, label
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import RATES, AnalysisSpec, Check


@dataclass(frozen=True)
class SloResult:
    """One check of a load test: its figure, its limit, and whether it held."""

    name: str
    metric: str
    figure: float | None
    limit: float | None
    bound: str
    """``max`` or ``min``; ``-`` when the check has no absolute limit (not judged)."""
    held: bool | None
    """None: not judged (no absolute limit, or no data)."""
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return asdict(self)


def _show(metric: str, value: float) -> str:
    if metric in RATES:
        return f"{value:.2%}"
    if metric.endswith("_usd"):
        return f"${value:,.4g}"
    if metric.endswith("_s"):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.4g}"


def _by_how_much(metric: str, value: float, limit: float) -> str:
    if metric in RATES:
        return f"{(value - limit) * 100:+.2f} points"
    return f"{value / limit - 1:+.0%}"


def judge_check(check: Check, samples: SampleSet, spec: AnalysisSpec) -> SloResult:
    """One check on the run's requests."""
    name, metric = check.label, check.metric
    limit = check.absolute
    what = label(metric)
    if limit is None:
        return SloResult(
            name, metric, None, None, "-", None, f"{what}: relative only, judged in releases"
        )
    bound = "max" if check.bad == "increase" else "min"
    value = figure(check, samples, spec.cost)
    if value is None:
        return SloResult(name, metric, None, limit, bound, None, f"{what}: no data in the run")
    held = value <= limit if bound == "max" else value >= limit
    sign = ("<=" if bound == "max" else ">=") if held else (">" if bound == "max" else "<")
    detail = f"{what} {_show(metric, value)} {sign} {_show(metric, limit)}"
    if not held:
        detail += f" ({_by_how_much(metric, value, limit)} past the SLO)"
    return SloResult(name, metric, value, limit, bound, held, detail)


def judge_run(spec: AnalysisSpec, samples: SampleSet) -> list[SloResult]:
    """Every check of ``spec`` on a load test's requests, in the file's order."""
    return [judge_check(check, samples, spec) for check in spec.checks]


def breached(results: list[SloResult]) -> list[SloResult]:
    """The checks whose SLO did not hold."""
    return [r for r in results if r.held is False]
