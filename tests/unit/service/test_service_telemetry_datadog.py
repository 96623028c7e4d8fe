"""Datadog exporter, tested at the HTTP boundary (and the DogStatsD wire format).

The Datadog API cannot be reached from here, so ``httpx.MockTransport`` answers as the
metrics API v2 documents: ``202 {"errors": []}`` when the series are accepted and
``403 {"errors": ["Forbidden"]}`` for a bad key. The tests assert the request (URL, the
``DD-API-KEY`` header, metric names, types, intervals, points, tags, resources) and how a
refusal reads and is carried into the next push.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from inferops_service.metrics import CHAT_ROUTE, ServiceMetrics
from inferops_service.telemetry.exporters.base import ExportError, Identity
from inferops_service.telemetry.exporters.datadog import (
    MAX_DATAGRAM_BYTES,
    DatadogApiExporter,
    datagrams,
    statsd_lines,
)
from inferops_service.telemetry.pusher import MetricPusher
from inferops_service.telemetry.readings import Batch, read, summarise

IDENTITY = Identity("sim-llama", "1.2.3", "canary")
TAGS = ["model:sim-llama", "version:1.2.3", "track:canary", f"route:{CHAT_ROUTE}"]
START, END = 1_800_000_000.0, 1_800_000_060.0
ACCEPTED = (202, {"errors": []})
FORBIDDEN = (403, {"errors": ["Forbidden"]})


class Api:
    """Records requests and answers with a queue of (status, body)."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(status, json=body)

    def series(self, index: int = 0) -> dict[str, dict[str, Any]]:
        body = json.loads(self.requests[index].content)
        return {(s["metric"]): s for s in body["series"] if f"route:{CHAT_ROUTE}" in s["tags"]}


def exporter(api: Api) -> DatadogApiExporter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(api))
    return DatadogApiExporter(client, "dd-key-123", "datadoghq.eu", IDENTITY, host="pod-7")


def filled_batch() -> Batch:
    metrics = ServiceMetrics()
    start = read(metrics.registry, START)
    for seconds, status in ((0.1, 200), (0.12, 200), (0.7, 500)):
        metrics.observe_request(CHAT_ROUTE, status, seconds)
    metrics.observe_completion(
        CHAT_ROUTE,
        ttft_seconds=0.05,
        tpot_seconds=None,
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.25,
    )
    return summarise(start, start, read(metrics.registry, END))


def test_series_go_to_the_sites_v2_endpoint_with_the_api_key() -> None:
    api = Api(ACCEPTED)
    asyncio.run(exporter(api).export(filled_batch()))
    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.datadoghq.eu/api/v2/series"
    assert request.headers["dd-api-key"] == "dd-key-123"
    assert request.headers["content-type"] == "application/json"

    series = api.series()
    assert series["inferops.requests"] == {
        "metric": "inferops.requests",
        "type": 1,
        "interval": 60,
        "points": [{"timestamp": 1_800_000_060, "value": 3.0}],
        "tags": TAGS,
        "resources": [{"name": "pod-7", "type": "host"}],
    }
    assert series["inferops.errors"]["points"][0]["value"] == 1
    assert series["inferops.output_tokens"]["points"][0]["value"] == 20
    assert series["inferops.cost_usd"]["points"][0]["value"] == 0.25


def test_latency_becomes_percentile_and_average_gauges() -> None:
    api = Api(ACCEPTED)
    asyncio.run(exporter(api).export(filled_batch()))
    series = api.series()
    name = "inferops.request_duration_seconds"
    for suffix in ("p50", "p95", "p99", "avg"):
        entry = series[f"{name}.{suffix}"]
        assert entry["type"] == 3
        assert "interval" not in entry
    assert series[f"{name}.avg"]["points"][0]["value"] == pytest.approx(0.92 / 3)
    # Rank 1.5 of 3 lies halfway through the (0.1, 0.15] bucket.
    assert series[f"{name}.p50"]["points"][0]["value"] == pytest.approx(0.125)
    assert 0.65 < series[f"{name}.p99"]["points"][0]["value"] <= 0.8
    # No TTFT gauges for a route without completions in the window.
    assert not any(k.endswith(".p50") for k in series if "models" in k)


def test_a_bad_key_raises_with_the_apis_errors_and_a_hint() -> None:
    api = Api(FORBIDDEN)
    with pytest.raises(ExportError) as error:
        asyncio.run(exporter(api).export(filled_batch()))
    assert "403 Forbidden" in str(error.value)
    assert "INFEROPS_TELEMETRY_DATADOG_API_KEY" in str(error.value)


def test_an_unreachable_api_is_an_export_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    dd = DatadogApiExporter(client, "k", "datadoghq.com", IDENTITY, host="h")
    with pytest.raises(ExportError, match=r"Datadog unreachable at https://api\.datadoghq\.com"):
        asyncio.run(dd.export(filled_batch()))


def test_counts_refused_once_are_sent_with_the_next_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = Api(FORBIDDEN, FORBIDDEN, ACCEPTED)
    metrics = ServiceMetrics()
    clock = iter([START, START + 60, START + 120, START + 180, START + 240])
    pusher = MetricPusher(metrics.registry, [exporter(api)], 60, clock=lambda: next(clock))

    async def main() -> None:
        await pusher.start()
        for _ in range(3):
            metrics.observe_request(CHAT_ROUTE, 200, 0.1)
            await pusher.push()
        await pusher.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert len(api.requests) == 4  # three pushes and the final one at stop
    accepted = api.series(2)["inferops.requests"]
    assert accepted["points"] == [{"timestamp": int(START + 180), "value": 3.0}]
    assert accepted["interval"] == 180  # the whole span since the last accepted push
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "pushing metrics to datadog failed"
    ]


def test_dogstatsd_lines_carry_types_and_tags() -> None:
    lines = statsd_lines(filled_batch(), IDENTITY)
    tags = ",".join(TAGS)
    assert f"inferops.requests:3|c|#{tags}" in lines
    assert f"inferops.errors:1|c|#{tags}" in lines
    assert f"inferops.request_duration_seconds.p50:0.125|g|#{tags}" in lines
    assert "inferops.inflight_requests:0|g|#model:sim-llama,version:1.2.3,track:canary" in lines


def test_dogstatsd_lines_are_packed_into_datagrams_that_fit_the_mtu() -> None:
    lines = [f"inferops.metric_{i}:{i}|c|#route:/v1/chat/completions" for i in range(200)]
    packed = datagrams(lines)
    assert len(packed) > 1
    assert all(len(d) <= MAX_DATAGRAM_BYTES for d in packed)
    assert b"\n".join(packed).decode().split("\n") == lines
