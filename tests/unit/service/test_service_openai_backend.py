"""The openai backend without a network: the body it forwards, the breaker, its metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from inferops_service.backends import BackendError, create_backend
from inferops_service.backends.breaker import State
from inferops_service.backends.openai import OpenAIBackend
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import parse_chat_request, with_texts
from prometheus_client.parser import text_string_to_metric_families


def settings(**upstream: Any) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {
            "model": "gw",
            "backend": "openai",
            "upstream": {"url": "http://127.0.0.1:9/v1", **upstream},
        }
    )


def parsed(messages: list[dict[str, Any]], **fields: Any) -> Any:
    body = orjson.dumps({"model": "gw", "messages": messages, **fields})
    return parse_chat_request(body, 4096)


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "one"},
    {"role": "assistant", "content": None, "tool_calls": []},
    {
        "role": "user",
        "name": "bob",
        "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "three"}],
    },
    {"role": "user", "content": "four"},
]


def test_with_texts_replaces_each_text_in_request_order() -> None:
    chat = parsed(MESSAGES, temperature=0.2)
    assert chat.texts == ("one", "two", "three", "four")
    body = with_texts(chat.body, ("1", "2", "3", "4"))
    assert body["messages"] == [
        {"role": "system", "content": "1"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {
            "role": "user",
            "name": "bob",
            "content": [{"type": "text", "text": "2"}, {"type": "text", "text": "3"}],
        },
        {"role": "user", "content": "4"},
    ]
    assert body["temperature"] == 0.2
    # The client's body is left as it was.
    assert chat.body["messages"] == MESSAGES


@pytest.mark.parametrize("texts", [("1", "2", "3"), ("1", "2", "3", "4", "5")])
def test_with_texts_refuses_a_count_that_does_not_match(texts: tuple[str, ...]) -> None:
    chat = parsed(MESSAGES)
    with pytest.raises(ValueError, match="texts than the messages hold"):
        with_texts(chat.body, texts)


def test_the_factory_builds_it_and_it_is_not_ready_before_start() -> None:
    backend = create_backend(settings(), ServiceMetrics())
    assert isinstance(backend, OpenAIBackend)
    assert not backend.ready()


def test_opening_before_start_is_a_programming_error() -> None:
    backend = OpenAIBackend(settings(), ServiceMetrics())
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(backend.open(parsed(MESSAGES), ("a", "b", "c", "d"), False))


def test_an_open_breaker_refuses_with_503_and_the_seconds_to_the_trial() -> None:
    now = [50.0]
    backend = OpenAIBackend(
        settings(breaker={"failure_threshold": 2, "reset_s": 10}),
        ServiceMetrics(),
        clock=lambda: now[0],
    )

    async def scenario() -> BackendError:
        await backend.start()
        try:
            assert backend.ready()
            backend.breaker.record_failure()
            backend.breaker.record_failure()
            assert not backend.ready()
            now[0] += 2.5
            with pytest.raises(BackendError) as refused:
                await backend.open(parsed(MESSAGES), ("a", "b", "c", "d"), False)
            now[0] += 7.5
            assert backend.ready()
            return refused.value
        finally:
            await backend.stop()

    error = asyncio.run(scenario())
    assert (error.status, error.code, error.type) == (503, "upstream_circuit_open", "server_error")
    assert error.headers == {"Retry-After": "8"}
    assert backend.breaker.state is State.HALF_OPEN


def families(metrics: ServiceMetrics) -> dict[str, Any]:
    text = metrics.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_upstream_metrics_exist_only_with_the_openai_backend() -> None:
    simulated = ServiceMetrics()
    create_backend(ServiceSettings(), simulated)
    assert not any(name.startswith("inferops_upstream") for name in families(simulated))

    metrics = ServiceMetrics()
    backend = OpenAIBackend(settings(breaker={"failure_threshold": 1}), metrics)
    found = families(metrics)
    assert found["inferops_upstream_requests"].type == "counter"
    outcomes = {
        s.labels["outcome"]: s.value
        for s in found["inferops_upstream_requests"].samples
        if s.name.endswith("_total")
    }
    assert outcomes == dict.fromkeys(
        ("ok", "error", "timeout", "unavailable", "circuit_open", "retried"), 0.0
    )
    gauge = "inferops_upstream_circuit_open"
    assert metrics.registry.get_sample_value(gauge) == 0
    backend.breaker.record_failure()
    assert metrics.registry.get_sample_value(gauge) == 1


def test_a_second_backend_on_the_same_metrics_reads_its_own_breaker() -> None:
    metrics = ServiceMetrics()
    OpenAIBackend(settings(breaker={"failure_threshold": 1}), metrics)
    second = OpenAIBackend(settings(breaker={"failure_threshold": 1}), metrics)
    second.breaker.record_failure()
    assert metrics.registry.get_sample_value("inferops_upstream_circuit_open") == 1
