"""Rate limits against a real Redis: the Lua token bucket, replicas, concurrency, outages.

Each test starts its own redis-server on a free loopback port (nothing saved to disk) and
stops it afterwards; the machine's own Redis is never touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from inferops_service.auth import Principal, hash_key
from inferops_service.ratelimit import SCRIPT_SHA, Decision, RedisRateLimiter
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

MODEL = "sim-redis"
CHAT = "/v1/chat/completions"
KEY = "sk-inferops-integration-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server of this test's own, which can be killed and started again."""

    dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # The port may linger briefly after a kill; retry the start a few times.
        for _ in range(50):
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._wait_for_ping():
                return
            self.stop()
            time.sleep(0.1)
        pytest.fail(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """Stop Redis abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop Redis at the end of a test."""
        self.kill()

    def _wait_for_ping(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not installed: run `make setup` (installs it)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def principal(rpm: int | None = None, tpm: int | None = None, name: str = "ci") -> Principal:
    return Principal(name, name, rpm, tpm)


T = TypeVar("T")


def run(url: str, use: Callable[[RedisRateLimiter, Redis], Awaitable[T]]) -> T:
    """Run ``use`` with a limiter on a client of its own, closed afterwards."""

    async def main() -> T:
        client = Redis.from_url(url)
        try:
            return await use(RedisRateLimiter(client, "test:"), client)
        finally:
            await client.aclose()

    return asyncio.run(main())


# --- the Lua script ---------------------------------------------------------------------


def test_concurrent_requests_take_exactly_the_bucket(redis_server: RedisServer) -> None:
    async def burst(limiter: RedisRateLimiter, _: Redis) -> list[Decision]:
        return await asyncio.gather(*(limiter.acquire(principal(rpm=25), 1) for _ in range(100)))

    decisions = run(redis_server.url, burst)
    assert sum(d.admitted for d in decisions) == 25
    refused = [d for d in decisions if not d.admitted]
    assert all(d.short == "requests" and d.retry_after_s for d in refused)


def test_the_bucket_refills_over_time(redis_server: RedisServer) -> None:
    key = principal(rpm=60)  # one request a second

    async def drain_then_wait(limiter: RedisRateLimiter, _: Redis) -> None:
        admitted = [(await limiter.acquire(key, 1)).admitted for _ in range(60)]
        assert all(admitted)
        refused = await limiter.acquire(key, 1)
        assert not refused.admitted and refused.retry_after_s is not None
        assert 0 < refused.retry_after_s <= 1
        await asyncio.sleep(refused.retry_after_s + 0.05)
        assert (await limiter.acquire(key, 1)).admitted
        again = await limiter.acquire(key, 1)
        assert not again.admitted and again.requests_left == 0

    run(redis_server.url, drain_then_wait)


def test_tokens_are_a_bucket_of_their_own(redis_server: RedisServer) -> None:
    key = principal(rpm=100, tpm=100)

    async def spend(limiter: RedisRateLimiter, _: Redis) -> list[Decision]:
        return [await limiter.acquire(key, n) for n in (30, 30, 30, 30, 10)]

    decisions = run(redis_server.url, spend)
    assert [d.admitted for d in decisions] == [True, True, True, False, True]
    assert decisions[3].short == "tokens"
    assert decisions[2].tokens_left == 10 and decisions[2].requests_left == 97
    assert decisions[4].tokens_left == 0


def test_replicas_sharing_redis_share_the_limit(redis_server: RedisServer) -> None:
    async def two_replicas(_: RedisRateLimiter, __: Redis) -> list[bool]:
        clients = [Redis.from_url(redis_server.url) for _ in range(2)]
        try:
            limiters = [RedisRateLimiter(c, "test:") for c in clients]
            return [
                (await limiters[i % 2].acquire(principal(rpm=7), 1)).admitted for i in range(20)
            ]
        finally:
            for c in clients:
                await c.aclose()

    admitted = run(redis_server.url, two_replicas)
    assert admitted == [True] * 7 + [False] * 13


def test_a_flushed_script_is_loaded_again(redis_server: RedisServer) -> None:
    async def flush_between(limiter: RedisRateLimiter, client: Redis) -> None:
        key = principal(rpm=20)
        assert (await limiter.acquire(key, 1)).admitted
        await client.script_flush()
        assert await client.script_exists(SCRIPT_SHA) == [False]
        assert (await limiter.acquire(key, 1)).admitted
        assert await client.script_exists(SCRIPT_SHA) == [True]
        # Again, with calls batched into a pipeline behind the first.
        await client.script_flush()
        burst = await asyncio.gather(*(limiter.acquire(key, 1) for _ in range(10)))
        assert all(d.admitted for d in burst)
        assert await client.script_exists(SCRIPT_SHA) == [True]

    run(redis_server.url, flush_between)


def test_idle_buckets_expire_once_full_again(redis_server: RedisServer) -> None:
    async def check(limiter: RedisRateLimiter, client: Redis) -> None:
        await limiter.acquire(principal(rpm=60, tpm=6000), 600)
        # Refilling 600 tokens at 100 a second takes 6 s; the key lives that long plus 1 s.
        ttl = await client.pttl("test:ratelimit:ci")
        assert 6000 < ttl <= 7000

    run(redis_server.url, check)


# --- the service, as deployed -----------------------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str
    metrics_url: str
    log: Path


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[[str], Service]]:
    started: list[Service] = []

    def start(config: str) -> Service:
        n = len(started)
        path = tmp_path / f"service-{n}.yaml"
        path.write_text(config, encoding="utf-8")
        port, metrics_port = free_port(), free_port()
        log = tmp_path / f"service-{n}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "inferops_service", "serve", "--config", str(path),
                 "--port", str(port), "--metrics-port", str(metrics_port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        service = Service(
            process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log
        )
        started.append(service)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{service.url}/health", timeout=1).status_code == 200:
                    return service
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"service not healthy after 20 s: {log.read_text()}")

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)


def config(redis_url: str, rpm: int, on_error: str = "closed") -> str:
    return f"""
model: {MODEL}
simulator: {{ttft_ms: 1, tpot_ms: 0.1}}
auth:
  keys:
    - {{name: ci, key_sha256: {hash_key(KEY)}, rpm: {rpm}}}
redis:
  url: {redis_url}
  on_error: {{auth: {on_error}}}
"""


def post(service: Service) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    return httpx.post(f"{service.url}{CHAT}", json=body, headers=AUTH, timeout=10)


def counter(service: Service, family: str, **labels: str) -> float:
    for metric in text_string_to_metric_families(httpx.get(service.metrics_url).text):
        if metric.name == family:
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels == labels:
                    return sample.value
    return 0.0


def test_two_services_enforce_one_limit_under_concurrent_load(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    services = [start_service(config(redis_server.url, rpm=20)) for _ in range(2)]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}

    async def load() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(f"{services[i % 2].url}{CHAT}", json=body, headers=AUTH)
                    for i in range(80)
                )
            )

    responses = asyncio.run(load())
    assert Counter(r.status_code for r in responses) == {200: 20, 429: 60}
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
    limited = sum(counter(s, "inferops_rate_limited", key="ci") for s in services)
    assert limited == 60


def test_a_redis_outage_is_closed_or_open_per_policy_and_recovers(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    closed = start_service(config(redis_server.url, rpm=1000))
    opened = start_service(config(redis_server.url, rpm=1000, on_error="open"))
    assert post(closed).status_code == 200
    assert post(opened).status_code == 200

    redis_server.kill()
    down = post(closed)
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert down.json()["error"]["code"] == "rate_limiter_unavailable"
    assert post(opened).status_code == 200
    assert counter(closed, "inferops_redis_errors", concern="auth") >= 1

    redis_server.start()
    deadline = time.monotonic() + 10
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(post(closed).status_code)
        if statuses[-1] == 200:
            break
        time.sleep(0.1)
    assert statuses[-1] == 200, statuses
    assert post(closed).status_code == 200
    assert "request refused, rate limits cannot be checked" in closed.log.read_text()
