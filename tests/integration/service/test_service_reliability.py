"""The served process under stress: overload is shed, a Redis crash mid-load is survived.

Each test runs ``inferops-service serve`` in its own process and, where it needs one, its
own redis-server (see ``test_service_security_redis``). Load comes from many concurrent
clients; the assertions are about what clients and the metrics see, never about durations.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from inferops_service.auth import hash_key
from prometheus_client.parser import text_string_to_metric_families
from test_service_security_redis import (  # the shared Redis and service fixtures
    AUTH,
    CHAT,
    KEY,
    MODEL,
    RedisServer,
    Service,
    redis_server,
    start_service,
)

__all__ = ["redis_server", "start_service"]  # fixtures, used by name


def gauge(service: Service, name: str) -> float:
    for family in text_string_to_metric_families(httpx.get(service.metrics_url).text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not exported")


def rss_kib(service: Service) -> int:
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1])


@dataclass
class Load:
    """Closed-loop clients hammering one URL in a background thread until stopped."""

    url: str
    body: dict[str, object]
    clients: int
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: set[str] = field(default_factory=set)
    cache: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def total(self) -> int:
        return sum(self.statuses.values())

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                response = await client.post(self.url, json=self.body, headers=AUTH)
            except httpx.TransportError as exc:
                self.failures.append(type(exc).__name__)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 503:
                self.retry_after.add(response.headers.get("retry-after", ""))
            self.cache[response.headers.get("x-inferops-cache", "")] += 1


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_overload_is_shed_with_retry_after_and_memory_stays_bounded(
    start_service: Callable[[str], Service],
) -> None:
    # Four batch slots of about 50 ms each, at most 8 requests held: 64 clients offer
    # several times what the model can serve.
    service = start_service(
        f"""
model: {MODEL}
simulator: {{ttft_ms: 30, tpot_ms: 1, max_batch: 4, default_max_tokens: 20}}
limits: {{max_inflight: 8, shed_retry_after_s: 2}}
"""
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    queued: list[float] = []
    rss: list[int] = []
    with Load(f"{service.url}{CHAT}", body, clients=64) as load:
        for round_ in range(1, 4):
            wait_for(lambda n=round_: load.statuses[200] >= n * 200, "200 more answers")
            queued.append(gauge(service, "inferops_simulator_queued_requests"))
            rss.append(rss_kib(service))

    assert load.failures == []
    assert set(load.statuses) == {200, 503}, load.statuses
    assert load.retry_after == {"2"}
    # At most 8 held: 4 decoding and never more than 4 waiting for a slot.
    assert max(queued) <= 4, queued
    assert gauge(service, "inferops_shed_requests_total") == load.statuses[503]
    # Once warm, shedding thousands more requests does not grow the process.
    assert rss[-1] - rss[0] < 16 * 1024, rss
    # Health stays answered while the API sheds.
    assert httpx.get(f"{service.url}/health").status_code == 200


def test_a_redis_crash_mid_load_is_survived_and_the_cache_comes_back(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    # The cache fails open (the default); limits are set to fail open, so nothing is refused.
    service = start_service(
        f"""
model: {MODEL}
simulator: {{ttft_ms: 1, tpot_ms: 0.1, default_max_tokens: 4}}
auth:
  keys:
    - {{name: ci, key_sha256: {hash_key(KEY)}, rpm: 1000000}}
redis:
  url: {redis_server.url}
  timeout_ms: 100
  on_error: {{auth: open}}
cache:
  exact: {{enabled: true}}
"""
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "What is a canary?"}]}
    ready = lambda: httpx.get(f"{service.url}/ready").json()["status"]  # noqa: E731
    assert ready() == "ready"
    with Load(f"{service.url}{CHAT}", body, clients=8) as load:
        wait_for(lambda: load.cache["hit-exact"] >= 50, "cache hits before the crash")
        redis_server.kill()
        before = load.total()
        wait_for(lambda: load.total() >= before + 100, "answers while Redis is down")
        assert ready() == "degraded"
        hits_while_down = load.cache["hit-exact"]
        redis_server.start()
        wait_for(lambda: load.cache["hit-exact"] >= hits_while_down + 50, "cache hits again")
        wait_for(lambda: ready() == "ready", "readiness restored")

    assert load.failures == []
    # Every request was answered; none failed because Redis went away.
    assert set(load.statuses) == {200}, load.statuses
    assert load.cache["bypass"] > 0, load.cache
