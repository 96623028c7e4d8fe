"""Server spans through the per-request hook, recorded by an in-memory exporter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.telemetry import Telemetry
from inferops_service.telemetry.logs import JsonFormatter
from inferops_service.telemetry.tracing import RequestSpans, TracingMiddleware, traces_url
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

CHAT = "/v1/chat/completions"
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
log = logging.getLogger("test.handler")


@dataclass
class Traced:
    client: TestClient
    telemetry: Telemetry
    exporter: InMemorySpanExporter
    logs: io.StringIO

    def spans(self) -> list[ReadableSpan]:
        assert self.telemetry.tracer_provider is not None
        self.telemetry.tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())


async def chat(request: Request) -> Response:
    log.info("answering")
    return PlainTextResponse("ok")


async def unavailable(request: Request) -> Response:
    return PlainTextResponse("busy", status_code=503)


async def crash(request: Request) -> Response:
    raise RuntimeError("backend exploded")


def traced_app(settings: ServiceSettings) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(settings, ServiceMetrics(), span_exporter=exporter)
    assert telemetry.spans is not None
    app = Starlette(
        routes=[
            Route(CHAT, chat, methods=["POST"]),
            Route("/busy/{n}", unavailable),
            Route("/crash", crash),
        ],
        middleware=[Middleware(TracingMiddleware, spans=telemetry.spans)],
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Traced(client, telemetry, exporter, stream)
    finally:
        log.removeHandler(handler)
        telemetry.tracer_provider.shutdown()  # type: ignore[union-attr]


@pytest.fixture
def traced() -> Iterator[Traced]:
    settings = ServiceSettings.model_validate({"identity": {"version": "1.2.3", "track": "canary"}})
    yield from traced_app(settings)


@pytest.fixture
def xray() -> Iterator[Traced]:
    yield from traced_app(ServiceSettings.model_validate({"telemetry": {"xray": True}}))


def test_a_request_becomes_a_server_span_named_after_its_route(traced: Traced) -> None:
    response = traced.client.post(CHAT, content=b"{}", headers={"user-agent": "probe/1"})
    assert response.status_code == 200

    (span,) = traced.spans()
    assert span.name == f"POST {CHAT}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "http.request.method": "POST",
        "url.path": CHAT,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "server.address": "testserver",
        "server.port": 80,
        "client.address": "testclient",
        "user_agent.original": "probe/1",
        "http.route": CHAT,
        "http.response.status_code": 200,
    }
    assert span.parent is None
    resource = dict(span.resource.attributes)
    assert resource["service.name"] == "inferops-service"
    assert resource["service.version"] == "1.2.3"
    assert resource["inferops.track"] == "canary"


def test_the_route_template_names_the_span_not_the_path(traced: Traced) -> None:
    traced.client.get("/busy/42")
    (span,) = traced.spans()
    assert span.name == "GET /busy/{n}"
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/busy/42"


def test_a_5xx_answer_marks_the_span_as_an_error(traced: Traced) -> None:
    traced.client.get("/busy/1")
    (span,) = traced.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 503
    assert span.attributes["error.type"] == "503"


def test_an_exception_is_recorded_on_the_span(traced: Traced) -> None:
    assert traced.client.get("/crash").status_code == 500
    (span,) = traced.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]


def test_client_errors_and_unknown_urls_are_not_errors(traced: Traced) -> None:
    assert traced.client.get("/nowhere").status_code == 404
    (span,) = traced.spans()
    assert span.name == "GET"  # no route matched: the method alone, as the conventions ask
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert "http.route" not in span.attributes


def test_an_incoming_traceparent_is_the_parent(traced: Traced) -> None:
    traceparent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
    traced.client.post(CHAT, content=b"{}", headers={"traceparent": traceparent})
    (span,) = traced.spans()
    assert span.parent is not None
    assert span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == PARENT_SPAN
    assert f"{span.context.trace_id:032x}" == PARENT_TRACE


def test_an_unsampled_parent_is_followed(traced: Traced) -> None:
    traceparent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-00"
    traced.client.post(CHAT, content=b"{}", headers={"traceparent": traceparent})
    assert traced.spans() == []


def test_logs_written_while_serving_carry_the_request_span(traced: Traced) -> None:
    traced.client.post(CHAT, content=b"{}")
    (span,) = traced.spans()
    (line,) = [json.loads(x) for x in traced.logs.getvalue().splitlines()]
    assert line["message"] == "answering"
    assert line["trace_id"] == f"{span.context.trace_id:032x}"
    assert line["span_id"] == f"{span.context.span_id:016x}"
    # And the context was restored after the request.
    assert not trace.get_current_span().get_span_context().is_valid


def test_xray_ids_and_the_xray_header(xray: Traced) -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    xray.client.post(CHAT, content=b"{}", headers={"x-amzn-trace-id": header})
    xray.client.post(CHAT, content=b"{}")
    parented, fresh = xray.spans()
    assert parented.parent is not None
    assert f"{parented.context.trace_id:032x}" == "5759e988bd862e3fe1be46a994272793"
    assert f"{parented.parent.span_id:016x}" == "53995c3f42cd8ad8"
    # X-Ray ids start with the time in seconds: the span's own start, within a minute.
    assert fresh.start_time is not None
    epoch = int(f"{fresh.context.trace_id:032x}"[:8], 16)
    assert abs(epoch - fresh.start_time // 1_000_000_000) < 60


def test_traceparent_wins_over_the_xray_header(xray: Traced) -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    traceparent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
    xray.client.post(
        CHAT, content=b"{}", headers={"x-amzn-trace-id": header, "traceparent": traceparent}
    )
    (span,) = xray.spans()
    assert f"{span.context.trace_id:032x}" == PARENT_TRACE


def test_the_hook_works_without_the_middleware() -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(ServiceSettings(), ServiceMetrics(), span_exporter=exporter)
    spans = telemetry.spans
    assert isinstance(spans, RequestSpans)
    scope = {"type": "http", "method": "POST", "path": CHAT, "headers": []}
    span = spans.start(scope)
    assert trace.get_current_span() is span.span
    span.end(500, CHAT)
    assert not trace.get_current_span().get_span_context().is_valid
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.force_flush()
    (finished,) = exporter.get_finished_spans()
    assert (finished.name, finished.status.status_code) == (f"POST {CHAT}", StatusCode.ERROR)
    telemetry.tracer_provider.shutdown()


def test_the_sample_ratio_applies_to_new_traces() -> None:
    exporter = InMemorySpanExporter()
    settings = ServiceSettings.model_validate({"telemetry": {"sample_ratio": 0}})
    telemetry = Telemetry(settings, ServiceMetrics(), span_exporter=exporter)
    assert telemetry.spans is not None and telemetry.tracer_provider is not None
    telemetry.spans.start({"type": "http", "method": "GET", "path": "/", "headers": []}).end(
        200, None
    )
    telemetry.tracer_provider.force_flush()
    assert exporter.get_finished_spans() == ()
    telemetry.tracer_provider.shutdown()


def test_the_collector_url_gets_the_traces_path() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://c.example/v1/traces") == "https://c.example/v1/traces"
