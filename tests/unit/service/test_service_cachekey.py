"""Cache keys: the canonical request, its scoping, and the client's Cache-Control."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from inferops_service.cachekey import Directives, RequestKey, cache_directives, request_key
from inferops_service.protocol import parse_chat_request

MODEL = "sim-test"


def body(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    data.update(fields)
    return data


def key(data: dict[str, Any], tenant: str = "acme", **options: Any) -> RequestKey:
    """The key of a request as sent (its texts unmasked)."""
    chat = parse_chat_request(orjson.dumps(data), 4096)
    return request_key(tenant, chat, chat.texts, **options)


def test_the_key_does_not_depend_on_json_key_order() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}}]
    one = body(temperature=0.2, max_tokens=16, tools=tools)
    raw = (
        b'{"tools": [{"function": {"parameters": {"a": 2, "b": 1}, "name": "f"},'
        b' "type": "function"}], "max_tokens": 16, "messages": [{"content": "Be brief.",'
        b' "role": "system"}, {"content": "What is the capital of France?", "role": "user"}],'
        b' "temperature": 0.2, "model": "sim-test"}'
    )
    chat = parse_chat_request(raw, 4096)
    assert request_key("acme", chat, chat.texts) == key(one)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.3),
        ("top_p", 0.5),
        ("seed", 7),
        ("stop", ["\n"]),
        ("max_tokens", 17),
        ("presence_penalty", 0.1),
        ("frequency_penalty", 0.1),
        ("logit_bias", {"50256": -100}),
        ("response_format", {"type": "json_object"}),
        ("tools", [{"type": "function", "function": {"name": "g"}}]),
        ("tool_choice", "none"),
        ("reasoning_effort", "low"),
    ],
)
def test_every_generation_parameter_changes_the_key(field: str, value: Any) -> None:
    assert key(body(**{field: value})).answer != key(body()).answer


def test_model_tenant_and_every_message_detail_change_the_key() -> None:
    base = key(body()).answer
    assert key(body(model="other-model")).answer != base
    assert key(body(), tenant="globex").answer != base
    changed = body()
    changed["messages"][0]["content"] = "Be thorough."
    assert key(changed).answer != base
    changed = body()
    changed["messages"][0]["role"] = "developer"
    assert key(changed).answer != base
    changed = body()
    changed["messages"][1]["name"] = "jane"
    assert key(changed).answer != base


def test_message_boundaries_are_part_of_the_key() -> None:
    one = body(messages=[{"role": "user", "content": "a\nb"}])
    two = body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    parts = body(messages=[{"role": "user", "content": [{"type": "text", "text": "a\nb"}]}])
    assert len({key(one).answer, key(two).answer, key(parts).answer}) == 3


def test_transport_and_bookkeeping_fields_do_not_change_the_key() -> None:
    base = key(body()).answer
    assert key(body(stream=True)).answer == base
    assert key(body(stream=True, stream_options={"include_usage": True})).answer == base
    assert key(body(user="u-1", metadata={"x": "y"}, store=False)).answer == base


def test_max_tokens_aliases_and_integral_numbers_key_alike() -> None:
    assert key(body(max_tokens=16)) == key(body(max_completion_tokens=16))
    assert key(body(temperature=1)) == key(body(temperature=1.0))
    assert key(body(temperature=1)) != key(body())


def test_the_key_is_built_from_the_texts_given_not_the_body() -> None:
    data = body(messages=[{"role": "user", "content": "mail jane@example.com"}])
    chat = parse_chat_request(orjson.dumps(data), 4096)
    masked = request_key("acme", chat, ["mail [EMAIL]"])
    other = body(messages=[{"role": "user", "content": "mail [EMAIL]"}])
    assert masked == key(other)
    assert masked != key(data)


def test_semantic_scope_leaves_out_only_the_last_user_message() -> None:
    first = key(body(), semantic=True)
    assert first.query == "What is the capital of France?"
    assert first.scope is not None
    reworded = body()
    reworded["messages"][1]["content"] = "capital of france?"
    again = key(reworded, semantic=True)
    assert again.scope == first.scope and again.answer != first.answer
    assert again.query == "capital of france?"
    assert key(body(), tenant="globex", semantic=True).scope != first.scope
    assert key(body(model="other-model"), semantic=True).scope != first.scope
    assert key(body(max_tokens=5), semantic=True).scope != first.scope
    system = body()
    system["messages"][0]["content"] = "Answer in French."
    assert key(system, semantic=True).scope != first.scope


def test_semantic_takes_single_turn_requests_only_by_default() -> None:
    turns = body(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is the capital of France?"},
        ]
    )
    assert key(turns, semantic=True).scope is None
    multi = key(turns, semantic=True, single_turn_only=False)
    assert multi.scope is not None and multi.query == "What is the capital of France?"
    ends_with_assistant = body(messages=[{"role": "assistant", "content": "Hi"}])
    assert key(ends_with_assistant, semantic=True, single_turn_only=False).scope is None
    assert key(body()).scope is None  # semantic off: no scope computed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Directives(True, True)),
        (b"", Directives(True, True)),
        (b"max-age=60", Directives(True, True)),
        (b"no-cache", Directives(False, True)),
        (b"No-Cache, max-age=0", Directives(False, True)),
        (b"no-store", Directives(False, False)),
        (b"no-cache, no-store", Directives(False, False)),
    ],
)
def test_cache_control_directives(header: bytes | None, expected: Directives) -> None:
    assert cache_directives(header) == expected
