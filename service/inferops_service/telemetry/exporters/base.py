"""What every metric exporter is: one push of a :class:`~..readings.Batch` to one backend.

Contract:

- ``export(batch)`` sends the batch and returns once the backend accepted it; any failure
  raises (preferably :class:`ExportError`, whose message names the backend and what to
  check). The caller keeps the batch's changes for the next push when it fails.
- ``close()`` releases what the exporter opened (clients, sockets); it never raises.
- Every series carries the :class:`Identity` of this process (model, version, track).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from inferops_service.config import ServiceSettings
from inferops_service.telemetry.readings import Batch

UNKNOWN = "unknown"

T = TypeVar("T")


class ExportError(Exception):
    """A backend refused or could not be reached; the message says which and why."""


class MetricExporter(Protocol):
    """Pushes batches of the service's metrics to one backend."""

    @property
    def name(self) -> str:
        """The backend's name, as the factory knows it."""
        ...

    async def export(self, batch: Batch) -> None:
        """Send ``batch``; raise when the backend did not accept it."""
        ...

    async def close(self) -> None:
        """Release the exporter's clients; never raise."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Which model, build and track this process is; blank values read ``unknown``."""

    model: str
    version: str
    track: str

    @classmethod
    def of(cls, settings: ServiceSettings) -> Identity:
        """Return the identity the settings declare."""
        identity = settings.identity
        return cls(settings.model, identity.version or UNKNOWN, identity.track or UNKNOWN)

    def labels(self) -> tuple[tuple[str, str], ...]:
        """Return (name, value) pairs, in the order the backends show them."""
        return (("model", self.model), ("version", self.version), ("track", self.track))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
