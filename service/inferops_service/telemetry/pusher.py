"""The background task that pushes the registry's changes to every metric exporter.

Contract:

- :meth:`MetricPusher.start` takes the first reading (every count starts from it) and
  starts a task that pushes every ``interval_s``; :meth:`MetricPusher.stop` ends the task,
  pushes once more so that nothing counted before shutdown is lost, and closes the
  exporters.
- Each exporter gets the changes since its own last *successful* push, so a push that
  failed is carried into the next one rather than lost.
- Exporters are pushed concurrently, each bounded by a timeout (the interval, at most
  30 s), so one slow backend delays neither the others nor the next interval.
- A failing push never raises out of here and never touches the request path: the first
  failure of a streak is logged as a warning with the reason, later ones at debug level,
  and the recovery as info.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from inferops_service.telemetry.exporters.base import MetricExporter
from inferops_service.telemetry.readings import Reading, read, summarise

MAX_PUSH_S = 30.0

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Target:
    exporter: MetricExporter
    pushed: Reading
    failures: int = 0


class MetricPusher:
    """Reads a registry every interval and hands each exporter what changed."""

    def __init__(
        self,
        registry: CollectorRegistry,
        exporters: Sequence[MetricExporter],
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._exporters = list(exporters)
        self._interval_s = interval_s
        self._timeout_s = min(interval_s, MAX_PUSH_S)
        self._clock = clock
        self._start: Reading | None = None
        self._targets: list[_Target] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the first reading and start pushing every interval."""
        self._start = read(self._registry, self._clock())
        self._targets = [_Target(exporter, self._start) for exporter in self._exporters]
        self._task = asyncio.create_task(self._run(), name="inferops-metric-push")

    async def stop(self) -> None:
        """Stop the task, push what is left, close the exporters."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._start is not None:
            await self.push()
        for target in self._targets:
            try:
                await target.exporter.close()
            except Exception:
                log.debug("closing the %s exporter failed", target.exporter.name, exc_info=True)

    async def push(self) -> None:
        """Push the changes since each exporter's last success, to all of them at once."""
        if self._start is None:
            raise RuntimeError("MetricPusher.push before start()")
        current = read(self._registry, self._clock())
        await asyncio.gather(*(self._push_one(target, current) for target in self._targets))

    async def _push_one(self, target: _Target, current: Reading) -> None:
        assert self._start is not None
        name = target.exporter.name
        batch = summarise(self._start, target.pushed, current)
        try:
            await asyncio.wait_for(target.exporter.export(batch), self._timeout_s)
        except Exception as exc:
            target.failures += 1
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            if target.failures == 1:
                log.warning(
                    "pushing metrics to %s failed: %s; retrying every %ss with the changes "
                    "kept, logging again when it works",
                    name,
                    reason,
                    self._interval_s,
                )
            else:
                log.debug("pushing metrics to %s failed again: %s", name, reason)
            return
        if target.failures:
            log.info("pushing metrics to %s works again after %d failures", name, target.failures)
            target.failures = 0
        target.pushed = current

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.push()
            except Exception:
                # Exporters' failures are handled per exporter; this is the registry itself.
                log.exception("reading the metrics registry for a push failed")
