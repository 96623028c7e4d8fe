"""Google Cloud Monitoring: custom metrics written with ``projects.timeSeries.create``.

Contract:

- ``POST {endpoint}/v3/projects/{project}/timeSeries`` with ``{"timeSeries": [...]}``, at most
  200 series per call (the API's limit), a bearer token from the token provider. The API
  answers ``{}`` on success; any other answer raises :class:`ExportError` quoting the
  ``error.code``, ``error.status`` and ``error.message`` of its body.
- Metric types are ``custom.googleapis.com/inferops/<metric>`` with labels ``model``,
  ``version``, ``track``, ``route`` (and ``kind``); the monitored resource is a
  ``generic_task`` (project, location, namespace, job ``inferops-service``, task id), so
  replicas write distinct series.
- Custom metrics take no DELTA kind: counts are CUMULATIVE since the exporter's first
  reading, with that reading's time as every point's start time and the push time as its
  end; latency and TTFT are CUMULATIVE DISTRIBUTIONs with the Prometheus bucket bounds
  (Prometheus' upper-inclusive buckets are sent as they are), an exact mean and a sum of
  squared deviations estimated from the bucket midpoints; the in-flight gauge is a GAUGE.
- The API takes one point per series every 5 seconds at most: a push sooner than that
  after the last one (a final flush at shutdown) is skipped; the counts stay cumulative,
  so the next push carries them.
- Tokens come from an injected async provider; the default, :class:`GoogleAuthToken`, uses
  Application Default Credentials through google-auth (the ``gcp`` extra).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from inferops_service.config import GcpSettings
from inferops_service.telemetry.exporters.base import ExportError, Identity, chunks
from inferops_service.telemetry.readings import Batch, Histogram, Kind, Point

SCOPE = "https://www.googleapis.com/auth/monitoring.write"
METRIC_PREFIX = "custom.googleapis.com/inferops/"
JOB = "inferops-service"
MAX_SERIES_PER_CALL = 200
MIN_PUSH_GAP_S = 5.0
_UNITS = {"count": "1", "seconds": "s", "usd": "{USD}"}

TokenProvider = Callable[[], Awaitable[str]]


def rfc3339(at: float) -> str:
    """Return Unix time ``at`` as an RFC 3339 UTC timestamp with microseconds."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def resource(settings: GcpSettings, task_id: str) -> dict[str, Any]:
    """Return the ``generic_task`` monitored resource of this replica."""
    return {
        "type": "generic_task",
        "labels": {
            "project_id": settings.project_id or "",
            "location": settings.location,
            "namespace": settings.namespace,
            "job": JOB,
            "task_id": task_id,
        },
    }


def time_series(
    batch: Batch, identity: Identity, monitored: dict[str, Any]
) -> list[dict[str, Any]]:
    """Return the ``TimeSeries`` objects of ``batch``, one point each."""
    cumulative = {"startTime": rfc3339(batch.start), "endTime": rfc3339(batch.end)}
    gauge = {"endTime": rfc3339(batch.end)}
    series = []
    for point in batch.points:
        kind, value_type, interval, value = _value(point, cumulative, gauge)
        series.append(
            {
                "metric": {
                    "type": METRIC_PREFIX + point.metric,
                    "labels": dict((*identity.labels(), *point.labels)),
                },
                "resource": monitored,
                "metricKind": kind,
                "valueType": value_type,
                "unit": _UNITS[point.unit],
                "points": [{"interval": interval, "value": value}],
            }
        )
    return series


def _value(
    point: Point, cumulative: dict[str, str], gauge: dict[str, str]
) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    if point.kind is Kind.GAUGE:
        return "GAUGE", "DOUBLE", gauge, {"doubleValue": point.total}
    if point.kind is Kind.DISTRIBUTION:
        assert point.distribution_total is not None
        distribution = distribution_value(point.distribution_total)
        return "CUMULATIVE", "DISTRIBUTION", cumulative, {"distributionValue": distribution}
    if point.unit == "count":
        # int64 travels as a string in the JSON mapping of protobuf.
        return "CUMULATIVE", "INT64", cumulative, {"int64Value": str(round(point.total))}
    return "CUMULATIVE", "DOUBLE", cumulative, {"doubleValue": point.total}


def distribution_value(histogram: Histogram) -> dict[str, Any]:
    """Return a ``Distribution`` with explicit buckets; N bounds give N + 1 bucket counts."""
    count = round(histogram.count)
    return {
        "count": str(count),
        "mean": histogram.mean if count else 0.0,
        "sumOfSquaredDeviation": histogram.squared_deviation() if count else 0.0,
        "bucketOptions": {"explicitBuckets": {"bounds": list(histogram.bounds)}},
        "bucketCounts": [str(round(c)) for c in histogram.counts],
    }


class GoogleAuthToken:
    """Access tokens from Application Default Credentials, refreshed when they expire."""

    def __init__(self) -> None:
        self._credentials: Any = None

    async def __call__(self) -> str:
        """Return a valid access token for the monitoring.write scope."""
        # google-auth blocks (metadata server, token endpoint): keep it off the event loop.
        return await asyncio.to_thread(self._token)

    def _token(self) -> str:
        import google.auth
        import google.auth.transport.requests

        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=[SCOPE])
        if not self._credentials.valid:
            self._credentials.refresh(google.auth.transport.requests.Request())
        return str(self._credentials.token)


class GcpExporter:
    """Writes each batch to Cloud Monitoring through an httpx client."""

    name = "gcp"

    def __init__(
        self,
        client: httpx.AsyncClient,
        token: TokenProvider,
        settings: GcpSettings,
        identity: Identity,
        task_id: str,
    ) -> None:
        self._client = client
        self._token = token
        self._project = settings.project_id or ""
        self._url = f"{settings.endpoint.rstrip('/')}/v3/projects/{self._project}/timeSeries"
        self._resource = resource(settings, task_id)
        self._identity = identity
        self._last_end: float | None = None

    async def export(self, batch: Batch) -> None:
        """Write the batch's series, 200 per call; raise ExportError on a refusal."""
        since = batch.start if self._last_end is None else self._last_end
        if batch.end - since < MIN_PUSH_GAP_S:
            return
        series = time_series(batch, self._identity, self._resource)
        try:
            token = await self._token()
        except Exception as exc:
            raise ExportError(
                f"no Google credentials for Cloud Monitoring: {exc} (set up Application "
                "Default Credentials or Workload Identity with roles/monitoring.metricWriter)"
            ) from exc
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for chunk in chunks(series, MAX_SERIES_PER_CALL):
            body = orjson.dumps({"timeSeries": list(chunk)})
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ExportError(f"Cloud Monitoring unreachable at {self._url}: {exc}") from exc
            if response.status_code != 200:
                raise ExportError(self._refusal(response, len(chunk)))
        self._last_end = batch.end

    def _refusal(self, response: httpx.Response, count: int) -> str:
        try:
            error = orjson.loads(response.content)["error"]
            detail = f"{error['code']} {error['status']}: {error['message']}"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            detail = f"HTTP {response.status_code}: {response.text[:200]}"
        return f"Cloud Monitoring refused {count} time series for project {self._project}: {detail}"

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def from_settings(settings: GcpSettings, identity: Identity) -> GcpExporter:
    """Return an exporter with its own HTTP client and Application Default Credentials."""
    try:
        import google.auth  # noqa: F401  (fail at start-up, not at the first push)
    except ImportError as exc:
        raise ImportError(
            "telemetry.gcp needs google-auth: pip install 'inferops-service[gcp]'"
        ) from exc
    task_id = settings.task_id or socket.gethostname()
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    return GcpExporter(client, GoogleAuthToken(), settings, identity, task_id)
