"""The service's telemetry beyond Prometheus: traces, structured logs, pushed metrics.

Contract:

- :class:`Telemetry` is built from the settings and the app's :class:`ServiceMetrics`,
  and does no I/O until :meth:`Telemetry.start`; the app starts and stops it in its
  lifespan.
- ``Telemetry.spans`` is the per-request tracing hook (:class:`tracing.RequestSpans`), or
  None when tracing is off (no ``telemetry.otlp_endpoint``), so the request path pays a
  single ``if``. OpenTelemetry is imported only when tracing is on.
- The metric exporters that ``telemetry.cloudwatch``, ``gcp`` and ``datadog`` enable push
  every ``telemetry.export_interval_s`` from a background task (:mod:`.pusher`); a failing
  backend is logged and never affects requests; stopping pushes once more.
- A feature switched on without its extra installed raises ``ConfigError`` naming the extra.
- :func:`configure_logging` sets up the process's logs (text or JSON lines).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from inferops_service.config import ConfigError, ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.telemetry.exporters import MetricExporter, create_exporter, enabled
from inferops_service.telemetry.logs import configure_logging
from inferops_service.telemetry.pusher import MetricPusher

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from inferops_service.telemetry.tracing import RequestSpans

__all__ = ["Telemetry", "configure_logging"]


class Telemetry:
    """Tracing and metric pushes for one app, as the settings ask."""

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        span_exporter: SpanExporter | None = None,
        exporters: Sequence[MetricExporter] | None = None,
    ) -> None:
        """Build what is enabled; ``span_exporter`` and ``exporters`` replace the configured."""
        telemetry = settings.telemetry
        self.tracer_provider: TracerProvider | None = None
        self.spans: RequestSpans | None = None
        if telemetry.otlp_endpoint is not None or span_exporter is not None:
            try:
                from inferops_service.telemetry import tracing
            except ImportError as exc:
                raise ConfigError(
                    f"telemetry.otlp_endpoint is set but OpenTelemetry is missing ({exc}): "
                    "pip install 'inferops-service[telemetry]'"
                ) from exc
            self.tracer_provider = tracing.build_tracer_provider(settings, span_exporter)
            try:
                propagator = tracing.propagator(telemetry.xray)
            except ImportError as exc:
                raise ConfigError(
                    f"telemetry.xray needs the AWS propagator ({exc}): "
                    "pip install 'inferops-service[telemetry]'"
                ) from exc
            self.spans = tracing.RequestSpans(self.tracer_provider, propagator)
        if exporters is None:
            exporters = [create_exporter(name, settings) for name in enabled(settings)]
        self.pusher: MetricPusher | None = None
        if exporters:
            self.pusher = MetricPusher(metrics.registry, exporters, telemetry.export_interval_s)

    async def start(self) -> None:
        """Start pushing metrics, if any exporter is enabled."""
        if self.pusher is not None:
            await self.pusher.start()

    async def stop(self) -> None:
        """Push the last metrics and flush the spans not yet exported."""
        if self.pusher is not None:
            await self.pusher.stop()
        if self.tracer_provider is not None:
            # Shutting down exports what is queued, over blocking HTTP: not in the loop.
            await asyncio.to_thread(self.tracer_provider.shutdown)
