"""The provider factory builds known backends and refuses unknown names."""

from __future__ import annotations

import httpx
import pytest

from inferops.metrics import MetricsProvider, PrometheusProvider, provider_for


def test_prometheus_is_built_with_its_options() -> None:
    with httpx.Client() as client:
        provider = provider_for("prometheus", base_url="http://127.0.0.1:9090", client=client)

        assert isinstance(provider, PrometheusProvider)
        assert isinstance(provider, MetricsProvider)


def test_unknown_name_raises_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metrics provider 'datadog'.*prometheus"):
        provider_for("datadog", api_key="x")


def test_bad_base_url_is_refused_before_any_query() -> None:
    with pytest.raises(ValueError, match="http"):
        provider_for("prometheus", base_url="127.0.0.1:9090")
