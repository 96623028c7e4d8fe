"""Telemetry: what is pushed, how pushes fail, its settings, JSON logs, imports without extras."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from inferops_service.config import ConfigError, ServiceSettings, load_settings, to_yaml
from inferops_service.metrics import CHAT_ROUTE, ServiceMetrics
from inferops_service.telemetry import Telemetry, configure_logging
from inferops_service.telemetry.exporters import ExportError, create_exporter, enabled
from inferops_service.telemetry.exporters.cloudwatch import CloudWatchExporter, EmfExporter
from inferops_service.telemetry.exporters.datadog import DogStatsdExporter
from inferops_service.telemetry.logs import JsonFormatter
from inferops_service.telemetry.pusher import MetricPusher
from inferops_service.telemetry.readings import Batch, Histogram, Kind, Point, read, summarise
from opentelemetry.sdk.trace import TracerProvider

SERVICE_ROOT = Path(__file__).resolve().parents[3] / "service"


def completion(metrics: ServiceMetrics, tokens_in: int = 10, tokens_out: int = 20) -> None:
    metrics.observe_completion(
        CHAT_ROUTE,
        ttft_seconds=0.05,
        tpot_seconds=0.004,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=0.001,
    )


def point(batch: Batch, metric: str, **labels: str) -> Point:
    (found,) = [
        p
        for p in batch.points
        if p.metric == metric and all(dict(p.labels).get(k) == v for k, v in labels.items())
    ]
    return found


# --- readings: what each push carries ---------------------------------------------------


def test_counts_are_the_change_since_the_last_push_and_since_the_start() -> None:
    metrics = ServiceMetrics()
    metrics.observe_request(CHAT_ROUTE, 200, 0.1)  # before the start: never pushed
    start = read(metrics.registry, 100.0)
    metrics.observe_request(CHAT_ROUTE, 200, 0.1)
    metrics.observe_request(CHAT_ROUTE, 503, 0.3)
    metrics.observe_request("/v1/models", 404, 0.001)
    first = read(metrics.registry, 160.0)
    metrics.observe_request(CHAT_ROUTE, 500, 0.2)
    second = read(metrics.registry, 220.0)

    batch = summarise(start, first, second)
    assert (batch.start, batch.previous, batch.end) == (100.0, 160.0, 220.0)
    requests = point(batch, "requests", route=CHAT_ROUTE)
    assert (requests.kind, requests.delta, requests.total) == (Kind.COUNT, 1, 3)
    errors = point(batch, "errors", route=CHAT_ROUTE)
    assert (errors.delta, errors.total) == (1, 2)
    # A route with only client errors still has an errors series, at zero.
    assert point(batch, "errors", route="/v1/models").total == 0
    assert point(batch, "requests", route="/v1/models").total == 1


def test_latency_merges_statuses_and_keeps_the_buckets() -> None:
    metrics = ServiceMetrics()
    start = read(metrics.registry, 0.0)
    for seconds, status in ((0.1, 200), (0.12, 200), (0.7, 500)):
        metrics.observe_request(CHAT_ROUTE, status, seconds)
    batch = summarise(start, start, read(metrics.registry, 60.0))

    latency = point(batch, "request_duration_seconds", route=CHAT_ROUTE)
    assert latency.kind is Kind.DISTRIBUTION
    assert latency.distribution is not None
    assert latency.distribution.count == 3
    assert latency.distribution.sum == pytest.approx(0.92)
    assert latency.distribution.representatives() == [
        (pytest.approx(0.0875), 1),  # (0.075, 0.1]
        (pytest.approx(0.125), 1),  # (0.1, 0.15]
        (pytest.approx(0.725), 1),  # (0.65, 0.8]
    ]


def test_tokens_cost_cache_hits_and_inflight_are_pushed() -> None:
    metrics = ServiceMetrics()
    metrics.enable_cache(("exact",))
    start = read(metrics.registry, 0.0)
    completion(metrics, 10, 20)
    completion(metrics, 5, 7)
    metrics.count_cache("exact", "hit")
    metrics.count_cache("exact", "miss")
    metrics.count_cache_saved("exact", 0.5)
    metrics.inflight.inc(2)
    batch = summarise(start, start, read(metrics.registry, 60.0))

    assert point(batch, "input_tokens").delta == 15
    assert point(batch, "output_tokens").delta == 27
    assert point(batch, "cost_usd").delta == pytest.approx(0.002)
    hits = point(batch, "cache_hits", kind="exact")
    assert (hits.delta, dict(hits.labels)["route"]) == (1, CHAT_ROUTE)
    assert point(batch, "cache_saved_usd", kind="exact").delta == 0.5
    assert point(batch, "inflight_requests").delta == 2
    assert point(batch, "time_to_first_token_seconds").delta == 2


def test_a_counter_that_went_down_counts_from_zero() -> None:
    before = ServiceMetrics()
    for _ in range(5):
        before.observe_request(CHAT_ROUTE, 200, 0.1)
    earlier = read(before.registry, 0.0)
    after = ServiceMetrics()  # a new registry stands in for a reset
    after.observe_request(CHAT_ROUTE, 200, 0.1)
    batch = summarise(earlier, earlier, read(after.registry, 60.0))
    assert point(batch, "requests").delta == 1
    assert point(batch, "request_duration_seconds").delta == 1


def test_quantiles_interpolate_within_buckets_like_prometheus() -> None:
    histogram = Histogram(bounds=(1.0, 2.0, 4.0), counts=(0.0, 10.0, 0.0, 0.0), sum=15.0)
    assert histogram.quantile(0.5) == pytest.approx(1.5)
    assert histogram.quantile(0.9) == pytest.approx(1.9)
    assert histogram.mean == 1.5
    above = Histogram(bounds=(1.0,), counts=(0.0, 4.0), sum=20.0)
    assert above.quantile(0.99) == 1.0
    assert Histogram(bounds=(1.0,), counts=(0.0, 0.0), sum=0.0).quantile(0.5) is None


# --- the pusher: intervals, failures, the final flush -------------------------------------


class Recorder:
    """An exporter that keeps what it is given and fails when told to."""

    def __init__(self, name: str = "recorder", failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.batches: list[Batch] = []
        self.closed = False
        self.pushed = asyncio.Event()

    async def export(self, batch: Batch) -> None:
        if self.failures:
            self.failures -= 1
            raise ExportError(f"{self.name} is down")
        self.batches.append(batch)
        self.pushed.set()

    async def close(self) -> None:
        self.closed = True


class Hanging(Recorder):
    async def export(self, batch: Batch) -> None:
        await asyncio.Event().wait()


def requests_in(batch: Batch) -> float:
    return point(batch, "requests", route=CHAT_ROUTE).delta


def test_a_failed_push_is_carried_into_the_next_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    flaky = Recorder("flaky", failures=2)
    steady = Recorder("steady")
    clock = iter(range(0, 1000, 60))
    pusher = MetricPusher(metrics.registry, [flaky, steady], 60, clock=lambda: next(clock))

    async def main() -> None:
        await pusher.start()
        for _ in range(3):
            metrics.observe_request(CHAT_ROUTE, 200, 0.1)
            await pusher.push()
        await pusher.stop()

    with caplog.at_level(logging.DEBUG, logger="inferops_service.telemetry.pusher"):
        asyncio.run(main())

    # The steady backend got each request once; the flaky one got both lost pushes' worth later.
    assert [requests_in(b) for b in steady.batches] == [1, 1, 1, 0]
    assert [requests_in(b) for b in flaky.batches] == [3, 0]
    assert flaky.batches[0].previous == 0  # its changes since its last success, the start
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "flaky" in warnings[0].getMessage()
    assert "flaky is down" in warnings[0].getMessage()
    assert any("works again after 2 failures" in r.getMessage() for r in caplog.records)
    assert flaky.closed and steady.closed


def test_the_background_task_pushes_every_interval_and_stop_flushes() -> None:
    metrics = ServiceMetrics()
    recorder = Recorder()
    pusher = MetricPusher(metrics.registry, [recorder], interval_s=0.01)

    async def main() -> None:
        await pusher.start()
        metrics.observe_request(CHAT_ROUTE, 200, 0.1)
        await asyncio.wait_for(recorder.pushed.wait(), 30)
        pushed_by_task = len(recorder.batches)
        metrics.observe_request(CHAT_ROUTE, 200, 0.1)
        await pusher.stop()
        assert len(recorder.batches) > pushed_by_task  # stop pushed once more

    asyncio.run(main())
    assert sum(requests_in(b) for b in recorder.batches) == 2
    assert recorder.closed


def test_a_hanging_backend_times_out_without_holding_up_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    hanging, steady = Hanging("hanging"), Recorder("steady")
    pusher = MetricPusher(metrics.registry, [hanging, steady], interval_s=0.05)

    async def main() -> None:
        await pusher.start()
        await pusher.push()
        await pusher.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    # The background task may have pushed too; the explicit push and the final one did.
    assert len(steady.batches) >= 2
    timeouts = [r for r in caplog.records if "hanging failed: timed out" in r.getMessage()]
    assert len(timeouts) == 1


# --- the factory and the Telemetry object ------------------------------------------------


def test_the_factory_refuses_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown metric exporter 'prometheus'; known: "):
        create_exporter("prometheus", ServiceSettings())


def test_the_factory_builds_each_configured_backend() -> None:
    settings = ServiceSettings.model_validate(
        {
            "telemetry": {
                "cloudwatch": {"enabled": True, "mode": "emf"},
                "datadog": {"enabled": True, "transport": "dogstatsd"},
            }
        }
    )
    assert enabled(settings) == ["cloudwatch", "datadog"]
    assert isinstance(create_exporter("cloudwatch", settings), EmfExporter)
    assert isinstance(create_exporter("datadog", settings), DogStatsdExporter)
    api = ServiceSettings.model_validate(
        {"telemetry": {"cloudwatch": {"enabled": True, "region": "eu-west-1"}}}
    )
    assert isinstance(create_exporter("cloudwatch", api), CloudWatchExporter)


def test_a_missing_extra_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now fails
    settings = ServiceSettings.model_validate({"telemetry": {"cloudwatch": {"enabled": True}}})
    with pytest.raises(ConfigError, match=r"inferops-service\[aws\]"):
        Telemetry(settings, ServiceMetrics())


def test_telemetry_is_off_by_default() -> None:
    telemetry = Telemetry(ServiceSettings(), ServiceMetrics())
    assert telemetry.spans is None
    assert telemetry.tracer_provider is None
    assert telemetry.pusher is None
    asyncio.run(telemetry.start())
    asyncio.run(telemetry.stop())


def test_everything_imports_without_the_extras_when_off() -> None:
    script = """
import sys
for name in ("opentelemetry", "boto3", "botocore", "google", "httpx", "moto"):
    sys.modules[name] = None
import asyncio, io, logging
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.telemetry import Telemetry, configure_logging
from inferops_service.telemetry.logs import JsonFormatter
settings = ServiceSettings.model_validate({"telemetry": {
    "log_format": "json", "cloudwatch": {"enabled": True, "mode": "emf"},
    "datadog": {"enabled": True, "transport": "dogstatsd"}}})
telemetry = Telemetry(settings, ServiceMetrics())
assert telemetry.spans is None
stream = io.StringIO()
configure_logging(settings, stream)
logging.getLogger("x").warning("hello")
print(stream.getvalue(), end="")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert (line["message"], line["level"]) == ("hello", "WARNING")
    assert "trace_id" not in line


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INFEROPS_TELEMETRY_LOG_FORMAT": "xml"}, "telemetry.log_format"),
        ({"INFEROPS_TELEMETRY_SAMPLE_RATIO": "1.5"}, "telemetry.sample_ratio"),
        ({"INFEROPS_TELEMETRY_OTLP_ENDPOINT": "grpc://collector:4317"}, "telemetry.otlp_endpoint"),
        ({"INFEROPS_TELEMETRY_EXPORT_INTERVAL_S": "0.5"}, "telemetry.export_interval_s"),
        ({"INFEROPS_TELEMETRY_CLOUDWATCH_MODE": "logs"}, "telemetry.cloudwatch.mode"),
        ({"INFEROPS_TELEMETRY_GCP_ENABLED": "true"}, "telemetry.gcp: enabled needs project_id"),
        ({"INFEROPS_TELEMETRY_DATADOG_ENABLED": "true"}, "telemetry.datadog: enabled with"),
        ({"INFEROPS_TELEMETRY_DATADOG_SITE": "https://x"}, "telemetry.datadog.site"),
        ({"INFEROPS_TELEMETRY_DATADOG_PORT": "1"}, "unknown environment variable"),
    ],
)
def test_bad_telemetry_settings_name_the_field(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match="invalid service config") as error:
        load_settings(None, environ=environ)
    assert expected in str(error.value)


def test_secrets_come_from_the_environment_and_are_never_printed() -> None:
    settings = load_settings(
        None,
        environ={
            "INFEROPS_TELEMETRY_DATADOG_ENABLED": "true",
            "INFEROPS_TELEMETRY_DATADOG_API_KEY": "dd-secret-key",
            "INFEROPS_TELEMETRY_OTLP_HEADERS": '{"x-honeycomb-team": "hc-secret"}',
        },
    )
    assert settings.telemetry.datadog.api_key == "dd-secret-key"
    assert settings.telemetry.otlp_headers == {"x-honeycomb-team": "hc-secret"}
    printed = to_yaml(settings)
    assert "dd-secret-key" not in printed
    assert "hc-secret" not in printed
    assert "x-honeycomb-team: '***'" in printed


# --- logs ------------------------------------------------------------------------------


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_are_one_object_per_line_with_trace_ids_inside_a_span() -> None:
    settings = ServiceSettings.model_validate({"telemetry": {"log_format": "json"}})
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers.clear()  # as in a fresh process; the test runner's capture comes back after
    try:
        configure_logging(settings, stream)
        log = logging.getLogger("inferops_service.test")
        log.info("outside %s", "any span", extra={"request_id": "r-1"})
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
        with tracer.start_as_current_span("work") as span:
            try:
                raise RuntimeError("multi\nline")
            except RuntimeError:
                log.exception("it failed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])

    outside, inside = json_lines(stream)
    assert outside["message"] == "outside any span"
    assert outside["level"] == "INFO"
    assert outside["logger"] == "inferops_service.test"
    assert outside["request_id"] == "r-1"
    assert "trace_id" not in outside
    assert str(outside["time"]).endswith("Z")
    ids = span.get_span_context()
    assert inside["trace_id"] == f"{ids.trace_id:032x}"
    assert inside["span_id"] == f"{ids.span_id:016x}"
    assert inside["level"] == "ERROR"
    assert "RuntimeError: multi\nline" in str(inside["exc_info"])


def test_text_logs_stay_the_human_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers.clear()
    try:
        configure_logging(ServiceSettings(), stream)
        logging.getLogger("inferops_service").info("starting")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert stream.getvalue().rstrip().endswith("inferops_service INFO starting")
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())


def test_values_json_cannot_hold_are_written_as_text() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.path = Path("/tmp/a")
    assert json.loads(JsonFormatter().format(record))["path"] == "/tmp/a"


# --- the app, wired --------------------------------------------------------------------


def test_the_app_traces_each_request_under_the_callers_trace() -> None:
    from inferops_service.app import create_app
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    settings = ServiceSettings.model_validate(
        {"model": "sim-trace", "simulator": {"ttft_ms": 0, "tpot_ms": 0}}
    )
    metrics = ServiceMetrics()
    spans = InMemorySpanExporter()
    app = create_app(
        settings, metrics=metrics, telemetry=Telemetry(settings, metrics, span_exporter=spans)
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    body = {"model": "sim-trace", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app) as client:
        assert (
            client.post(
                "/v1/chat/completions", json=body, headers={"traceparent": parent}
            ).status_code
            == 200
        )
        assert client.post("/v1/chat/completions", json={"model": "sim-trace"}).status_code == 400
    # The spans are exported when the app stops.
    chat, invalid = spans.get_finished_spans()
    assert chat.name == "POST /v1/chat/completions"
    assert format(chat.context.trace_id, "032x") == trace_id
    assert chat.attributes is not None and chat.attributes["http.response.status_code"] == 200
    assert format(invalid.context.trace_id, "032x") != trace_id
    assert invalid.attributes is not None and invalid.attributes["http.response.status_code"] == 400
