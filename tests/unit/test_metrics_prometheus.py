"""PrometheusProvider reads Prometheus' documented HTTP API answers correctly.

The response bodies below are shaped as the API documentation shows them
(``/api/v1/query``: a ``status``, a ``data`` object with ``resultType`` and
``result``, sample values as strings; errors with ``errorType`` and ``error``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from inferops.metrics import (
    MultipleValuesReturned,
    NoValuesFound,
    PrometheusProvider,
    ProviderUnavailable,
    QueryError,
)

BASE_URL = "http://prometheus.test:9090"
Handler = Callable[[httpx.Request], httpx.Response]


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    """A successful instant-vector answer."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": labels, "value": [1435781451.781, value]} for labels, value in samples
            ],
        },
    }


def error(error_type: str, message: str) -> dict[str, Any]:
    """An error answer."""
    return {"status": "error", "errorType": error_type, "error": message}


@pytest.fixture
def provider_with() -> Iterator[Callable[[Handler], PrometheusProvider]]:
    clients: list[httpx.Client] = []

    def build(handler: Handler) -> PrometheusProvider:
        client = httpx.Client(transport=httpx.MockTransport(handler))
        clients.append(client)
        return PrometheusProvider(BASE_URL, client=client)

    yield build
    for client in clients:
        client.close()


def answer(status: int, body: dict[str, Any]) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def test_single_sample_is_returned_and_sent_with_query_and_time(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vector(({"job": "inferops"}, "1.5")))

    value = provider_with(handler).run_query("sum(up)", at=1700000000.25)

    assert value == 1.5
    assert seen[0].method == "GET"
    assert seen[0].url.path == "/api/v1/query"
    assert seen[0].url.params["query"] == "sum(up)"
    assert seen[0].url.params["time"] == "1700000000.250"


def test_scalar_result_is_a_value(provider_with: Callable[[Handler], PrometheusProvider]) -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1435781451.781, "1"]}}

    assert provider_with(answer(200, body)).run_query("vector(1)") == 1.0
    assert provider_with(answer(200, body)).is_online()


def test_nan_sample_parses_as_nan(provider_with: Callable[[Handler], PrometheusProvider]) -> None:
    value = provider_with(answer(200, vector(({}, "NaN")))).run_query("q")

    assert value != value


def test_empty_vector_raises_no_values_found(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    with pytest.raises(NoValuesFound, match="matched no series"):
        provider_with(answer(200, vector())).run_query("sum(nothing)")


def test_several_series_raise_multiple_values_returned(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    body = vector(({"track": "stable"}, "1"), ({"track": "canary"}, "2"))

    with pytest.raises(MultipleValuesReturned, match=r"2 series.*canary.*aggregate"):
        provider_with(answer(200, body)).run_query("up")


def test_bad_promql_is_a_permanent_query_error(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    body = error("bad_data", 'invalid parameter "query": 1:5: parse error: unexpected ")"')

    with pytest.raises(QueryError, match=r"bad_data.*parse error") as caught:
        provider_with(answer(400, body)).run_query("sum())")

    assert not caught.value.transient
    assert caught.value.query == "sum())"


def test_execution_error_is_a_permanent_query_error(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    body = error("execution", "found duplicate series for the match group")

    with pytest.raises(QueryError, match="execution"):
        provider_with(answer(422, body)).run_query("a / on() b")


def test_query_timeout_is_transient(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    body = error("timeout", "query timed out in expression evaluation")

    with pytest.raises(ProviderUnavailable, match="timed out") as caught:
        provider_with(answer(503, body)).run_query("q")

    assert caught.value.transient


def test_server_error_without_json_is_transient(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    provider = provider_with(lambda request: httpx.Response(503, text="Service Unavailable"))

    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        provider.run_query("q")
    assert not provider.is_online()


def test_connection_refused_is_transient(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    provider = provider_with(refuse)

    with pytest.raises(ProviderUnavailable, match=r"did not answer.*Connection refused"):
        provider.run_query("q")
    assert not provider.is_online()


def test_a_url_that_is_not_prometheus_is_a_query_error(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    provider = provider_with(lambda request: httpx.Response(404, text="404 page not found"))

    with pytest.raises(QueryError, match=r"HTTP 404.*points at Prometheus"):
        provider.run_query("q")


def test_range_results_are_refused(provider_with: Callable[[Handler], PrometheusProvider]) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}

    with pytest.raises(QueryError, match="'matrix' result"):
        provider_with(answer(200, body)).run_query("up[5m]")


def test_window_stats_reads_every_figure_at_one_time(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    values = {
        "histogram_quantile(0.5,": "0.2",
        "histogram_quantile(0.95, sum by (le) (increase(inferops_request_duration": "0.8",
        "histogram_quantile(0.99,": "1.9",
        "inferops_time_to_first_token": "0.15",
        'status=~"5.."': "3",
        "inferops_requests_total": "120",
        "inferops_output_tokens_total": "9000",
        "inferops_cost_usd_total": "0.042",
    }
    times: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        times.add(request.url.params["time"])
        value = next(v for key, v in values.items() if key in query)
        return httpx.Response(200, json=vector(({}, value)))

    stats = provider_with(handler).window_stats(
        {"env": "local", "track": "canary", "version": "abc123"}, 30, at=1700000000
    )

    assert stats.track == "canary"
    assert stats.window_s == 30
    assert (stats.requests, stats.errors) == (120, 3)
    assert stats.error_rate == pytest.approx(0.025)
    assert (stats.latency_p50_s, stats.latency_p95_s, stats.latency_p99_s) == (0.2, 0.8, 1.9)
    assert stats.ttft_p95_s == 0.15
    assert (stats.output_tokens, stats.cost_usd) == (9000, 0.042)
    assert times == {"1700000000.000"}


def test_window_stats_without_traffic_has_zero_requests_and_no_quantiles(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    # Without traffic, sum(increase(...)) has no series and histogram_quantile
    # over all-zero buckets is NaN.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["query"].startswith("histogram_quantile"):
            return httpx.Response(200, json=vector(({}, "NaN")))
        return httpx.Response(200, json=vector())

    stats = provider_with(handler).window_stats({"track": "stable"}, 60, at=1700000000)

    assert (stats.requests, stats.errors, stats.error_rate) == (0, 0, None)
    assert stats.latency_p50_s is None
    assert stats.latency_p95_s is None
    assert stats.latency_p99_s is None
    assert stats.ttft_p95_s is None
    assert stats.output_tokens is None
    assert stats.cost_usd is None


def test_window_stats_passes_outages_on(
    provider_with: Callable[[Handler], PrometheusProvider],
) -> None:
    provider = provider_with(lambda request: httpx.Response(502, text="Bad Gateway"))

    with pytest.raises(ProviderUnavailable):
        provider.window_stats({"track": "canary"}, 30)
