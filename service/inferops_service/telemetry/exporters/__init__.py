"""Metric exporters, one module per backend, made by name.

Contract:

- :func:`create_exporter` returns the exporter a name stands for (``cloudwatch``, ``gcp``,
  ``datadog``) built from the settings; an unknown name raises ``ValueError`` listing the
  known ones, and a backend whose optional extra is missing raises ``ConfigError`` saying
  which extra to install. Each backend's module, and so its SDK, is imported only here,
  on demand.
- :func:`enabled` lists the names the settings switch on.
"""

from __future__ import annotations

from collections.abc import Callable

from inferops_service.config import ConfigError, ServiceSettings
from inferops_service.telemetry.exporters.base import ExportError, Identity, MetricExporter

__all__ = ["NAMES", "ExportError", "Identity", "MetricExporter", "create_exporter", "enabled"]


def _cloudwatch(settings: ServiceSettings) -> MetricExporter:
    from inferops_service.telemetry.exporters import cloudwatch

    return cloudwatch.from_settings(settings.telemetry.cloudwatch, Identity.of(settings))


def _gcp(settings: ServiceSettings) -> MetricExporter:
    try:
        from inferops_service.telemetry.exporters import gcp
    except ImportError as exc:  # httpx
        raise ImportError(
            "telemetry.gcp needs httpx and google-auth: pip install 'inferops-service[gcp]'"
        ) from exc
    return gcp.from_settings(settings.telemetry.gcp, Identity.of(settings))


def _datadog(settings: ServiceSettings) -> MetricExporter:
    from inferops_service.telemetry.exporters import datadog

    return datadog.from_settings(settings.telemetry.datadog, Identity.of(settings))


_FACTORIES: dict[str, Callable[[ServiceSettings], MetricExporter]] = {
    "cloudwatch": _cloudwatch,
    "gcp": _gcp,
    "datadog": _datadog,
}
NAMES = tuple(_FACTORIES)


def create_exporter(name: str, settings: ServiceSettings) -> MetricExporter:
    """Return the exporter called ``name``, configured from ``settings``."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown metric exporter {name!r}; known: {', '.join(NAMES)}") from None
    try:
        return factory(settings)
    except ImportError as exc:
        raise ConfigError(str(exc)) from exc


def enabled(settings: ServiceSettings) -> list[str]:
    """Return the names of the exporters that ``settings.telemetry`` enables."""
    telemetry = settings.telemetry
    switches = {
        "cloudwatch": telemetry.cloudwatch.enabled,
        "gcp": telemetry.gcp.enabled,
        "datadog": telemetry.datadog.enabled,
    }
    return [name for name in NAMES if switches[name]]
