"""Datadog: the metrics API v2, or DogStatsD datagrams to the local agent.

Contract:

- Metric names are ``inferops.<metric>``; tags ``model:``, ``version:``, ``track:``,
  ``route:`` (and ``kind:``).
- API: ``POST https://api.{site}/api/v2/series`` with the ``DD-API-KEY`` header and
  ``{"series": [{metric, type, interval, points: [{timestamp, value}], tags, resources}]}``.
  Counts are type 1 (count) with the increase since the last push and its interval in
  seconds; the in-flight gauge is type 3. The API has no histogram type, so a non-empty
  distribution becomes gauges ``.p50``, ``.p95``, ``.p99`` (estimated from the buckets) and
  ``.avg`` (exact). Each series names this host as its ``host`` resource. The API answers
  ``202 {"errors": []}``; anything else raises :class:`ExportError` quoting its ``errors``.
- DogStatsD: the same metrics as ``name:value|c`` and ``|g`` lines with ``|#tags``, packed
  into UDP datagrams of at most 1432 bytes (one Ethernet MTU) sent to the agent.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import orjson

from inferops_service.config import DatadogSettings
from inferops_service.telemetry.exporters.base import ExportError, Identity
from inferops_service.telemetry.readings import Batch, Kind, Labels

if TYPE_CHECKING:
    # Only the api transport needs httpx (the datadog extra); DogStatsD needs nothing.
    import httpx

PREFIX = "inferops."
COUNT = 1
GAUGE = 3
MAX_DATAGRAM_BYTES = 1432
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))

# (metric name, type, value, tags) as both transports send them.
Sample = tuple[str, int, float, list[str]]


def samples(batch: Batch, identity: Identity) -> list[Sample]:
    """Return what ``batch`` sends to Datadog, in either transport."""
    found: list[Sample] = []
    for point in batch.points:
        name = PREFIX + point.metric
        tags = tags_of(identity, point.labels)
        if point.kind is Kind.COUNT:
            found.append((name, COUNT, point.delta, tags))
        elif point.kind is Kind.GAUGE:
            found.append((name, GAUGE, point.delta, tags))
        elif point.distribution is not None and point.distribution.count:
            for q, suffix in QUANTILES:
                estimate = point.distribution.quantile(q)
                if estimate is not None:
                    found.append((f"{name}.{suffix}", GAUGE, estimate, tags))
            found.append((f"{name}.avg", GAUGE, point.distribution.mean, tags))
    return found


def tags_of(identity: Identity, labels: Labels) -> list[str]:
    """Return the ``name:value`` tags of a series with these labels."""
    return [f"{name}:{value}" for name, value in (*identity.labels(), *labels)]


def series_body(batch: Batch, identity: Identity, host: str) -> dict[str, Any]:
    """Return the API v2 request body for ``batch``."""
    timestamp = int(batch.end)
    interval = max(1, round(batch.end - batch.previous))
    series = []
    for name, kind, value, tags in samples(batch, identity):
        entry: dict[str, Any] = {
            "metric": name,
            "type": kind,
            "points": [{"timestamp": timestamp, "value": value}],
            "tags": tags,
            "resources": [{"name": host, "type": "host"}],
        }
        if kind == COUNT:
            entry["interval"] = interval
        series.append(entry)
    return {"series": series}


class DatadogApiExporter:
    """Pushes each batch to the Datadog metrics API v2 through an httpx client."""

    name = "datadog"

    def __init__(
        self, client: httpx.AsyncClient, api_key: str, site: str, identity: Identity, host: str
    ) -> None:
        self._client = client
        self._headers = {"DD-API-KEY": api_key, "Content-Type": "application/json"}
        self._url = f"https://api.{site}/api/v2/series"
        self._identity = identity
        self._host = host

    async def export(self, batch: Batch) -> None:
        """Send the batch's series in one request; raise ExportError unless it is accepted."""
        import httpx

        body = orjson.dumps(series_body(batch, self._identity, self._host))
        try:
            response = await self._client.post(self._url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ExportError(f"Datadog unreachable at {self._url}: {exc}") from exc
        if response.status_code != 202:
            raise ExportError(self._refusal(response))

    def _refusal(self, response: httpx.Response) -> str:
        try:
            errors = ", ".join(str(e) for e in orjson.loads(response.content)["errors"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            errors = response.text[:200]
        hint = ""
        if response.status_code in (401, 403):
            hint = " (check INFEROPS_TELEMETRY_DATADOG_API_KEY and telemetry.datadog.site)"
        return f"Datadog refused the series at {self._url}: {response.status_code} {errors}{hint}"

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def statsd_lines(batch: Batch, identity: Identity) -> list[str]:
    """Return the DogStatsD lines of ``batch``."""
    lines = []
    for name, kind, value, tags in samples(batch, identity):
        suffix = "c" if kind == COUNT else "g"
        lines.append(f"{name}:{_number(value)}|{suffix}|#{','.join(tags)}")
    return lines


def _number(value: float) -> str:
    # Full precision (costs are small fractions); integers without a trailing ".0".
    return str(int(value)) if value.is_integer() else repr(value)


def datagrams(lines: list[str]) -> list[bytes]:
    """Pack newline-separated lines into datagrams of at most 1432 bytes."""
    packed: list[bytes] = []
    current = b""
    for line in lines:
        data = line.encode()
        if current and len(current) + 1 + len(data) > MAX_DATAGRAM_BYTES:
            packed.append(current)
            current = b""
        current = data if not current else current + b"\n" + data
    if current:
        packed.append(current)
    return packed


class DogStatsdExporter:
    """Sends each batch as DogStatsD datagrams to the agent over UDP."""

    name = "datadog"

    def __init__(self, host: str, port: int, identity: Identity) -> None:
        self._address = (host, port)
        self._identity = identity
        self._transport: asyncio.DatagramTransport | None = None

    async def export(self, batch: Batch) -> None:
        """Send the batch; UDP gives no answer, so only a local socket error raises."""
        if self._transport is None:
            try:
                self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=self._address
                )
            except OSError as exc:
                raise ExportError(f"cannot reach DogStatsD at {self._address}: {exc}") from exc
        for datagram in datagrams(statsd_lines(batch, self._identity)):
            self._transport.sendto(datagram)

    async def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def from_settings(
    settings: DatadogSettings, identity: Identity
) -> DatadogApiExporter | DogStatsdExporter:
    """Return the exporter of the settings' transport; the API one needs httpx."""
    if settings.transport == "dogstatsd":
        return DogStatsdExporter(settings.dogstatsd_host, settings.dogstatsd_port, identity)
    try:
        import httpx
    except ImportError as exc:
        raise ImportError(
            "telemetry.datadog transport api needs httpx: pip install 'inferops-service[datadog]'"
        ) from exc
    host = settings.host or socket.gethostname()
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    return DatadogApiExporter(client, settings.api_key or "", settings.site, identity, host)
