"""A load test's run read against the SLO file's absolute limits."""

from __future__ import annotations

from typing import Any

from inferops.analysis.samples import SampleSet
from inferops.analysis.slo_report import breached, judge_run
from inferops.analysis.spec import parse_spec


def run(n: int = 200, failed_every: int = 0, ttft_ms: float = 100.0) -> SampleSet:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        ok = not (failed_every and i % failed_every == 0)
        rows.append(
            {
                "ts": float(i),
                "latency_s": 0.2 + (i % 10) / 100,
                "ttft_s": ttft_ms / 1000 * (1 + (i % 20) / 100),
                "ok": ok,
                "status": 200 if ok else 503,
                "output_tokens": 50,
                "input_tokens": 10,
            }
        )
    return SampleSet.from_records(rows, "run")


SPEC = parse_spec(
    {
        "cost": {"usd_per_1m_output_tokens": 2.0, "usd_per_request": 0.0001},
        "checks": [
            {"metric": "error_rate", "max": 0.05, "max_increase": 0.0},
            {"metric": "latency_s", "max_ratio": 1.1},
            {"metric": "ttft_p95_s", "max": 0.5},
            {"metric": "cost_per_1m_output_tokens_usd", "max": 5.0},
            {"metric": "goodput", "min": 0.9, "within": {"ttft_s": 0.15}},
        ],
    }
)


def test_a_run_within_every_slo_holds_and_relative_checks_are_not_judged() -> None:
    results = {r.name: r for r in judge_run(SPEC, run())}
    assert [r.held for r in results.values()] == [True, None, True, True, True]
    assert results["latency_s"].detail == "latency: relative only, judged in releases"
    assert (
        results["ttft_p95_s"].detail.startswith("TTFT p95 ")
        and "<= 500 ms" in results["ttft_p95_s"].detail
    )
    # $2 per 1M tokens plus $0.0001 a request over 50 tokens: $4 per 1M.
    assert abs(results["cost_per_1m_output_tokens_usd"].figure - 4.0) < 1e-9  # type: ignore[operator]
    assert breached(list(results.values())) == []


def test_a_breach_is_named_with_how_far_past_its_slo() -> None:
    results = {r.name: r for r in judge_run(SPEC, run(failed_every=10, ttft_ms=600))}
    assert [r.name for r in breached(list(results.values()))] == [
        "error_rate",
        "ttft_p95_s",
        "goodput",
    ]
    assert results["error_rate"].detail == ("error rate 10.00% > 5.00% (+5.00 points past the SLO)")
    ttft = results["ttft_p95_s"]
    assert ttft.figure is not None and ttft.figure > 0.5
    assert f"(+{ttft.figure / 0.5 - 1:.0%} past the SLO)" in ttft.detail
    assert results["goodput"].bound == "min" and "<" in results["goodput"].detail


def test_a_figure_missing_from_the_run_is_not_judged() -> None:
    spec = parse_spec({"checks": [{"metric": "ttft_p95_s", "max": 0.5}]})
    rows = [{"ts": float(i), "latency_s": 0.1, "ok": True, "status": 200} for i in range(50)]
    [result] = judge_run(spec, SampleSet.from_records(rows, "run"))
    assert result.held is None and result.detail == "TTFT p95: no data in the run"
