"""Per-key rate limits: two token buckets (requests and tokens per minute) kept in Redis.

Contract:

- A key with ``rpm`` holds a bucket of ``rpm`` requests that refills continuously at
  ``rpm`` per minute; ``tpm`` likewise for tokens. A request takes one request and its
  token estimate; it is admitted only if both buckets hold enough, and then takes from
  both. An unset limit is not checked. A full bucket allows a burst of a whole minute.
- Both buckets of a key live in one Redis hash and are read, refilled and updated by ONE
  Lua script (:data:`SCRIPT`) on Redis's own clock, so every replica sharing the Redis
  shares the limit, and concurrent requests cannot overspend it. Per request that is one
  ``EVALSHA``, falling back to ``EVAL`` when Redis answers ``NOSCRIPT`` (after a restart
  or ``SCRIPT FLUSH``), which also loads the script again.
- A limiter keeps one round trip in flight. Calls that arrive meanwhile wait and then go
  out together, as one pipeline, so under load the per-command client cost is shared
  (measured with redis-py: about 125 us of CPU for one ``EVALSHA`` alone, about 40 us each
  in pipelines of 16 or more); a lone call is sent at once, without waiting.
- A refusal says which bucket ran short and how long until it holds enough
  (:attr:`Decision.retry_after_s`). Refused requests take nothing.
- A request that asks for more tokens than the whole ``tpm`` bucket can never pass; it is
  refused at once, without Redis, with no retry time.
- Once Redis has refused a key, later requests of that key are refused locally, without a
  round trip, while the bucket cannot have refilled enough: other replicas only take from
  a bucket. (If Redis loses the bucket, or a replica refills it faster with a higher
  limit, such a local refusal is at most one retry interval too cautious.)
- :class:`LimiterUnavailable` means Redis could not answer; the caller applies
  ``redis.on_error.auth``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from inferops_service.auth import Principal

Bucket = Literal["requests", "tokens"]

# KEYS[1]: the key's hash. ARGV: rpm, tpm (0: no limit), tokens wanted.
# Returns {admitted (0/1), wait in ms, short bucket (0 none, 1 requests, 2 tokens),
#          requests left, tokens left} with the levels as strings (they are fractional).
SCRIPT = """
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + clock[2] / 1000
local state = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local elapsed = math.max(0, now - (tonumber(state[3]) or now))
local function level(stored, cap)
  if cap <= 0 then return 0 end
  local value = tonumber(stored)
  if value == nil then return cap end
  return math.min(cap, value + elapsed * cap / 60000)
end
local r = level(state[1], rpm)
local t = level(state[2], tpm)
local wait, short = 0, 0
if rpm > 0 and r < 1 then
  wait, short = (1 - r) * 60000 / rpm, 1
end
if tpm > 0 and t < want then
  local w = (want - t) * 60000 / tpm
  if w > wait then wait, short = w, 2 end
end
if short > 0 then
  return {0, math.ceil(wait), short, tostring(r), tostring(t)}
end
local full = 0
if rpm > 0 then
  r = r - 1
  full = (rpm - r) * 60000 / rpm
end
if tpm > 0 then
  t = t - want
  full = math.max(full, (tpm - t) * 60000 / tpm)
end
redis.call('HSET', KEYS[1], 'r', r, 't', t, 'ts', now)
-- A key left alone expires once both buckets are full again: no key means a full bucket.
redis.call('PEXPIRE', KEYS[1], math.ceil(full) + 1000)
return {1, 0, 0, tostring(r), tostring(t)}
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
_SHORT: dict[int, Bucket] = {1: "requests", 2: "tokens"}


class LimiterUnavailable(Exception):
    """The rate limiter's store could not be reached or answered an error."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request is admitted, and the state of the key's buckets after it."""

    admitted: bool
    retry_after_s: float | None = None
    short: Bucket | None = None
    requests_left: int | None = None
    tokens_left: int | None = None


class RateLimiter(Protocol):
    """Admits or refuses one request of a key."""

    async def acquire(self, principal: Principal, tokens: int) -> Decision:
        """Take one request and ``tokens`` tokens from the key's buckets, or refuse."""
        ...


@dataclass(slots=True)
class _Known:
    """A key's bucket levels as Redis last reported them, and when that was asked."""

    asked_at: float
    requests: float
    tokens: float


class RedisRateLimiter:
    """Token buckets per key in Redis, one Lua script call per admitted request."""

    def __init__(self, redis: Redis, key_prefix: str, where: str = "Redis") -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}ratelimit:"
        self._where = where
        self._refused: dict[str, _Known] = {}
        # Calls waiting for the round trip in flight, and the task that sends them.
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[list[Any]]]] = []
        self._busy = False
        self._sender: asyncio.Task[None] | None = None

    async def acquire(self, principal: Principal, tokens: int) -> Decision:
        """Take one request and ``tokens`` tokens from the key's buckets, or refuse."""
        rpm, tpm = principal.rpm or 0, principal.tpm or 0
        if tpm and tokens > tpm:
            return Decision(False, None, "tokens")
        asked_at = time.monotonic()
        known = self._refused.get(principal.name)
        if known is not None:
            local = _still_short(known, rpm, tpm, tokens, asked_at)
            if local is not None:
                return local
            del self._refused[principal.name]
        reply = await self._run(f"{self._prefix}{principal.name}", rpm, tpm, tokens)
        admitted, wait_ms, short, requests, tokens_left = reply
        decision = Decision(
            admitted == 1,
            wait_ms / 1000 if admitted != 1 else None,
            _SHORT.get(short),
            math.floor(float(requests)) if rpm else None,
            math.floor(float(tokens_left)) if tpm else None,
        )
        if not decision.admitted:
            self._refused[principal.name] = _Known(asked_at, float(requests), float(tokens_left))
        return decision

    async def _run(self, key: str, rpm: int, tpm: int, tokens: int) -> list[Any]:
        """Run the script for one key: at once if Redis is idle, else with the next batch."""
        args = (key, rpm, tpm, tokens)
        if self._busy:
            waiter: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._waiting.append((args, waiter))
            return await waiter
        self._busy = True
        try:
            return await self._send_one(args)
        finally:
            if self._waiting:
                self._sender = asyncio.create_task(self._send_waiting())
            else:
                self._busy = False

    async def _send_one(self, args: tuple[Any, ...]) -> list[Any]:
        try:
            try:
                reply = await self._redis.evalsha(SCRIPT_SHA, 1, *args)
            except NoScriptError:
                reply = await self._redis.eval(SCRIPT, 1, *args)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            raise LimiterUnavailable(f"{self._where} did not answer: {exc}") from exc
        return self._checked(reply)

    async def _send_waiting(self) -> None:
        """Send the waiting calls as pipelines until none are left."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    replies = await self._send_many([args for args, _ in batch])
                except LimiterUnavailable as exc:
                    replies = [exc] * len(batch)
                for (_, waiter), reply in zip(batch, replies, strict=True):
                    if waiter.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(reply, BaseException):
                        waiter.set_exception(reply)
                    else:
                        waiter.set_result(reply)
        finally:
            self._busy = False

    async def _send_many(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        """Run the script for each call in one pipeline; a reply may be an exception."""
        try:
            replies = await self._pipeline(batch)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:
                # None of those ran: load the script once and send just those again.
                await self._redis.script_load(SCRIPT)
                again = await self._pipeline([batch[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(f"{self._where} did not answer: {exc}") from exc
        out: list[Any] = []
        for reply in replies:
            try:
                out.append(self._checked(reply))
            except LimiterUnavailable as exc:
                out.append(exc)
        return out

    async def _pipeline(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for args in batch:
                pipe.evalsha(SCRIPT_SHA, 1, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    def _checked(self, reply: Any) -> list[Any]:
        if isinstance(reply, BaseException):
            raise LimiterUnavailable(f"{self._where} failed the rate-limit script: {reply}")
        if not isinstance(reply, list) or len(reply) != 5:
            raise LimiterUnavailable(f"{self._where} answered the rate-limit script with {reply!r}")
        return reply


def _still_short(known: _Known, rpm: int, tpm: int, tokens: int, now: float) -> Decision | None:
    """Refuse locally if the buckets cannot hold enough yet, even with nobody else using them.

    The levels are refilled from when Redis was *asked*, which is no later than when it
    measured them, so the estimate is never below the truth.
    """
    elapsed = now - known.asked_at
    wait, short = 0.0, None
    requests = tokens_now = 0.0
    if rpm:
        requests = min(rpm, known.requests + elapsed * rpm / 60)
        if requests < 1:
            wait, short = (1 - requests) * 60 / rpm, "requests"
    if tpm:
        tokens_now = min(tpm, known.tokens + elapsed * tpm / 60)
        if tokens_now < tokens and (tokens - tokens_now) * 60 / tpm > wait:
            wait, short = (tokens - tokens_now) * 60 / tpm, "tokens"
    if short is None:
        return None
    return Decision(
        False,
        wait,
        "requests" if short == "requests" else "tokens",
        math.floor(requests) if rpm else None,
        math.floor(tokens_now) if tpm else None,
    )
