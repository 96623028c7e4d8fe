"""The semantic cache's vector index: local HNSW graphs per scope, shared through Redis.

Contract:

- An entry is (scope, answer digest, unit vector, expiry in Unix seconds). The scope is a
  digest of the tenant, the model, every generation parameter and every message but the
  last user message (see :mod:`inferops_service.cachekey`), so a search only ever sees
  entries that may answer the request: never another tenant's or another model's.
- :class:`SemanticIndex` keeps one hnswlib graph (inner product on unit vectors: cosine)
  per scope, created on the scope's first entry and dropped with its last. It holds at most
  ``max_entries`` live entries in all; past that, and once expired, entries are removed
  oldest first (deleted slots are reused). :meth:`SemanticIndex.search` returns the
  nearest live entry of a scope and its cosine similarity; the caller applies the
  threshold. At 100k entries a search visits a few hundred nodes (about 0.1-0.3 ms).
- Sharing: a replica that stores an answer adds the entry to its own index at once and
  appends it (scope, digest, vector as float32 bytes, expiry) to its embedder's Redis
  stream (:func:`stream_key`: ``{prefix}cache:semantic`` for ``hashing``, the name it had
  before there were other embedders, ``{prefix}cache:semantic:{embedder}`` for the
  others), capped at about ``max_entries`` records. A replica reads only its embedder's
  stream and its index only holds that embedder's vectors, so in a fleet that mixes
  embedders (a rollout) no vector is ever compared with one of another embedder; each
  embedder's replicas share among themselves. Every replica reads
  the stream from its start when it starts, then every ``sync_interval_ms`` from the last
  record it read (:class:`SemanticSync`), and adds what it has not seen; an entry it
  already holds just takes the later expiry. So every replica sees every entry within one
  interval, and a new replica starts with the live ones. The answers themselves live in
  Redis under their digest with the TTL (one copy for both cache kinds); the index only
  points at them, so a hit is one local search and one GET, and an entry whose answer has
  expired or been evicted in Redis is a miss that removes it. A replica that falls so far
  behind that the stream has been trimmed past its position misses those entries: less
  recall, never a wrong answer.
- The graphs are used from the event loop thread only (hnswlib's resize and delete are
  not safe alongside searches from other threads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hnswlib
import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from inferops_service.embedding import HASHING, Vector

# HNSW graph parameters: M links per node and the candidate lists while building and
# searching. Recall near 1 for near-duplicates; a missed neighbour is a miss, not an error.
LINKS = 16
EF_CONSTRUCTION = 64
EF_SEARCH = 64
INITIAL_SLOTS = 64
PULL_BATCH = 1000

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Scope:
    """One scope's graph and the mapping between its labels and answer digests."""

    graph: Any
    labels: dict[str, int] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    expiry: dict[str, float] = field(default_factory=dict)
    deleted: int = 0
    next_label: int = 0


class SemanticIndex:
    """Nearest-neighbour search over live entries, one graph per scope, bounded in size."""

    def __init__(self, dim: int, max_entries: int) -> None:
        self.dim = dim
        self.max_entries = max_entries
        self._scopes: dict[str, _Scope] = {}
        # Entries in the order they were added: expiry, scope, digest. Stale rows (an entry
        # removed or re-added since) are skipped when they reach the front.
        self._order: deque[tuple[float, str, str]] = deque()
        self._live = 0

    def __len__(self) -> int:
        """Return the number of live entries."""
        return self._live

    def add(self, scope: str, digest: str, vector: Vector, expires_at: float) -> None:
        """Add one entry, or extend the expiry of the entry already held."""
        self.add_many(scope, [digest], vector.reshape(1, -1), [expires_at])

    def add_many(
        self,
        scope: str,
        digests: Sequence[str],
        vectors: Vector,
        expires_at: Sequence[float],
        *,
        threads: int = 1,
    ) -> None:
        """Add entries of one scope; ``vectors`` has one row per digest."""
        held = self._scopes.get(scope)
        new_rows: list[int] = []
        batch: set[str] = set()
        for row, digest in enumerate(digests):
            if held is not None and digest in held.expiry:
                if expires_at[row] > held.expiry[digest]:
                    held.expiry[digest] = expires_at[row]
                    self._order.append((expires_at[row], scope, digest))
            elif digest not in batch:
                batch.add(digest)
                new_rows.append(row)
        if not new_rows:
            return
        if held is None:
            held = self._scopes[scope] = _Scope(self._new_graph())
        graph = held.graph
        fresh = max(0, len(new_rows) - held.deleted)
        needed = graph.get_current_count() + fresh
        if needed > graph.get_max_elements():
            graph.resize_index(max(needed, 2 * graph.get_max_elements()))
        labels = np.arange(held.next_label, held.next_label + len(new_rows), dtype=np.uint64)
        held.next_label += len(new_rows)
        graph.add_items(
            np.ascontiguousarray(vectors[new_rows], dtype=np.float32),
            labels,
            num_threads=threads,
            replace_deleted=True,
        )
        held.deleted -= len(new_rows) - fresh
        for row, label in zip(new_rows, labels.tolist(), strict=True):
            digest = digests[row]
            held.labels[digest] = label
            held.digests[label] = digest
            held.expiry[digest] = expires_at[row]
            self._order.append((expires_at[row], scope, digest))
        self._live += len(new_rows)
        self._evict_over_capacity()

    def search(self, scope: str, vector: Vector, now: float) -> tuple[str, float] | None:
        """Return the digest of the scope's nearest live entry and its cosine similarity."""
        held = self._scopes.get(scope)
        if held is None:
            return None
        labels, distances = held.graph.knn_query(vector, k=1, num_threads=1)
        label = int(labels[0][0])
        digest = held.digests.get(label)
        if digest is None:
            return None
        if held.expiry[digest] <= now:
            self.discard(scope, digest)
            return None
        return digest, 1.0 - float(distances[0][0])

    def discard(self, scope: str, digest: str) -> None:
        """Remove an entry, if held (its answer is gone from Redis, or it expired)."""
        held = self._scopes.get(scope)
        if held is None:
            return
        label = held.labels.pop(digest, None)
        if label is None:
            return
        del held.digests[label]
        del held.expiry[digest]
        self._live -= 1
        if not held.labels:
            # The scope's last entry: drop the graph and its memory altogether.
            del self._scopes[scope]
            return
        held.graph.mark_deleted(label)
        held.deleted += 1

    def expire(self, now: float) -> int:
        """Remove the entries expired by ``now`` from the front of the order; return how many."""
        removed = 0
        while self._order and self._order[0][0] <= now:
            expires_at, scope, digest = self._order.popleft()
            if self._current(expires_at, scope, digest):
                self.discard(scope, digest)
                removed += 1
        return removed

    def _evict_over_capacity(self) -> None:
        while self._live > self.max_entries and self._order:
            expires_at, scope, digest = self._order.popleft()
            if self._current(expires_at, scope, digest):
                self.discard(scope, digest)

    def _current(self, expires_at: float, scope: str, digest: str) -> bool:
        """Whether an order row still describes a held entry (it was not re-added since)."""
        held = self._scopes.get(scope)
        return held is not None and held.expiry.get(digest) == expires_at

    def _new_graph(self) -> Any:
        graph = hnswlib.Index(space="ip", dim=self.dim)
        graph.init_index(
            max_elements=INITIAL_SLOTS,
            ef_construction=EF_CONSTRUCTION,
            M=LINKS,
            allow_replace_deleted=True,
        )
        graph.set_ef(EF_SEARCH)
        return graph


def stream_key(key_prefix: str, embedder: str = HASHING) -> str:
    """Return the Redis stream through which replicas with ``embedder`` share entries."""
    base = f"{key_prefix}cache:semantic"
    # The hashing stream keeps its first name, so replicas of earlier versions still share.
    return base if embedder == HASHING else f"{base}:{embedder}"


def entry_fields(scope: str, digest: str, vector: Vector, expires_at: float) -> dict[str, Any]:
    """Return the stream record of one entry."""
    return {
        "s": scope,
        "d": digest,
        "v": np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
        "e": repr(expires_at),
    }


class SemanticSync:
    """Reads the entries other replicas appended to the stream into the local index."""

    def __init__(self, index: SemanticIndex, redis: Redis, key: str, where: str) -> None:
        self._index = index
        self._redis = redis
        self._key = key
        self._where = where
        # Stream ids only grow; "0" reads from the start, the live entries a new replica needs.
        self.last_id = "0"
        self._failing = False

    async def pull(self) -> int:
        """Read every record after the last one read; return how many were added or renewed."""
        seen = 0
        while True:
            reply: Any = await self._redis.xread({self._key: self.last_id}, count=PULL_BATCH)
            records = _records(reply)
            if not records:
                return seen
            last = records[-1][0]
            # Moved past first: a batch that cannot be added is skipped, not read forever.
            self.last_id = last.decode() if isinstance(last, bytes) else str(last)
            self._add(records, time.time())
            seen += len(records)
            if len(records) < PULL_BATCH:
                return seen
            await asyncio.sleep(0)  # let requests run between batches

    async def run(self, interval_s: float, on_error: Callable[[], None]) -> None:
        """Pull every ``interval_s`` until cancelled; count and log failures, keep going."""
        while True:
            try:
                self._index.expire(time.time())
                await self.pull()
                if self._failing:
                    log.info("semantic cache sync with %s works again", self._where)
                    self._failing = False
            except (RedisError, OSError) as exc:
                on_error()
                if not self._failing:
                    log.warning("semantic cache cannot sync with %s: %s", self._where, exc)
                    self._failing = True
            except Exception:
                # Keep syncing: one bad batch must not stop this replica seeing new entries.
                log.exception("semantic cache sync failed; retrying")
            await asyncio.sleep(interval_s)

    def _add(self, records: list[Any], now: float) -> None:
        """Add the live records, a batch per scope."""
        by_scope: dict[str, tuple[list[str], list[bytes], list[float]]] = {}
        dim = self._index.dim
        for _, fields in records:
            try:
                scope = fields[b"s"].decode()
                digest = fields[b"d"].decode()
                vector = fields[b"v"]
                expires_at = float(fields[b"e"])
            except (KeyError, ValueError, UnicodeDecodeError):
                continue  # not a record of ours; skip it rather than stop syncing
            if expires_at <= now or len(vector) != dim * 4:
                continue
            digests, vectors, expiries = by_scope.setdefault(scope, ([], [], []))
            digests.append(digest)
            vectors.append(vector)
            expiries.append(expires_at)
        for scope, (digests, vectors, expiries) in by_scope.items():
            matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(-1, dim)
            self._index.add_many(scope, digests, matrix, expiries)


def _records(reply: Any) -> list[Any]:
    """Return the (id, fields) records of one stream's XREAD reply, in RESP2 or RESP3 shape."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return list(streams[0][0]) if streams and streams[0] else []
    return list(reply[0][1])
