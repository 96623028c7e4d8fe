"""The service's one Redis client, shared by every concern that needs Redis.

Contract:

- :func:`connect` returns a ``redis.asyncio`` client over one bounded, blocking connection
  pool built from ``redis`` settings. It does no I/O: connections open on first use, in the
  event loop that uses them, so build it inside the app's lifespan and close it there.
- Every command fails within ``redis.timeout_ms`` (connect, read, and waiting for a free
  pooled connection). A broken connection is retried once on a fresh one, which is what
  a Redis restart needs; a timeout is not retried, since the command may have run.
- The rate limiter uses it now; the response cache is meant to take the same client, so
  one pool serves both. Which concern fails open or closed is ``redis.on_error``.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from inferops_service.config import RedisSettings, redact_url


def connect(settings: RedisSettings) -> Redis:
    """Return a client for ``redis.url`` with one shared, bounded connection pool."""
    if settings.url is None:
        raise ValueError("redis.url is not set: set it or INFEROPS_REDIS_URL")
    timeout = settings.timeout_ms / 1000
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)


def describe(settings: RedisSettings) -> str:
    """Return where Redis is, for messages, without its password."""
    return f"Redis at {redact_url(settings.url)}"
