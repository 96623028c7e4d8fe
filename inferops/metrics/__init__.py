"""Metrics providers: one ``MetricsProvider`` Protocol, one module per backend.

Contract: ``provider_for(name, **options)`` builds the backend configured by
name and passes ``options`` to its constructor; an unknown name raises
``ValueError`` listing the known ones (there is no silent default backend).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inferops.metrics.base import (
    CHAT_ROUTE,
    MetricsError,
    MetricsProvider,
    MultipleValuesReturned,
    NoValuesFound,
    ProviderUnavailable,
    QueryError,
)
from inferops.metrics.prometheus import PrometheusProvider

PROVIDERS: Mapping[str, Callable[..., MetricsProvider]] = {
    "prometheus": PrometheusProvider,
}
"""Backends by the name configuration uses for them."""


def provider_for(name: str, **options: Any) -> MetricsProvider:
    """Build the metrics provider called ``name`` with ``options``."""
    try:
        factory = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown metrics provider {name!r}; known providers: {known}") from None
    return factory(**options)


__all__ = [
    "CHAT_ROUTE",
    "PROVIDERS",
    "MetricsError",
    "MetricsProvider",
    "MultipleValuesReturned",
    "NoValuesFound",
    "PrometheusProvider",
    "ProviderUnavailable",
    "QueryError",
    "provider_for",
]
