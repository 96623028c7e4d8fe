"""Prometheus as a metrics provider, over its HTTP API (``GET /api/v1/query``).

Contract: ``PrometheusProvider`` implements ``MetricsProvider``. It sends each
instant query with an explicit evaluation ``time`` and reads the documented
JSON answer: a ``vector`` must hold exactly one sample, a ``scalar`` is its own
value, ``"NaN"``/``"+Inf"`` parse as floats. Connection failures, timeouts,
5xx answers and Prometheus' ``timeout``/``canceled``/``unavailable`` errors
raise ``ProviderUnavailable``; other error answers, 4xx and bodies that are not
Prometheus' JSON raise ``QueryError``. The HTTP client is injected; without
one, each ``run_query``/``window_stats``/``is_online`` call opens a client and
closes it before returning, so an idle provider holds no sockets. Nothing is
sent before the first query.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from inferops.analysis.evidence import WindowStats
from inferops.metrics.base import (
    MetricsError,
    MultipleValuesReturned,
    NoValuesFound,
    ProviderUnavailable,
    QueryError,
)
from inferops.metrics.queries import COUNT_FIELDS, window_queries

_TRANSIENT_ERROR_TYPES = frozenset({"timeout", "canceled", "unavailable"})


class PrometheusProvider:
    """Reads canary evidence from a Prometheus server."""

    def __init__(
        self,
        base_url: str,
        client: httpx.Client | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"Prometheus base_url {base_url!r} is not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"Prometheus base_url must be an http(s) URL such as http://127.0.0.1:9090, "
                f"not {base_url!r}"
            )
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self._query_url = f"{self.base_url}/api/v1/query"
        self._client = client
        self._timeout_s = timeout_s

    def run_query(self, query: str, at: float | None = None) -> float:
        """Run an instant query at ``at`` (unix time, default now) that must return one sample."""
        with self._session() as client:
            return self._instant(client, query, time.time() if at is None else at)

    def is_online(self) -> bool:
        """Say whether Prometheus evaluates a trivial query."""
        try:
            return self.run_query("vector(1)") == 1.0
        except MetricsError:
            return False

    def window_stats(
        self,
        selector: Mapping[str, str],
        window_s: float,
        at: float | None = None,
    ) -> WindowStats:
        """Aggregate the chat traffic matching ``selector`` in the window ending at ``at``."""
        # One evaluation time for every query, so the figures describe the same window.
        when = time.time() if at is None else at
        figures: dict[str, float | None] = {}
        with self._session() as client:
            for field, query in window_queries(selector, window_s).items():
                try:
                    value: float | None = self._instant(client, query, when)
                except NoValuesFound:
                    value = None
                if value is not None and math.isnan(value):
                    value = None
                # A counter without series means nothing happened; any other figure is unknown.
                figures[field] = value if value is not None or field not in COUNT_FIELDS else 0.0
        return WindowStats(
            track=selector.get("track", "all"),
            window_s=window_s,
            requests=figures["requests"] or 0.0,
            errors=figures["errors"] or 0.0,
            latency_p50_s=figures["latency_p50_s"],
            latency_p95_s=figures["latency_p95_s"],
            latency_p99_s=figures["latency_p99_s"],
            ttft_p95_s=figures["ttft_p95_s"],
            output_tokens=figures["output_tokens"],
            cost_usd=figures["cost_usd"],
        )

    def _instant(self, client: httpx.Client, query: str, at: float) -> float:
        """The single value of an instant query evaluated at ``at``."""
        data = self._get(client, query, at)
        result_type = data.get("resultType")
        result = data.get("result")
        if result_type == "scalar":
            return _sample_value(result, query)
        if result_type != "vector" or not isinstance(result, list):
            raise QueryError(
                f"query {query!r} returned a {result_type!r} result; "
                "write an instant query that returns a vector or a scalar",
                query=query,
            )
        if not result:
            raise NoValuesFound(f"query {query!r} matched no series", query=query)
        if len(result) > 1:
            shown = ", ".join(str(_labels_of(sample)) for sample in result[:3])
            raise MultipleValuesReturned(
                f"query {query!r} returned {len(result)} series ({shown}"
                f"{', ...' if len(result) > 3 else ''}); aggregate it (sum, max, ...) to one",
                query=query,
            )
        sample = result[0]
        return _sample_value(sample.get("value") if isinstance(sample, dict) else None, query)

    def _session(self) -> contextlib.AbstractContextManager[httpx.Client]:
        """The injected client, or a client of its own for the duration of one call."""
        if self._client is not None:
            return contextlib.nullcontext(self._client)
        return httpx.Client()

    def _get(self, client: httpx.Client, query: str, at: float) -> dict[str, Any]:
        """Send one instant query and return the ``data`` member of a successful answer."""
        try:
            response = client.get(
                self._query_url,
                params={"query": query, "time": f"{at:.3f}"},
                timeout=self._timeout_s,
            )
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"Prometheus at {self.base_url} did not answer ({type(exc).__name__}: {exc}); "
                "check that it is running and that the URL is right",
                query=query,
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _http_error(self.base_url, response, query, detail="a body that is not JSON")
        if body.get("status") == "error":
            error_type = str(body.get("errorType", "unknown"))
            error = str(body.get("error", ""))
            if response.is_server_error or error_type in _TRANSIENT_ERROR_TYPES:
                raise ProviderUnavailable(
                    f"Prometheus at {self.base_url} failed query {query!r}: {error_type}: {error}; "
                    "retry later",
                    query=query,
                )
            raise QueryError(
                f"Prometheus at {self.base_url} rejected query {query!r}: {error_type}: {error}; "
                "fix the query",
                query=query,
            )
        if not response.is_success or body.get("status") != "success":
            raise _http_error(self.base_url, response, query, detail="an unexpected JSON body")
        data = body.get("data")
        if not isinstance(data, dict):
            raise QueryError(
                f"Prometheus at {self.base_url} answered query {query!r} without a data object",
                query=query,
            )
        return data


def _http_error(
    base_url: str, response: httpx.Response, query: str, *, detail: str
) -> ProviderUnavailable | QueryError:
    """Classify an answer that is not Prometheus' success or error JSON."""
    message = f"Prometheus at {base_url} answered HTTP {response.status_code} with {detail}"
    if response.is_server_error:
        return ProviderUnavailable(f"{message}; retry later", query=query)
    return QueryError(
        f"{message}; check that base_url points at Prometheus (not a proxy or another service)",
        query=query,
    )


def _labels_of(sample: object) -> dict[str, Any]:
    """The label set of a vector sample, for error messages."""
    if isinstance(sample, dict) and isinstance(sample.get("metric"), dict):
        return dict(sample["metric"])
    return {}


def _sample_value(pair: object, query: str) -> float:
    """Parse a ``[timestamp, "value"]`` pair; Prometheus sends values as strings."""
    if isinstance(pair, list) and len(pair) == 2:
        try:
            return float(pair[1])
        except (TypeError, ValueError):
            pass
    raise QueryError(
        f'query {query!r} returned a malformed sample {pair!r}; expected [timestamp, "value"]',
        query=query,
    )
