"""Amazon CloudWatch: ``PutMetricData`` through boto3, or embedded metric format lines.

Contract:

- Namespace ``telemetry.cloudwatch.namespace``; dimensions ``Model``, ``Version``, ``Track``,
  then ``Route`` (and ``CacheKind`` for the cache metrics); ``InflightRequests`` has only
  the first three. Metric names are the batch's names in PascalCase (``Requests``,
  ``Errors``, ``RequestDurationSeconds``, ``InputTokens``, ``CostUsd``, ``CacheHits``...).
- Counts are the increase since the last push, at the batch's end time.
- ``api`` mode: a distribution is one datum of ``Values``/``Counts`` (each non-empty bucket's
  midpoint and its count), so CloudWatch itself computes p50/p95/p99 across replicas; an
  empty one is left out. At most 1000 data per call, as the API allows. boto3 is the ``aws``
  extra, imported only when this mode is used.
- ``emf`` mode: one JSON line per dimension set on a stream (stdout), with the ``_aws``
  block declaring the metrics; EMF has no counts per value, so a distribution becomes its
  p50, p95 and p99 (``RequestDurationSecondsP95``...) estimated from the buckets, per replica.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from inferops_service.config import CloudWatchSettings
from inferops_service.telemetry.exporters.base import ExportError, Identity, chunks
from inferops_service.telemetry.readings import Batch, Kind, Labels, Point

MAX_DATA_PER_CALL = 1000
QUANTILES = ((0.5, "P50"), (0.95, "P95"), (0.99, "P99"))
_UNITS = {"count": "Count", "seconds": "Seconds", "usd": "None"}
_DIMENSIONS = {
    "model": "Model",
    "version": "Version",
    "track": "Track",
    "route": "Route",
    "kind": "CacheKind",
}


def metric_name(metric: str) -> str:
    """Return the CloudWatch name of a batch metric: ``cost_usd`` -> ``CostUsd``."""
    return "".join(part.capitalize() for part in metric.split("_"))


def dimensions(identity: Identity, labels: Labels) -> list[dict[str, str]]:
    """Return the CloudWatch dimensions of a series with these labels."""
    pairs = (*identity.labels(), *labels)
    return [{"Name": _DIMENSIONS.get(name, name.capitalize()), "Value": v} for name, v in pairs]


def metric_data(batch: Batch, identity: Identity) -> list[dict[str, Any]]:
    """Return the ``MetricData`` entries of ``batch`` for ``PutMetricData``."""
    at = datetime.fromtimestamp(batch.end, UTC)
    data: list[dict[str, Any]] = []
    for point in batch.points:
        datum: dict[str, Any] = {
            "MetricName": metric_name(point.metric),
            "Dimensions": dimensions(identity, point.labels),
            "Timestamp": at,
            "Unit": _UNITS[point.unit],
        }
        if point.kind is Kind.DISTRIBUTION:
            pairs = point.distribution.representatives() if point.distribution else []
            if not pairs:
                continue
            datum["Values"] = [value for value, _ in pairs]
            datum["Counts"] = [count for _, count in pairs]
        else:
            datum["Value"] = point.delta
        data.append(datum)
    return data


class CloudWatchExporter:
    """Pushes each batch with ``PutMetricData`` through a boto3 CloudWatch client.

    ``connect`` makes the client on the first push (it reads the AWS configuration files),
    so that building the exporter does no I/O.
    """

    name = "cloudwatch"

    def __init__(self, connect: Callable[[], Any], namespace: str, identity: Identity) -> None:
        self._connect = connect
        self._client: Any = None
        self._namespace = namespace
        self._identity = identity

    async def export(self, batch: Batch) -> None:
        """Send the batch in calls of at most 1000 data; raise ExportError on a refusal."""
        data = metric_data(batch, self._identity)
        for chunk in chunks(data, MAX_DATA_PER_CALL):
            try:
                # boto3 blocks; a worker thread keeps the event loop serving requests.
                await asyncio.to_thread(self._put, chunk)
            except Exception as exc:
                raise ExportError(
                    f"CloudWatch PutMetricData to namespace {self._namespace!r} failed: {exc} "
                    "(check the AWS credentials, region and cloudwatch:PutMetricData permission)"
                ) from exc

    def _put(self, chunk: Sequence[dict[str, Any]]) -> None:
        if self._client is None:
            self._client = self._connect()
        self._client.put_metric_data(Namespace=self._namespace, MetricData=list(chunk))

    async def close(self) -> None:
        """Close the client's connection pool, if one was made."""
        close: Callable[[], None] | None = getattr(self._client, "close", None)
        if close is not None:
            close()


def emf_records(batch: Batch, namespace: str, identity: Identity) -> list[dict[str, Any]]:
    """Return one embedded-metric-format record per dimension set of ``batch``."""
    groups: dict[Labels, dict[str, tuple[float, str]]] = {}
    for point in batch.points:
        values = groups.setdefault(point.labels, {})
        values.update(_emf_values(point))
    records = []
    for labels, values in groups.items():
        if not values:
            continue
        dims = {d["Name"]: d["Value"] for d in dimensions(identity, labels)}
        directive = {
            "Namespace": namespace,
            "Dimensions": [list(dims)],
            "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
        }
        records.append(
            {
                "_aws": {"Timestamp": int(batch.end * 1000), "CloudWatchMetrics": [directive]},
                **dims,
                **{name: value for name, (value, _) in values.items()},
            }
        )
    return records


def _emf_values(point: Point) -> dict[str, tuple[float, str]]:
    name = metric_name(point.metric)
    unit = _UNITS[point.unit]
    if point.kind is not Kind.DISTRIBUTION:
        return {name: (point.delta, unit)}
    values = {}
    for q, suffix in QUANTILES:
        estimate = point.distribution.quantile(q) if point.distribution else None
        if estimate is not None:
            values[f"{name}{suffix}"] = (estimate, unit)
    return values


class EmfExporter:
    """Writes each batch as embedded metric format JSON lines, for an agent to ingest."""

    name = "cloudwatch"

    def __init__(self, namespace: str, identity: Identity, stream: TextIO | None = None) -> None:
        self._namespace = namespace
        self._identity = identity
        self._stream = stream

    async def export(self, batch: Batch) -> None:
        """Write one line per dimension set and flush the stream."""
        stream = sys.stdout if self._stream is None else self._stream
        lines = [
            orjson.dumps(record).decode()
            for record in emf_records(batch, self._namespace, self._identity)
        ]
        if lines:
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    async def close(self) -> None:
        """Nothing to release: the stream belongs to the process."""


def from_settings(
    settings: CloudWatchSettings, identity: Identity
) -> CloudWatchExporter | EmfExporter:
    """Return the exporter the settings' mode names; ``api`` needs the ``aws`` extra."""
    if settings.mode == "emf":
        return EmfExporter(settings.namespace, identity)
    try:
        import boto3
    except ImportError as exc:
        raise ImportError(
            "telemetry.cloudwatch.mode api needs boto3: pip install 'inferops-service[aws]'"
        ) from exc

    def connect() -> Any:
        return boto3.client(
            "cloudwatch", region_name=settings.region, endpoint_url=settings.endpoint_url
        )

    return CloudWatchExporter(connect, settings.namespace, identity)
