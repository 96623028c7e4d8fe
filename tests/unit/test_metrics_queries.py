"""PromQL templates render strictly and quote label values as PromQL strings."""

from __future__ import annotations

import pytest

from inferops.metrics.queries import (
    LATENCY_QUANTILE,
    QueryTemplate,
    QueryTemplateError,
    label_matchers,
    promql_string,
    range_duration,
    window_queries,
)


def test_render_fills_every_placeholder() -> None:
    template = QueryTemplate("t", "sum(increase(x{$matchers}[$window]))")

    assert template.render({"matchers": 'a="b"', "window": "30s", "unused": "?"}) == (
        'sum(increase(x{a="b"}[30s]))'
    )


def test_render_lists_every_missing_key() -> None:
    with pytest.raises(QueryTemplateError, match=r"missing values for quantile, window"):
        LATENCY_QUANTILE.render({"matchers": 'a="b"'})


def test_malformed_placeholder_is_rejected_when_defined() -> None:
    with pytest.raises(QueryTemplateError, match="malformed placeholder"):
        QueryTemplate("bad", "rate(x[$ 5m])")


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("abc123", '"abc123"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("two\nlines", r'"two\nlines"'),
        ("café", '"café"'),
    ],
)
def test_label_values_are_escaped_as_promql_strings(value: str, literal: str) -> None:
    assert promql_string(value) == literal


def test_label_matchers_keep_order_and_escape_values() -> None:
    rendered = label_matchers({"env": "local", "version": 'x"} or vector(1) #'})

    assert rendered == r'env="local",version="x\"} or vector(1) #"'


def test_label_names_are_validated() -> None:
    with pytest.raises(QueryTemplateError, match="not a valid Prometheus label name"):
        label_matchers({"track-name": "canary"})


@pytest.mark.parametrize(
    ("seconds", "rendered"), [(30, "30s"), (29.2, "30s"), (0.2, "1s"), (300.0, "300s")]
)
def test_windows_round_up_to_whole_seconds(seconds: float, rendered: str) -> None:
    assert range_duration(seconds) == rendered


@pytest.mark.parametrize("seconds", [0, -5, float("nan"), float("inf")])
def test_windows_must_be_positive_and_finite(seconds: float) -> None:
    with pytest.raises(QueryTemplateError, match="positive number of seconds"):
        range_duration(seconds)


def test_window_queries_cover_every_figure_for_the_chat_route() -> None:
    queries = window_queries({"env": "local", "track": "canary", "version": "abc123"}, 30)

    matchers = 'route="/v1/chat/completions",env="local",track="canary",version="abc123"'
    assert queries == {
        "requests": f"sum(increase(inferops_requests_total{{{matchers}}}[30s]))",
        "errors": f'sum(increase(inferops_requests_total{{{matchers},status=~"5.."}}[30s]))',
        "latency_p50_s": "histogram_quantile(0.5, sum by (le) (increase("
        f'inferops_request_duration_seconds_bucket{{{matchers},status!~"5.."}}[30s])))',
        "latency_p95_s": "histogram_quantile(0.95, sum by (le) (increase("
        f'inferops_request_duration_seconds_bucket{{{matchers},status!~"5.."}}[30s])))',
        "latency_p99_s": "histogram_quantile(0.99, sum by (le) (increase("
        f'inferops_request_duration_seconds_bucket{{{matchers},status!~"5.."}}[30s])))',
        "ttft_p95_s": "histogram_quantile(0.95, sum by (le) (increase("
        f"inferops_time_to_first_token_seconds_bucket{{{matchers}}}[30s])))",
        "output_tokens": f"sum(increase(inferops_output_tokens_total{{{matchers}}}[30s]))",
        "cost_usd": f"sum(increase(inferops_cost_usd_total{{{matchers}}}[30s]))",
    }
