"""Server spans for the HTTP requests, exported over OTLP/HTTP (the ``telemetry`` extra).

Contract:

- :func:`build_tracer_provider` makes a ``TracerProvider`` whose resource names the service
  (``service.name`` ``inferops-service``, ``service.version`` and ``inferops.track`` from
  ``identity``; ``OTEL_RESOURCE_ATTRIBUTES`` adds to it), samples ``sample_ratio`` of new
  traces and follows the parent's decision otherwise, and sends spans through a batch
  processor to ``{otlp_endpoint}/v1/traces`` as protobuf (or to an injected exporter).
- With ``telemetry.xray`` the trace ids are X-Ray compatible (their first 8 hex digits are
  the start time) and an incoming ``X-Amzn-Trace-Id`` header is read as well as W3C
  ``traceparent``; a ``traceparent`` wins when a request carries both.
- :meth:`RequestSpans.start` opens one SERVER span per request, its parent taken from the
  request's headers, and makes it current, so logs and any span made while serving the
  request belong to it. :meth:`ServerSpan.end` names it ``METHOD /route/template`` (just
  ``METHOD`` when no route matched, as the semantic conventions ask, to keep names few),
  records the status and any exception, marks 5xx as errors, ends it and restores the
  context. Attributes follow the stable HTTP semantic conventions: ``http.request.method``,
  ``url.path``, ``url.scheme``, ``http.route``, ``http.response.status_code``,
  ``server.address``, ``server.port``, ``client.address``, ``network.protocol.version``,
  ``user_agent.original``, and ``error.type`` on failures. The query string is never
  recorded: it may carry secrets.
- :class:`TracingMiddleware` is the same hook as a standalone ASGI middleware.
- Both must be called in the request's own task (they attach and detach a context).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextvars import Token

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferops_service.config import ConfigError, ServiceSettings

SERVICE_NAME = "inferops-service"
SCOPE_NAME = "inferops_service"
TRACES_PATH = "/v1/traces"

Headers = Iterable[tuple[bytes, bytes]]


class _AsgiHeaders(Getter[Headers]):
    """Reads propagation headers straight from an ASGI scope's (lower-case) header list."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        """Return every value of header ``key``, or None when it is absent."""
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        """Return the names of all headers."""
        return [header.decode("latin-1") for header, _ in carrier]


_GETTER = _AsgiHeaders()


def traces_url(endpoint: str) -> str:
    """Return the OTLP/HTTP traces URL of a collector's base URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def propagator(xray: bool) -> TextMapPropagator:
    """Return the propagator that reads parents: W3C, and X-Ray's header before it if asked."""
    if not xray:
        return TraceContextTextMapPropagator()
    from opentelemetry.propagators.aws import AwsXRayPropagator

    # A composite extracts in order, later ones overriding: traceparent wins over X-Ray.
    return CompositePropagator([AwsXRayPropagator(), TraceContextTextMapPropagator()])


def build_tracer_provider(
    settings: ServiceSettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Return a provider exporting through ``exporter``, else OTLP to the configured endpoint."""
    telemetry = settings.telemetry
    if exporter is None:
        if telemetry.otlp_endpoint is None:
            raise ConfigError("tracing needs telemetry.otlp_endpoint or an exporter")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=traces_url(telemetry.otlp_endpoint),
            headers=dict(telemetry.otlp_headers),
            timeout=telemetry.otlp_timeout_s,
        )
    id_generator: IdGenerator | None = None
    if telemetry.xray:
        from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

        id_generator = AwsXRayIdGenerator()
    attributes = {
        "service.name": SERVICE_NAME,
        "service.version": settings.identity.version,
        "inferops.track": settings.identity.track,
        "inferops.model": settings.model,
    }
    resource = Resource.create({name: value for name, value in attributes.items() if value})
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(telemetry.sample_ratio)),
        resource=resource,
        id_generator=id_generator,
        # The app shuts it down in its lifespan; an exit hook per provider would pile up.
        shutdown_on_exit=False,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class ServerSpan:
    """One request's span, current until :meth:`end`."""

    __slots__ = ("_method", "_span", "_token")

    def __init__(self, span: trace.Span, token: Token[Context], method: str) -> None:
        self._span = span
        self._token = token
        self._method = method

    @property
    def span(self) -> trace.Span:
        """The OpenTelemetry span."""
        return self._span

    def end(self, status: int, route: str | None, error: BaseException | None = None) -> None:
        """Record the answer's ``status``, the matched ``route`` and any error; end the span."""
        span = self._span
        context.detach(self._token)
        if span.is_recording():
            if route is not None:
                span.update_name(f"{self._method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if error is not None:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(error)))
            elif status >= 500:
                # Server spans: 4xx is the client's doing, only 5xx is an error of ours.
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()


class RequestSpans:
    """Starts a server span for each HTTP request; the per-request tracing hook."""

    def __init__(self, provider: trace.TracerProvider, propagator: TextMapPropagator) -> None:
        self._tracer = provider.get_tracer(SCOPE_NAME)
        self._propagator = propagator

    def start(self, scope: Scope) -> ServerSpan:
        """Open and make current the span of the HTTP request in ``scope``."""
        headers: Sequence[tuple[bytes, bytes]] = scope.get("headers", ())
        parent = self._propagator.extract(headers, getter=_GETTER)
        method = scope.get("method", "HTTP")
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        server = scope.get("server")
        if server:
            attributes["server.address"] = str(server[0])
            if server[1] is not None:
                attributes["server.port"] = int(server[1])
        client = scope.get("client")
        if client:
            attributes["client.address"] = str(client[0])
        for name, value in headers:
            if name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
                break
        span = self._tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return ServerSpan(span, token, method)


class TracingMiddleware:
    """ASGI middleware around :class:`RequestSpans`, for apps that have no hook of their own."""

    def __init__(self, app: ASGIApp, spans: RequestSpans) -> None:
        self._app = app
        self._spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection inside a span if it is an HTTP request."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        span = self._spans.start(scope)
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        error: Exception | None = None
        try:
            await self._app(scope, receive, send_status)
        except Exception as exc:
            error = exc
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            span.end(status or 500, route if isinstance(route, str) else None, error)
