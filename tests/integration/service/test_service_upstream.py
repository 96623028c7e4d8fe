"""The openai backend against real upstreams on loopback, seen through the gateway's API.

Two upstreams: a scripted aiohttp server that records what it receives and answers as told
(errors, slow or broken streams), and this service itself, served by uvicorn.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import orjson
import pytest
import uvicorn
from aiohttp import web
from inferops_service.app import create_app
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient

MODEL = "gateway-model"
UPSTREAM_MODEL = "upstream-model"
UPSTREAM_KEY = "sk-upstream-secret"
CHAT = "/v1/chat/completions"
ANSWER = "Hello from the upstream, in several pieces."
USAGE = {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}

Behaviour = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    event = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": UPSTREAM_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(event) + b"\n\n"


def answer(content: str = ANSWER, *, usage: dict[str, int] | None = USAGE) -> Behaviour:
    """Answer like an OpenAI server: a completion, or events ending in usage and [DONE]."""

    async def respond(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not body.get("stream"):
            completion = {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "model": UPSTREAM_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                **({"usage": usage} if usage else {}),
            }
            return web.json_response(completion)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        await stream.write(chunk({"role": "assistant", "content": ""}))
        words = content.split(" ")
        for i, word in enumerate(words):
            await stream.write(chunk({"content": word if i == 0 else f" {word}"}))
            await asyncio.sleep(0.002)
        await stream.write(chunk({}, "stop"))
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            await stream.write(b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n")
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream

    return respond


def error(
    status: int, message: str = "upstream says no", headers: dict[str, str] | None = None
) -> Behaviour:
    async def respond(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        payload = {"error": {"message": message, "type": "x", "param": "messages", "code": "c1"}}
        return web.json_response(payload, status=status, headers=headers)

    return respond


def slow(seconds: float) -> Behaviour:
    async def respond(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await answer()(request, body)

    return respond


def broken_stream(*, then_silent: float | None = None) -> Behaviour:
    """Send the first words, then drop the connection (or fall silent for a while)."""

    async def respond(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        await stream.write(chunk({"role": "assistant", "content": "First words"}))
        if then_silent is not None:
            await asyncio.sleep(then_silent)
        else:
            assert request.transport is not None
            request.transport.abort()
        return stream

    return respond


class ScriptedUpstream:
    """An OpenAI-compatible server that records each call and answers as scripted."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.script: list[Behaviour] = []
        self.default: Behaviour = answer()
        self.url = ""

    @property
    def calls(self) -> int:
        return len(self.received)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        self.authorization.append(request.headers.get("Authorization"))
        behaviour = self.script.pop(0) if self.script else self.default
        return await behaviour(request, body)


def run_in_thread(setup: Callable[[asyncio.AbstractEventLoop], Awaitable[Any]]) -> ExitStack:
    """Run a server on its own event loop in a daemon thread until the stack closes."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    teardown = asyncio.run_coroutine_threadsafe(setup(loop), loop).result(timeout=10)
    stack = ExitStack()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(teardown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    stack.callback(stop)
    return stack


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    fake = ScriptedUpstream()
    port = free_port()

    async def setup(loop: asyncio.AbstractEventLoop) -> Callable[[], Awaitable[None]]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", fake.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner.cleanup

    fake.url = f"http://127.0.0.1:{port}/v1"
    with run_in_thread(setup):
        yield fake


Gateway = Callable[..., TestClient]


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


@pytest.fixture
def gateway(metrics: ServiceMetrics) -> Iterator[Gateway]:
    """Start gateways in front of an upstream URL; settings sections override the defaults."""
    with ExitStack() as stack:

        def start(url: str, **sections: dict[str, Any]) -> TestClient:
            upstream: dict[str, Any] = {
                "url": url,
                "model": UPSTREAM_MODEL,
                "api_key": UPSTREAM_KEY,
                "retries": 2,
                "retry_backoff_s": 0.01,
                "first_byte_timeout_s": 10,
                "read_timeout_s": 10,
                **sections.pop("upstream", {}),
            }
            data = {"model": MODEL, "backend": "openai", "upstream": upstream, **sections}
            app = create_app(ServiceSettings.model_validate(data), metrics=metrics)
            return stack.enter_context(TestClient(app))

        yield start


def chat(content: Any = "Say hello", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}


def sse_events(text: str) -> list[str]:
    assert text.endswith("\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e[len("data: ") :] for e in events]


def streamed_text(events: list[str]) -> str:
    return "".join(
        c["delta"].get("content", "")
        for e in events
        if e != "[DONE]"
        for c in orjson.loads(e)["choices"]
    )


def outcome(metrics: ServiceMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value("inferops_upstream_requests_total", {"outcome": name})
    return value or 0.0


def assert_error(response: Any, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert err["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    return err


# --- answers -----------------------------------------------------------------------------


def test_answer_comes_from_the_upstream_with_its_model_and_key(
    upstream: ScriptedUpstream, gateway: Gateway, metrics: ServiceMetrics
) -> None:
    client = gateway(upstream.url)
    response = client.post(CHAT, json=chat(max_tokens=20, temperature=0.5, seed=3))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == USAGE
    (sent,) = upstream.received
    assert sent["model"] == UPSTREAM_MODEL
    assert (sent["max_tokens"], sent["temperature"], sent["seed"]) == (20, 0.5, 3)
    assert "stream_options" not in sent
    assert upstream.authorization == [f"Bearer {UPSTREAM_KEY}"]
    assert outcome(metrics, "ok") == 1


def test_no_authorization_is_sent_without_a_key(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    client = gateway(upstream.url, upstream={"api_key": None, "model": None})
    assert client.post(CHAT, json=chat()).status_code == 200
    assert upstream.authorization == [None]
    assert upstream.received[0]["model"] == MODEL


def test_stream_relays_the_pieces_and_ends_with_usage_and_done(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    client = gateway(upstream.url)
    response = client.post(CHAT, json=chat(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == ANSWER
    finish = orjson.loads(events[-3])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert orjson.loads(events[-2])["usage"] == USAGE
    assert upstream.received[0]["stream_options"] == {"include_usage": True}


def test_usage_is_asked_of_the_upstream_even_when_the_client_did_not(
    upstream: ScriptedUpstream, gateway: Gateway, metrics: ServiceMetrics
) -> None:
    client = gateway(upstream.url)
    events = sse_events(client.post(CHAT, json=chat(stream=True)).text)
    assert events[-1] == "[DONE]"
    assert all("usage" not in orjson.loads(e) for e in events[:-1])
    assert upstream.received[0]["stream"] is True
    assert upstream.received[0]["stream_options"] == {"include_usage": True}
    # The upstream's counts, not an estimate, are what the gateway accounts.
    tokens = metrics.registry.get_sample_value("inferops_output_tokens_total", {"route": CHAT})
    assert tokens == USAGE["completion_tokens"]


def test_a_stream_without_usage_is_counted_approximately(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = answer(usage=None)
    client = gateway(upstream.url)
    events = sse_events(
        client.post(CHAT, json=chat(stream=True, stream_options={"include_usage": True})).text
    )
    usage = orjson.loads(events[-2])["usage"]
    assert usage["completion_tokens"] == math.ceil(len(ANSWER) / 4)
    assert usage["prompt_tokens"] == math.ceil(len("Say hello") / 4)


def test_masked_pii_never_reaches_the_upstream(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    client = gateway(upstream.url, pii={"mode": "mask"})
    request = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": None},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Mail alice@example.com"},
                    {"type": "text", "text": "or call +1 415 555 0100"},
                ],
            },
            {"role": "user", "content": "My card is 4111 1111 1111 1111."},
        ],
    }
    assert client.post(CHAT, json=request).status_code == 200
    sent = orjson.dumps(upstream.received[0]).decode()
    for secret in ("alice@example.com", "415 555 0100", "4111 1111 1111 1111"):
        assert secret not in sent
    messages = upstream.received[0]["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1] == {"role": "assistant", "content": None}
    parts = messages[2]["content"]
    assert [p["type"] for p in parts] == ["text", "text"]
    assert "[EMAIL]" in parts[0]["text"] and "[PHONE]" in parts[1]["text"]
    assert "[CREDIT_CARD]" in messages[3]["content"]


# --- errors and retries ------------------------------------------------------------------


def test_503s_are_retried_until_the_upstream_answers(
    upstream: ScriptedUpstream, gateway: Gateway, metrics: ServiceMetrics
) -> None:
    upstream.script = [error(503, headers={"Retry-After": "0"}), error(502)]
    client = gateway(upstream.url)
    response = client.post(CHAT, json=chat())
    assert response.status_code == 200, response.text
    assert upstream.calls == 3
    assert (outcome(metrics, "retried"), outcome(metrics, "ok")) == (2, 1)


def test_retries_are_bounded_and_the_last_answer_is_a_502(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = error(503, "overloaded")
    client = gateway(upstream.url, upstream={"retries": 3})
    err = assert_error(client.post(CHAT, json=chat()), 502, "upstream_error")
    assert "503" in err["message"] and "overloaded" in err["message"]
    assert upstream.calls == 4


def test_a_long_retry_after_is_not_waited_for(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    upstream.default = error(503, headers={"Retry-After": "30"})
    client = gateway(upstream.url)
    err = assert_error(client.post(CHAT, json=chat()), 502, "upstream_error")
    assert "503" in err["message"]
    assert upstream.calls == 1


def test_a_500_is_not_retried(upstream: ScriptedUpstream, gateway: Gateway) -> None:
    upstream.default = error(500, "model crashed")
    client = gateway(upstream.url)
    err = assert_error(client.post(CHAT, json=chat()), 502, "upstream_error")
    assert "500" in err["message"] and "model crashed" in err["message"]
    assert upstream.calls == 1


def test_429_is_passed_on_with_its_retry_after(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = error(429, "slow down", headers={"Retry-After": "7"})
    client = gateway(upstream.url)
    response = client.post(CHAT, json=chat())
    err = assert_error(response, 429, "c1")
    assert err["message"] == "slow down"
    assert response.headers["retry-after"] == "7"
    assert upstream.calls == 1


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_client_errors_are_passed_on(
    upstream: ScriptedUpstream, gateway: Gateway, status: int
) -> None:
    upstream.default = error(status, "messages[0] is not acceptable")
    client = gateway(upstream.url)
    err = assert_error(client.post(CHAT, json=chat()), status, "c1")
    assert (err["message"], err["param"]) == ("messages[0] is not acceptable", "messages")
    assert upstream.calls == 1


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_say_which_setting_to_fix(
    upstream: ScriptedUpstream, gateway: Gateway, status: int
) -> None:
    upstream.default = error(status, "bad key")
    client = gateway(upstream.url)
    err = assert_error(client.post(CHAT, json=chat()), 502, "upstream_auth_failed")
    assert "INFEROPS_UPSTREAM_API_KEY" in err["message"]
    assert UPSTREAM_KEY not in err["message"]
    assert upstream.calls == 1


def test_an_unreachable_upstream_is_retried_then_a_502(
    gateway: Gateway, metrics: ServiceMetrics
) -> None:
    client = gateway(f"http://127.0.0.1:{free_port()}/v1")
    assert_error(client.post(CHAT, json=chat()), 502, "upstream_unavailable")
    assert (outcome(metrics, "retried"), outcome(metrics, "unavailable")) == (2, 1)


def test_a_slow_first_byte_is_a_504_and_not_retried(
    upstream: ScriptedUpstream, gateway: Gateway, metrics: ServiceMetrics
) -> None:
    upstream.default = slow(3)
    client = gateway(upstream.url, upstream={"first_byte_timeout_s": 0.2})
    assert_error(client.post(CHAT, json=chat()), 504, "upstream_timeout")
    assert upstream.calls == 1
    assert outcome(metrics, "timeout") == 1


def test_a_stream_broken_midway_ends_with_an_error_event(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = broken_stream()
    client = gateway(upstream.url)
    response = client.post(CHAT, json=chat(stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert "[DONE]" not in events
    assert streamed_text(events[:-1]) == "First words"
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_error"
    assert upstream.calls == 1


def test_a_stream_that_falls_silent_ends_with_a_timeout_event(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = broken_stream(then_silent=3)
    client = gateway(upstream.url, upstream={"read_timeout_s": 0.2})
    events = sse_events(client.post(CHAT, json=chat(stream=True)).text)
    assert streamed_text(events[:-1]) == "First words"
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_timeout"
    assert upstream.calls == 1


# --- the circuit breaker ----------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def circuit_gauge(metrics: ServiceMetrics) -> float | None:
    value: float | None = metrics.registry.get_sample_value("inferops_upstream_circuit_open")
    return value


def test_the_breaker_opens_after_failures_and_closes_when_the_upstream_recovers(
    upstream: ScriptedUpstream, gateway: Gateway, metrics: ServiceMetrics
) -> None:
    upstream.default = error(503, headers={"Retry-After": "0"})
    client = gateway(
        upstream.url, upstream={"retries": 1, "breaker": {"failure_threshold": 3, "reset_s": 0.3}}
    )
    # A request's retries are one failed call to the breaker.
    for _ in range(3):
        assert_error(client.post(CHAT, json=chat()), 502, "upstream_error")
    assert upstream.calls == 6
    assert client.get("/ready").status_code == 503
    assert circuit_gauge(metrics) == 1

    refused = client.post(CHAT, json=chat())
    assert_error(refused, 503, "upstream_circuit_open")
    assert int(refused.headers["retry-after"]) >= 1
    assert upstream.calls == 6
    assert outcome(metrics, "circuit_open") >= 1

    # After reset_s exactly one trial call goes through, unretried; it fails, so the
    # breaker opens again at once.
    wait_for(lambda: client.post(CHAT, json=chat()).status_code != 503)
    assert upstream.calls == 7
    assert_error(client.post(CHAT, json=chat()), 503, "upstream_circuit_open")
    assert upstream.calls == 7

    upstream.default = answer()
    # A streamed trial closes the breaker as soon as the upstream starts answering.
    wait_for(lambda: client.post(CHAT, json=chat(stream=True)).text.endswith("[DONE]\n\n"))
    assert client.post(CHAT, json=chat()).status_code == 200
    assert client.get("/ready").status_code == 200
    assert circuit_gauge(metrics) == 0


def test_client_errors_do_not_open_the_breaker(
    upstream: ScriptedUpstream, gateway: Gateway
) -> None:
    upstream.default = error(400)
    client = gateway(upstream.url, upstream={"breaker": {"failure_threshold": 2}})
    for _ in range(4):
        assert client.post(CHAT, json=chat()).status_code == 400
    assert upstream.calls == 4
    assert client.get("/ready").status_code == 200


# --- this service as the upstream --------------------------------------------------------

SIM_MODEL = "sim-upstream"


@pytest.fixture(scope="module")
def simulated_upstream() -> Iterator[str]:
    """This service with its simulated model, served by uvicorn on loopback."""
    settings = ServiceSettings.model_validate(
        {"model": SIM_MODEL, "simulator": {"ttft_ms": 1, "tpot_ms": 0.2}}
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", loop="asyncio"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_this_service_answers_through_the_gateway_as_it_does_directly(
    simulated_upstream: str, gateway: Gateway
) -> None:
    client = gateway(simulated_upstream, upstream={"model": SIM_MODEL, "api_key": None})
    request = chat("Tell me about circuit breakers", max_tokens=24)
    with TestClient(create_app(ServiceSettings(model=SIM_MODEL))) as direct:
        expected = direct.post(CHAT, json={**request, "model": SIM_MODEL}).json()

    relayed = client.post(CHAT, json=request)
    assert relayed.status_code == 200, relayed.text
    body = relayed.json()
    assert body["model"] == MODEL
    assert body["choices"][0]["message"] == expected["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == expected["usage"]

    streamed = client.post(
        CHAT, json={**request, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == expected["choices"][0]["message"]["content"]
    assert orjson.loads(events[-2])["usage"] == expected["usage"]
