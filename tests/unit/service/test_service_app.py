"""The HTTP API in-process: response shapes, streaming, errors, identity, readiness, metrics."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import orjson
import pytest
from inferops_service.app import MAX_BODY_BYTES, EventStreamResponse, create_app, service_state
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from starlette.types import Message

with warnings.catch_warnings():
    # The TestClient prefers httpx2 (the service's "test" extra) and warns when it falls back
    # to httpx; both work, so the fallback must not fail the suite on a machine without it.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient

MODEL = "sim-test"
CHAT = "/v1/chat/completions"


def settings(**sections: dict[str, Any]) -> ServiceSettings:
    """Fast settings: a 1 ms first token and 0.1 ms per token, plus any overrides."""
    data: dict[str, Any] = {"model": MODEL, "simulator": {"ttft_ms": 1, "tpot_ms": 0.1}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return ServiceSettings.model_validate(data)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


@pytest.fixture
def client(metrics: ServiceMetrics) -> Iterator[TestClient]:
    app = create_app(settings(identity={"version": "v1.2.3", "track": "canary"}), metrics=metrics)
    with TestClient(app) as c:
        yield c


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Hi there"}]}
    body.update(fields)
    return body


def sse_events(text: str) -> list[str]:
    """Return the data payloads of an event stream, checking its framing."""
    assert text.endswith("\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e[len("data: ") :] for e in events]


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


def test_completion_has_the_openai_shape(client: TestClient) -> None:
    response = client.post(CHAT, json=chat(max_tokens=5))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert abs(body["created"] - time.time()) < 60
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 5
    assert choice["finish_reason"] == "length"
    # "Hi there" is 8 characters: ceil(8 / 4) = 2 prompt tokens.
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


def test_answers_are_deterministic(client: TestClient) -> None:
    a = client.post(CHAT, json=chat(max_tokens=20)).json()
    b = client.post(CHAT, json=chat(max_tokens=20)).json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    assert a["id"] != b["id"]


def test_answer_can_end_before_the_limit(client: TestClient) -> None:
    body = client.post(CHAT, json=chat(max_tokens=4096)).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert 32 <= body["usage"]["completion_tokens"] < 4096


def test_default_max_tokens_and_max_completion_tokens(client: TestClient) -> None:
    default = client.post(CHAT, json=chat()).json()
    assert default["usage"]["completion_tokens"] <= 64
    newer = client.post(CHAT, json=chat(max_tokens=50, max_completion_tokens=3)).json()
    assert newer["usage"]["completion_tokens"] == 3


def test_text_parts_count_as_prompt(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "abcd" * 10}]},
        {"role": "assistant", "content": None},
    ]
    body = client.post(CHAT, json=chat(messages=messages, max_tokens=1)).json()
    # Contents are joined with newlines: 9 + 1 + 40 + 1 + 0 characters -> 13 tokens.
    assert body["usage"]["prompt_tokens"] == 13


def test_known_openai_fields_are_accepted(client: TestClient) -> None:
    extra = {"temperature": 0.7, "top_p": 0.9, "user": "u1", "seed": 4, "n": 1, "stop": ["x"]}
    assert client.post(CHAT, json=chat(max_tokens=2, **extra)).status_code == 200


def test_stream_sends_chunks_then_usage_then_done(client: TestClient) -> None:
    request = chat(max_tokens=40, stream=True, stream_options={"include_usage": True})
    response = client.post(CHAT, json=request)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    content, finish, usage = chunks[:-2], chunks[-2], chunks[-1]
    assert len(content) > 2, "tokens should arrive in several chunks"
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 2, "completion_tokens": 40, "total_tokens": 42}
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    whole = client.post(CHAT, json=chat(max_tokens=40)).json()
    assert text == whole["choices"][0]["message"]["content"]


def test_stream_without_usage_has_no_usage_chunk(client: TestClient) -> None:
    events = sse_events(client.post(CHAT, json=chat(max_tokens=3, stream=True)).text)
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL}, "messages"),
        (chat(messages=[]), "messages"),
        (chat(messages="hello"), "messages"),
        (chat(messages=["hello"]), "messages[0]"),
        (chat(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat(messages=[{"role": "user"}]), "messages[0].content"),
        (chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), None),
        (chat(max_tokens=0), "max_tokens"),
        (chat(max_tokens=4097), "max_tokens"),
        (chat(max_tokens="10"), "max_tokens"),
        (chat(max_tokens=True), "max_tokens"),
        (chat(max_completion_tokens=1.5), "max_completion_tokens"),
        (chat(temperature=2.5), "temperature"),
        (chat(temperature=-0.1), "temperature"),
        (chat(temperature="hot"), "temperature"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": True}), "stream_options"),
        (chat(stream=True, stream_options={"include_usage": "y"}), "stream_options.include_usage"),
        (chat(stream=True, stream_options=[]), "stream_options"),
        (chat(n=2), "n"),
        (chat(frobnicate=1), "frobnicate"),
    ],
)
def test_invalid_requests_are_400(client: TestClient, body: Any, param: str | None) -> None:
    response = client.post(CHAT, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    else:
        assert error["param"].startswith("messages[0].content")


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"'])
def test_body_that_is_not_a_json_object_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post(CHAT, json=chat(model="gpt-9"))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    big = chat(messages=[{"role": "user", "content": "x" * MAX_BODY_BYTES}])
    response = client.post(CHAT, json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_body_over_the_limit_without_a_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (64 * 1024)

    response = client.post(CHAT, content=chunks())
    assert response.status_code == 413


def test_unknown_url_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/v2/whatever")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    wrong = client.get(CHAT)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["type"] == "invalid_request_error"


def test_injected_errors_are_500_in_the_error_shape() -> None:
    app = create_app(settings(faults={"error_rate": 1.0}))
    with TestClient(app) as client:
        response = client.post(CHAT, json=chat())
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "simulated fault" in error["message"]


def test_seeded_error_injection_repeats_across_instances() -> None:
    def statuses() -> list[int]:
        app = create_app(settings(faults={"error_rate": 0.5, "seed": 11}))
        with TestClient(app) as client:
            return [client.post(CHAT, json=chat(max_tokens=1)).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert set(first) == {200, 500}


def test_token_inflation_shows_in_usage() -> None:
    app = create_app(settings(faults={"token_inflation": 2.0}))
    with TestClient(app) as client:
        body = client.post(CHAT, json=chat(max_tokens=10)).json()
    assert body["usage"]["completion_tokens"] == 20
    assert len(body["choices"][0]["message"]["content"].split()) == 20


def test_extra_latency_delays_the_answer() -> None:
    app = create_app(settings(faults={"extra_latency_ms": 60}))
    with TestClient(app) as client:
        started = time.perf_counter()
        assert client.post(CHAT, json=chat(max_tokens=1)).status_code == 200
        assert time.perf_counter() - started >= 0.06


def test_identity_headers_are_on_every_response(client: TestClient) -> None:
    responses = [
        client.post(CHAT, json=chat(max_tokens=1)),
        client.post(CHAT, json=chat(max_tokens=1, stream=True)),
        client.post(CHAT, json=chat(model="nope")),
        client.get("/health"),
        client.get("/ready"),
        client.get("/v1/models"),
        client.get("/missing"),
    ]
    for response in responses:
        assert response.headers["x-inferops-version"] == "v1.2.3"
        assert response.headers["x-inferops-track"] == "canary"


def test_models_list_and_lookup(client: TestClient) -> None:
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [MODEL]
    assert listing["data"][0]["object"] == "model"
    assert client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert client.get("/v1/models/other").status_code == 404


def test_health_and_readiness_through_the_lifecycle() -> None:
    app = create_app(settings())
    client = TestClient(app)
    not_started = client.get("/ready")
    assert (not_started.status_code, not_started.json()) == (503, {"status": "starting"})
    with client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        service_state(app).begin_draining()
        draining = client.get("/ready")
        assert (draining.status_code, draining.json()) == (503, {"status": "draining"})
        assert client.get("/health").status_code == 200
        assert client.post(CHAT, json=chat(max_tokens=1)).status_code == 200


def test_metrics_count_requests_tokens_and_cost(
    client: TestClient, metrics: ServiceMetrics
) -> None:
    client.post(CHAT, json=chat(max_tokens=10))
    client.post(CHAT, json=chat(max_tokens=10, stream=True))
    client.post(CHAT, json=chat(model="nope"))
    client.get("/nowhere/at/all")
    client.get("/v1/models/some/model")
    route = {"route": CHAT}
    assert sample(metrics, "inferops_requests_total", status="200", **route) == 2
    assert sample(metrics, "inferops_requests_total", status="404", **route) == 1
    assert sample(metrics, "inferops_requests_total", status="500", **route) == 0
    assert sample(metrics, "inferops_requests_total", route="other", status="404") == 1
    templated = {"route": "/v1/models/{model:path}", "status": "404"}
    assert sample(metrics, "inferops_requests_total", **templated) == 1
    assert sample(metrics, "inferops_request_duration_seconds_count", status="200", **route) == 2
    assert sample(metrics, "inferops_time_to_first_token_seconds_count", **route) == 2
    assert sample(metrics, "inferops_time_per_output_token_seconds_count", **route) == 2
    assert sample(metrics, "inferops_input_tokens_total", **route) == 4
    assert sample(metrics, "inferops_output_tokens_total", **route) == 20
    expected_cost = (4 * 0.05 + 20 * 0.20) / 1e6
    assert sample(metrics, "inferops_cost_usd_total", **route) == pytest.approx(expected_cost)
    assert sample(metrics, "inferops_inflight_requests") == 0
    assert sample(metrics, "inferops_simulator_active_sequences") == 0
    text = metrics.exposition().decode()
    assert (
        'inferops_request_duration_seconds_bucket{le="0.005",route="/v1/chat/completions"' in text
    )
    assert "version" not in text and "track" not in text


def test_stream_duration_runs_to_the_last_byte(metrics: ServiceMetrics) -> None:
    slow = settings(simulator={"ttft_ms": 5, "tpot_ms": 2})
    with TestClient(create_app(slow, metrics=metrics)) as client:
        client.post(CHAT, json=chat(max_tokens=30, stream=True))
    route = {"route": CHAT, "status": "200"}
    duration = sample(metrics, "inferops_request_duration_seconds_sum", **route)
    assert duration is not None
    # 5 ms to the first token, then 29 tokens at 2 ms.
    assert duration >= 0.005 + 29 * 0.002


def test_unexpected_errors_are_500_counted_and_stamped(
    metrics: ServiceMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings(identity={"version": "v9"}), metrics=metrics)

    def explode(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("inferops_service.backends.simulator.prompt_fingerprint", explode)
    with TestClient(app) as client:
        response = client.post(CHAT, json=chat())
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert response.headers["x-inferops-version"] == "v9"
    assert sample(metrics, "inferops_requests_total", route=CHAT, status="500") == 1


def test_stream_stops_generating_when_the_client_leaves() -> None:
    closed: list[bool] = []
    sent: list[Message] = []

    async def events() -> AsyncGenerator[bytes, None]:
        try:
            for _ in range(1000):
                yield b"data: x\n\n"
                await asyncio.sleep(0.001)
        finally:
            closed.append(True)

    async def main() -> None:
        left = asyncio.Event()

        async def receive() -> Message:
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if len(sent) == 3:
                left.set()

        scope = {"type": "http", "method": "POST", "path": CHAT}
        await EventStreamResponse(events())(scope, receive, send)

    asyncio.run(main())
    assert closed == [True]
    assert 3 <= len(sent) < 10
    assert sent[0]["type"] == "http.response.start"
