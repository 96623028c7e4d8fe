"""Load shedding and readiness, in-process, with a backend the test holds and releases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from inferops_service.app import create_app
from inferops_service.backends import Usage
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import ChatRequest

MODEL = "sim-test"
CHAT = "/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


class HeldReply:
    """An answer that comes only when the test releases it."""

    def __init__(self, release: asyncio.Event) -> None:
        self._release = release
        self.usage: Usage | None = None

    async def text(self) -> AsyncGenerator[str, None]:
        await self._release.wait()
        yield "ok"
        self.usage = Usage(1, 1, "stop")


class HeldBackend:
    """A backend whose answers wait for ``release``; it counts what it was asked."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.opened = 0
        self.is_ready = True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def ready(self) -> bool:
        return self.is_ready

    async def open(self, chat: ChatRequest, texts: tuple[str, ...], stream: bool) -> HeldReply:
        self.opened += 1
        return HeldReply(self.release)


def settings(**limits: Any) -> ServiceSettings:
    return ServiceSettings.model_validate({"model": MODEL, "limits": limits})


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def test_requests_beyond_max_inflight_are_shed_at_once_and_service_resumes() -> None:
    backend = HeldBackend()
    metrics = ServiceMetrics()
    app = create_app(
        settings(max_inflight=2, shed_retry_after_s=3), metrics=metrics, backend=backend
    )

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            held = [asyncio.create_task(client.post(CHAT, json=BODY)) for _ in range(2)]
            await until(lambda: backend.opened == 2)

            shed = await client.post(CHAT, json=BODY)
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "3"
            assert shed.json()["error"]["code"] == "overloaded"
            assert shed.json()["error"]["type"] == "server_error"
            assert "x-inferops-version" in shed.headers
            # Nothing was asked of the backend for the shed request; probes are never shed.
            assert backend.opened == 2
            assert (await client.get("/health")).status_code == 200

            backend.release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert (await client.post(CHAT, json=BODY)).status_code == 200

    asyncio.run(scenario())
    registry = metrics.registry
    assert registry.get_sample_value("inferops_shed_requests_total") == 1
    assert (
        registry.get_sample_value("inferops_requests_total", {"route": CHAT, "status": "503"}) == 1
    )
    assert registry.get_sample_value("inferops_inflight_requests") == 0


def test_shedding_can_be_switched_off() -> None:
    backend = HeldBackend()
    app = create_app(settings(max_inflight=None), backend=backend)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            requests = [asyncio.create_task(client.post(CHAT, json=BODY)) for _ in range(300)]
            await until(lambda: backend.opened == 300)
            backend.release.set()
            return [r.status_code for r in await asyncio.gather(*requests)]

    assert set(asyncio.run(scenario())) == {200}


@pytest.mark.parametrize("ready", [True, False])
def test_readiness_follows_the_backend(ready: bool) -> None:
    backend = HeldBackend()
    backend.is_ready = ready
    app = create_app(settings(), backend=backend)

    async def probe() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://service") as client,
            app.router.lifespan_context(app),
        ):
            return await client.get("/ready")

    response = asyncio.run(probe())
    assert response.status_code == (200 if ready else 503)
    assert response.json()["status"] == ("ready" if ready else "unavailable")
