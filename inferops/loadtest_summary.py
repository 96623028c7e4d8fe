"""A load test's summary in words: which requests its SLOs are judged on, and its
result in one line. Pure: the flow builds the summary, these read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferops.loadtest import LoadProfile


def judged_rows(
    rows: list[dict[str, Any]], profile: LoadProfile, capacity: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], str]:
    """The requests the SLOs are judged on, and which they are in words: every request of
    the run, or in a capacity run (rising offered rates) those up to the knee, the load
    the SLOs are meant to hold at; without a knee, the first rate's."""
    stages = profile.stages
    if capacity is None or len(stages) < 2 or not rows:
        return rows, f"all {len(rows)} requests"
    rates = [s.rate_rps for s in stages]
    last = rates.index(capacity["knee_rps"]) if capacity["knee_rps"] in rates else 0
    end = sum(s.duration_s for s in stages[: last + 1])
    start = min(float(r["ts"]) for r in rows)
    mine = [r for r in rows if float(r["ts"]) - start < end]
    where = "the knee" if capacity["knee_rps"] is not None else "the lowest rate (no knee)"
    return mine, f"the {len(mine)} requests up to {where}, {rates[last]:g} req/s offered"


def headline(summary: Mapping[str, Any]) -> str:
    """The run's result in one line."""
    start = (
        f"{summary['profile']} on {summary['env']}: {summary['requests']} requests at "
        f"{summary['rps']:.1f} req/s"
    )
    capacity = summary.get("capacity")
    if capacity is not None:
        start += (
            f"; knee at {capacity['knee_rps']:g} req/s offered "
            f"(goodput {capacity['goodput_at_knee_rps']:g} req/s)"
            if capacity["knee_rps"] is not None
            else "; no knee: even the lowest rate was not carried within the limits"
        )
        if capacity.get("cost_at_knee"):
            cost = capacity["cost_at_knee"]
            start += (
                f", ${cost['per_1m_output_tokens_usd']:.4g} per 1M output tokens on "
                f"{cost['priced_as']} (${cost['hourly_usd']:.4g}/h)"
            )
    if summary.get("generator_bound"):
        start += (
            f" (the load generator used {summary['generator_cores']:.2f} of its core: "
            "the rates reached may be its limit, not the service's)"
        )
    broken = [c for c in summary["checks"] if c["held"] is False]
    if not broken:
        judged = sum(1 for c in summary["checks"] if c["held"] is not None)
        return f"{start}; every SLO held ({judged} judged)"
    return f"{start}; SLO breached: " + "; ".join(c["detail"] for c in broken)
