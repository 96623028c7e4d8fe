"""Cloud Monitoring exporter, tested at the HTTP boundary.

The Cloud Monitoring API cannot be reached from here, so ``httpx.MockTransport`` answers as
the API documents: ``200 {}`` when the series are written, and an
``{"error": {"code", "message", "status"}}`` body when they are refused. The tests assert
what is sent (path, headers, metric types, kinds, intervals, labels) and how failures read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from inferops_service.config import GcpSettings
from inferops_service.metrics import CHAT_ROUTE, LATENCY_BUCKETS, ServiceMetrics
from inferops_service.telemetry.exporters.base import ExportError, Identity
from inferops_service.telemetry.exporters.gcp import GcpExporter, rfc3339
from inferops_service.telemetry.readings import Batch, Kind, Point, read, summarise

SETTINGS = GcpSettings(enabled=True, project_id="my-proj", location="europe-west4")
IDENTITY = Identity("sim-llama", "1.2.3", "canary")
START, END = 1_800_000_000.0, 1_800_000_060.5


class Api:
    """Records requests and answers with a queue of (status, body)."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers) or [(200, {})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(status, json=body)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


async def fake_token() -> str:
    return "ya29.fake-token"


def exporter(api: Api) -> GcpExporter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(api))
    return GcpExporter(client, fake_token, SETTINGS, IDENTITY, task_id="pod-7")


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
    metrics.inflight.inc()
    return summarise(start, start, read(metrics.registry, END))


def series(body: dict[str, Any], metric: str) -> dict[str, Any]:
    (found,) = [
        s
        for s in body["timeSeries"]
        if s["metric"]["type"] == f"custom.googleapis.com/inferops/{metric}"
        and s["metric"]["labels"].get("route", CHAT_ROUTE) == CHAT_ROUTE
    ]
    return found


def test_series_are_written_to_the_project_with_a_bearer_token() -> None:
    api = Api()

    async def main() -> None:
        gcp = exporter(api)
        await gcp.export(filled_batch())
        await gcp.close()

    asyncio.run(main())
    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == "https://monitoring.googleapis.com/v3/projects/my-proj/timeSeries"
    assert request.headers["authorization"] == "Bearer ya29.fake-token"
    assert request.headers["content-type"] == "application/json"

    body = api.bodies()[0]
    requests = series(body, "requests")
    assert requests["metric"]["labels"] == {
        "model": "sim-llama",
        "version": "1.2.3",
        "track": "canary",
        "route": CHAT_ROUTE,
    }
    assert requests["resource"] == {
        "type": "generic_task",
        "labels": {
            "project_id": "my-proj",
            "location": "europe-west4",
            "namespace": "inferops",
            "job": "inferops-service",
            "task_id": "pod-7",
        },
    }
    assert (requests["metricKind"], requests["valueType"], requests["unit"]) == (
        "CUMULATIVE",
        "INT64",
        "1",
    )
    (only,) = requests["points"]
    assert only == {
        "interval": {"startTime": "2027-01-15T08:00:00.000000Z", "endTime": rfc3339(END)},
        "value": {"int64Value": "3"},
    }
    assert rfc3339(END) == "2027-01-15T08:01:00.500000Z"
    assert series(body, "errors")["points"][0]["value"] == {"int64Value": "1"}
    assert series(body, "output_tokens")["points"][0]["value"] == {"int64Value": "20"}
    cost = series(body, "cost_usd")
    assert (cost["valueType"], cost["unit"]) == ("DOUBLE", "{USD}")
    assert cost["points"][0]["value"] == {"doubleValue": 0.25}


def test_latency_is_a_cumulative_distribution_with_the_prometheus_buckets() -> None:
    api = Api()
    asyncio.run(exporter(api).export(filled_batch()))
    latency = series(api.bodies()[0], "request_duration_seconds")
    assert (latency["metricKind"], latency["valueType"], latency["unit"]) == (
        "CUMULATIVE",
        "DISTRIBUTION",
        "s",
    )
    value = latency["points"][0]["value"]["distributionValue"]
    bounds = value["bucketOptions"]["explicitBuckets"]["bounds"]
    assert bounds == list(LATENCY_BUCKETS)
    counts = [int(c) for c in value["bucketCounts"]]
    assert len(counts) == len(bounds) + 1
    assert value["count"] == "3"
    assert value["mean"] == pytest.approx(0.92 / 3)
    assert value["sumOfSquaredDeviation"] > 0
    # 0.1 in (0.075, 0.1], 0.12 in (0.1, 0.15], 0.7 in (0.65, 0.8].
    assert {bounds[i]: c for i, c in enumerate(counts) if c} == {0.1: 1, 0.15: 1, 0.8: 1}


def test_the_gauge_has_only_an_end_time() -> None:
    api = Api()
    asyncio.run(exporter(api).export(filled_batch()))
    inflight = series(api.bodies()[0], "inflight_requests")
    assert (inflight["metricKind"], inflight["valueType"]) == ("GAUGE", "DOUBLE")
    assert inflight["points"][0] == {
        "interval": {"endTime": rfc3339(END)},
        "value": {"doubleValue": 1.0},
    }


def test_at_most_200_series_go_in_one_call() -> None:
    points = tuple(
        Point("requests", Kind.COUNT, "count", (("route", f"/r{i}"),), 1, 1) for i in range(450)
    )
    api = Api()
    asyncio.run(exporter(api).export(Batch(START, START, END, points)))
    assert [len(body["timeSeries"]) for body in api.bodies()] == [200, 200, 50]


def test_a_refusal_raises_with_the_apis_error() -> None:
    api = Api(
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Field timeSeries[0].points[0].interval had an invalid value",
                    "status": "INVALID_ARGUMENT",
                }
            },
        )
    )
    with pytest.raises(ExportError) as error:
        asyncio.run(exporter(api).export(filled_batch()))
    message = str(error.value)
    assert "Cloud Monitoring refused" in message
    assert "project my-proj" in message
    assert "400 INVALID_ARGUMENT: Field timeSeries[0].points[0].interval" in message


def test_a_permission_error_reads_as_such() -> None:
    api = Api(
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Permission monitoring.timeSeries.create denied",
                    "status": "PERMISSION_DENIED",
                }
            },
        )
    )
    with pytest.raises(ExportError, match="403 PERMISSION_DENIED: Permission monitoring"):
        asyncio.run(exporter(api).export(filled_batch()))


def test_no_credentials_is_an_export_error_saying_what_to_set_up() -> None:
    async def no_token() -> str:
        raise RuntimeError("Could not automatically determine credentials")

    api = Api()
    gcp = GcpExporter(
        httpx.AsyncClient(transport=httpx.MockTransport(api)), no_token, SETTINGS, IDENTITY, "t"
    )
    with pytest.raises(ExportError, match=r"no Google credentials.*Application Default"):
        asyncio.run(gcp.export(filled_batch()))
    assert api.requests == []


def test_a_push_within_5_seconds_of_the_last_is_skipped() -> None:
    api = Api()
    batch = filled_batch()
    soon = Batch(batch.start, batch.end, batch.end + 2, batch.points)
    later = Batch(batch.start, batch.end, batch.end + 60, batch.points)

    async def main() -> None:
        gcp = exporter(api)
        await gcp.export(batch)
        await gcp.export(soon)
        await gcp.export(later)

    asyncio.run(main())
    ends = [body["timeSeries"][0]["points"][0]["interval"]["endTime"] for body in api.bodies()]
    assert ends == [rfc3339(batch.end), rfc3339(batch.end + 60)]
    # The start time stays the first reading's, as CUMULATIVE series require.
    starts = {body["timeSeries"][0]["points"][0]["interval"]["startTime"] for body in api.bodies()}
    assert starts == {rfc3339(START)}
