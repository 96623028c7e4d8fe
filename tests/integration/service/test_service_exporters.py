"""Telemetry against real servers on this machine: CloudWatch (moto), OTLP/HTTP, DogStatsD.

CloudWatch is moto's in server mode, reached by a real boto3 client over HTTP; the pushed
values are read back with ``get_metric_statistics`` and ``list_metrics``. The OTLP
collector is a local HTTP server that decodes the protobuf it receives. DogStatsD is a UDP
socket on the loopback interface.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from inferops_service.config import ServiceSettings
from inferops_service.metrics import CHAT_ROUTE, ServiceMetrics
from inferops_service.telemetry import Telemetry
from inferops_service.telemetry.exporters.base import Identity
from inferops_service.telemetry.exporters.cloudwatch import CloudWatchExporter
from inferops_service.telemetry.exporters.datadog import DogStatsdExporter
from inferops_service.telemetry.pusher import MetricPusher
from inferops_service.telemetry.readings import read, summarise
from moto.server import ThreadedMotoServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

NAMESPACE = "Inferops/IntegrationTest"
IDENTITY = Identity("sim-llama", "1.2.3", "canary")
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def cloudwatch(endpoint: str) -> Any:
    return boto3.client(
        "cloudwatch",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


def dims(route: str | None = CHAT_ROUTE, **extra: str) -> list[dict[str, str]]:
    found = [
        {"Name": "Model", "Value": "sim-llama"},
        {"Name": "Version", "Value": "1.2.3"},
        {"Name": "Track", "Value": "canary"},
    ]
    if route is not None:
        found.append({"Name": "Route", "Value": route})
    found.extend({"Name": k, "Value": v} for k, v in extra.items())
    return found


def statistics(client: Any, name: str, dimensions: list[dict[str, str]]) -> dict[str, float]:
    now = datetime.now(UTC)
    answer = client.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=3600,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum"],
    )
    points = answer["Datapoints"]
    assert points, f"no {name} data for {dimensions}"
    return {
        "Sum": sum(p["Sum"] for p in points),
        "SampleCount": sum(p["SampleCount"] for p in points),
        "Minimum": min(p["Minimum"] for p in points),
        "Maximum": max(p["Maximum"] for p in points),
    }


def test_deltas_pushed_to_cloudwatch_read_back_with_their_dimensions(moto_endpoint: str) -> None:
    metrics = ServiceMetrics()
    metrics.enable_cache(("exact",))
    metrics.observe_request(CHAT_ROUTE, 200, 5.0)  # before the start: not pushed
    exporter = CloudWatchExporter(lambda: cloudwatch(moto_endpoint), NAMESPACE, IDENTITY)
    pusher = MetricPusher(metrics.registry, [exporter], interval_s=3600)

    async def main() -> None:
        await pusher.start()
        for seconds, status in ((0.1, 200), (0.12, 200), (0.7, 500)):
            metrics.observe_request(CHAT_ROUTE, status, seconds)
        for _ in range(2):
            metrics.observe_completion(
                CHAT_ROUTE,
                ttft_seconds=0.05,
                tpot_seconds=0.004,
                input_tokens=10,
                output_tokens=20,
                cost_usd=0.25,
            )
        metrics.count_cache("exact", "hit")
        await pusher.push()
        metrics.observe_request(CHAT_ROUTE, 200, 0.1)
        await pusher.stop()  # the final push carries the last request

    asyncio.run(main())
    client = cloudwatch(moto_endpoint)
    requests = statistics(client, "Requests", dims())
    assert requests["Sum"] == 4
    assert requests["SampleCount"] == 2  # one datum per push
    assert statistics(client, "Errors", dims())["Sum"] == 1
    assert statistics(client, "InputTokens", dims())["Sum"] == 20
    assert statistics(client, "OutputTokens", dims())["Sum"] == 40
    assert statistics(client, "CostUsd", dims())["Sum"] == pytest.approx(0.5)
    assert statistics(client, "CacheHits", dims(CacheKind="exact"))["Sum"] == 1

    latency = statistics(client, "RequestDurationSeconds", dims())
    assert latency["SampleCount"] == 4
    assert latency["Minimum"] == pytest.approx(0.0875)  # midpoint of (0.075, 0.1]
    assert latency["Maximum"] == pytest.approx(0.725)  # midpoint of (0.65, 0.8]

    listed = client.list_metrics(Namespace=NAMESPACE, MetricName="Requests")["Metrics"]
    assert {tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in listed} == {
        tuple(sorted((d["Name"], d["Value"]) for d in dims()))
    }
    names = {m["MetricName"] for m in client.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert {"InflightRequests", "TimeToFirstTokenSeconds", "CacheSavedUsd"} <= names


def test_an_unreachable_cloudwatch_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    exporter = CloudWatchExporter(lambda: cloudwatch(nowhere), NAMESPACE, IDENTITY)
    metrics = ServiceMetrics()
    pusher = MetricPusher(metrics.registry, [exporter], interval_s=3600)

    async def main() -> None:
        await pusher.start()
        await pusher.push()
        await pusher.push()
        await pusher.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    (warning,) = caplog.records
    assert "CloudWatch PutMetricData to namespace 'Inferops/IntegrationTest' failed" in (
        warning.getMessage()
    )


class Collector:
    """A local OTLP/HTTP endpoint that keeps what is posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.received = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.posts.append((self.path, dict(self.headers), body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                collector.received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()


def test_spans_reach_an_otlp_collector_as_protobuf(collector: Collector) -> None:
    settings = ServiceSettings.model_validate(
        {
            "identity": {"version": "1.2.3", "track": "canary"},
            "telemetry": {
                "otlp_endpoint": collector.url,
                "otlp_headers": {"x-collector-token": "t-1"},
            },
        }
    )
    telemetry = Telemetry(settings, ServiceMetrics())
    assert telemetry.spans is not None
    scope = {"type": "http", "method": "POST", "path": CHAT_ROUTE, "headers": []}
    telemetry.spans.start(scope).end(200, CHAT_ROUTE)
    asyncio.run(telemetry.stop())  # shutting down flushes the batch processor

    assert collector.received.is_set()
    (path, headers, body) = collector.posts[0]
    assert path == "/v1/traces"
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["content-type"] == "application/x-protobuf"
    assert lowered["x-collector-token"] == "t-1"
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "inferops-service"
    assert resource["service.version"] == "1.2.3"
    assert resource["inferops.track"] == "canary"
    (span,) = [s for scope_spans in resource_spans.scope_spans for s in scope_spans.spans]
    assert span.name == f"POST {CHAT_ROUTE}"
    assert span.kind == ProtoSpan.SPAN_KIND_SERVER
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["http.route"].string_value == CHAT_ROUTE


def test_dogstatsd_datagrams_reach_a_udp_listener() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(10)
        port = listener.getsockname()[1]
        metrics = ServiceMetrics()
        start = read(metrics.registry, time.time())
        metrics.observe_request(CHAT_ROUTE, 200, 0.1)
        batch = summarise(start, start, read(metrics.registry, time.time()))

        async def main() -> None:
            exporter = DogStatsdExporter("127.0.0.1", port, IDENTITY)
            await exporter.export(batch)
            await exporter.close()

        asyncio.run(main())
        lines = listener.recv(65536).decode().split("\n")
    tags = f"model:sim-llama,version:1.2.3,track:canary,route:{CHAT_ROUTE}"
    assert f"inferops.requests:1|c|#{tags}" in lines
    assert f"inferops.request_duration_seconds.avg:0.1|g|#{tags}" in lines
