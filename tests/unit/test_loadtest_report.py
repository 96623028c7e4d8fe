"""The load-test report page: self-contained, with the verdict, the table and the plots."""

from __future__ import annotations

from typing import Any

from inferops.loadtest_report import render_html


def summary(**extra: Any) -> dict[str, Any]:
    return {
        "env": "local",
        "profile": "capacity",
        "target": "stable pod <p-0>",
        "url": "http://127.0.0.1:18100",
        "slo_file": "slos.yaml",
        "requests": 40,
        "failures": 1,
        "duration_s": 20.0,
        "held": False,
        "judged_on": "all 40 requests",
        "checks": [
            {
                "name": "ttft_p95_s",
                "metric": "ttft_p95_s",
                "figure": 0.62,
                "limit": 0.5,
                "bound": "max",
                "held": False,
                "detail": "TTFT p95 620 ms > 500 ms (+24% past the SLO)",
            },
            {
                "name": "latency_s",
                "metric": "latency_s",
                "figure": None,
                "limit": None,
                "bound": "-",
                "held": None,
                "detail": "latency: relative only, judged in releases",
            },
        ],
        **extra,
    }


SAMPLES = [
    {"ts": 1000.0 + i / 2, "latency_s": 0.3, "ttft_s": 0.1 + i / 100, "ok": i != 7}
    for i in range(40)
]


def test_the_page_is_self_contained_and_says_what_breached() -> None:
    page = render_html(summary(), SAMPLES, "capacity on local: SLO breached", [(0, "5/s")])
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2
    assert "<script" not in page and "http://" not in page.replace(
        "http://127.0.0.1:18100", ""
    ).replace("http://www.w3.org", "")
    assert "<tr class='bad'><td>ttft_p95_s</td><td>620 ms</td><td>max 500 ms</td>" in page
    assert "stable pod &lt;p-0&gt;" in page  # escaped
    assert "TTFT p95 SLO" in page and "5/s" in page
    assert 'class="verdict breached"' in page


def test_a_capacity_run_adds_goodput_against_the_offered_rate_and_the_cost() -> None:
    stages = [
        {"offered_rps": r, "sent_rps": r, "goodput_rps": min(r, 40.0)} for r in (10.0, 40.0, 80.0)
    ]
    capacity = {
        "stages": stages,
        "knee_rps": 40.0,
        "cost_at_knee": {
            "priced_as": "aws g5.xlarge on-demand",
            "hourly_usd": 1.006,
            "per_1m_output_tokens_usd": 0.21,
            "per_1k_requests_usd": 0.0068,
        },
    }
    page = render_html(summary(capacity=capacity, held=True), SAMPLES, "held")
    assert page.count("<svg") == 3 and "knee 40 req/s" in page
    assert "<b>$0.21</b> per 1M output tokens" in page
    assert 'class="verdict held"' in page
