"""The response cache against a real Redis: served processes, replicas, TTLs, outages.

Each test starts its own redis-server (see ``test_service_security_redis``); the
machine's own Redis is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import numpy as np
import orjson
import redis as redis_sync
from inferops_service.semantic import SemanticIndex
from prometheus_client.parser import text_string_to_metric_families
from test_service_security_redis import (  # the shared Redis and service fixtures
    CHAT,
    MODEL,
    RedisServer,
    Service,
    counter,
    redis_server,
    start_service,
)

__all__ = ["redis_server", "start_service"]  # fixtures, used by name

QUESTION = "Explain how to reverse a linked list in Python, step by step, with an example."
NEAR = "explain how to reverse a linked list in python step by step with an example"


def config(
    redis_url: str,
    *,
    ttl_s: int = 3600,
    semantic: bool = True,
    embedder: str = "hashing",
    threshold: float | None = None,
) -> str:
    chosen = "" if threshold is None else f", threshold: {threshold}"
    return f"""
model: {MODEL}
simulator: {{ttft_ms: 1, tpot_ms: 0.1}}
redis:
  url: {redis_url}
  # Generous, so a loaded test machine does not turn a slow reply into a cache error.
  timeout_ms: 2000
cache:
  ttl_s: {ttl_s}
  exact: {{enabled: true}}
  semantic: {{enabled: {"true" if semantic else "false"}, sync_interval_ms: 50,
              embedder: {embedder}{chosen}}}
"""


def ask(service: Service, content: str = QUESTION, **fields: object) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 12}
    body.update(fields)
    response = httpx.post(f"{service.url}{CHAT}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response


def cache_of(response: httpx.Response) -> str:
    return response.headers["x-inferops-cache"]


def eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def semantic_entries(service: Service) -> float:
    """The entries in the service's semantic index (its gauge)."""
    for metric in text_string_to_metric_families(httpx.get(service.metrics_url).text):
        for sample in metric.samples:
            if sample.name == "inferops_cache_semantic_entries":
                return sample.value
    raise AssertionError("no inferops_cache_semantic_entries gauge")


def answer_keys(url: str) -> list[bytes]:
    with redis_sync.Redis.from_url(url) as client:
        return sorted(client.scan_iter("inferops:cache:answer:*"))


def test_an_exact_hit_replays_the_answer_and_leaves_the_ttl(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    service = start_service(config(redis_server.url, ttl_s=60, semantic=False))
    first = ask(service)
    assert cache_of(first) == "miss"
    (key,) = answer_keys(redis_server.url)
    with redis_sync.Redis.from_url(redis_server.url) as client:
        before = client.pttl(key)
        assert 59_000 < before <= 60_000
        time.sleep(0.3)
        second = ask(service)
        after = client.pttl(key)
    assert cache_of(second) == "hit-exact"
    assert second.json()["choices"] == first.json()["choices"]
    assert after <= before - 250  # a hit did not extend the TTL
    assert counter(service, "inferops_cache_requests", kind="exact", result="hit") == 1


def test_a_stream_is_stored_and_replayed_as_a_stream(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    service = start_service(config(redis_server.url, semantic=False))
    options = {"stream": True, "stream_options": {"include_usage": True}}
    first = ask(service, **options)
    replay = ask(service, **options)
    assert (cache_of(first), cache_of(replay)) == ("miss", "hit-exact")
    assert replay.headers["content-type"].startswith("text/event-stream")
    assert replay.text.endswith("data: [DONE]\n\n")

    def text_and_usage(body: str) -> tuple[str, object]:
        chunks = [orjson.loads(e[6:]) for e in body.split("\n\n") if e and e != "data: [DONE]"]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        return text, chunks[-1]["usage"]

    assert text_and_usage(replay.text) == text_and_usage(first.text)


def test_two_replicas_share_exact_and_semantic_entries(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    one = start_service(config(redis_server.url))
    two = start_service(config(redis_server.url))
    first = ask(one)
    assert cache_of(first) == "miss"
    assert cache_of(ask(two)) == "hit-exact"
    # The other replica reads the entry from the stream within its sync interval. Asking
    # before it has would be a miss that stores the near question as an exact entry.
    assert eventually(lambda: semantic_entries(two) == 1)
    assert cache_of(ask(two, NEAR)) == "hit-semantic"
    assert ask(two, NEAR).json()["choices"] == first.json()["choices"]
    assert cache_of(ask(two, "What is the capital of France?")) == "miss"
    # A replica started later loads the live entries from the stream.
    three = start_service(config(redis_server.url))
    assert eventually(lambda: semantic_entries(three) == 2)
    assert cache_of(ask(three, NEAR)) == "hit-semantic"
    assert counter(three, "inferops_cache_saved_usd", kind="semantic") > 0


def test_two_minilm_replicas_share_a_paraphrase_and_a_hashing_one_keeps_apart(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    # 0.97: the model's default (0.999) takes only the same text in other case and spacing.
    minilm = config(redis_server.url, embedder="minilm", threshold=0.97)
    one = start_service(minilm)
    two = start_service(minilm)
    hashing = start_service(config(redis_server.url))
    asked, paraphrase = "How can I reset my password?", "How do I reset my password?"
    first = ask(one, asked)
    assert cache_of(first) == "miss"
    # Asked before the entry arrived, the paraphrase would be stored and then hit exactly.
    assert eventually(lambda: semantic_entries(two) == 1)
    # The other process embeds the paraphrase itself and finds the entry one stored.
    hit = ask(two, paraphrase)
    assert cache_of(hit) == "hit-semantic"
    assert hit.json()["choices"] == first.json()["choices"]
    assert cache_of(ask(two, "How can I reset my username?")) == "miss"
    assert counter(two, "inferops_cache_saved_usd", kind="semantic") > 0
    # The hashing replica neither reads nor writes the model's entries.
    assert cache_of(ask(hashing, asked.upper())) == "miss"
    with redis_sync.Redis.from_url(redis_server.url) as client:
        assert client.xlen("inferops:cache:semantic:minilm") == 2
        assert client.xlen("inferops:cache:semantic") == 1


def test_answers_expire_after_their_ttl(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    service = start_service(config(redis_server.url, ttl_s=1))
    ask(service)
    assert cache_of(ask(service)) == "hit-exact"
    time.sleep(1.2)
    assert answer_keys(redis_server.url) == []
    assert cache_of(ask(service)) == "miss"
    assert cache_of(ask(service, NEAR)) == "hit-semantic"  # the fresh answer's entry


def test_with_redis_killed_requests_are_served_and_the_cache_recovers(
    redis_server: RedisServer, start_service: Callable[[str], Service]
) -> None:
    service = start_service(config(redis_server.url))
    ask(service)
    assert cache_of(ask(service)) == "hit-exact"
    redis_server.kill()
    for _ in range(5):
        assert cache_of(ask(service)) == "bypass"
    assert counter(service, "inferops_redis_errors", concern="cache") >= 1
    redis_server.start()  # empty: the entries went with it
    assert eventually(lambda: cache_of(ask(service)) == "miss")
    assert cache_of(ask(service)) == "hit-exact"
    assert eventually(lambda: cache_of(ask(service, NEAR)) == "hit-semantic")


def test_a_semantic_index_of_100k_entries_finds_the_planted_neighbour() -> None:
    # Random unit vectors are the hardest case for HNSW; 16 dimensions keep the build to
    # seconds on two cores, and the graph is the same at any dimension.
    n, dim = 100_000, 16
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = SemanticIndex(dim, n + 1)
    digests = [f"d{i}" for i in range(n)]
    index.add_many("acme/model", digests, vectors, [1e12] * n, threads=-1)
    query = rng.standard_normal(dim).astype(np.float32)
    query /= np.linalg.norm(query)
    planted = query + 0.01 * rng.standard_normal(dim).astype(np.float32)
    index.add("acme/model", "planted", planted / np.linalg.norm(planted), 1e12)
    assert len(index) == n + 1
    found = index.search("acme/model", query, now=0.0)
    assert found is not None and found[0] == "planted" and found[1] > 0.99
    assert index.search("acme/other-model", query, now=0.0) is None
