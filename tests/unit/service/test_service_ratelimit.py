"""The rate limiter's Redis conversation, without Redis: replies, fallbacks and failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from inferops_service.auth import Principal
from inferops_service.ratelimit import (
    SCRIPT,
    SCRIPT_SHA,
    LimiterUnavailable,
    RedisRateLimiter,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

KEY = Principal("team-a", "team-a", rpm=60, tpm=1000)


class ScriptedRedis:
    """Answers EVALSHA/EVAL from a list of replies (or exceptions), recording the calls."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        self.calls.append(("evalsha", (sha, numkeys, *args)))
        return self._next()

    async def eval(self, script: str, numkeys: int, *args: Any) -> Any:
        self.calls.append(("eval", (script, numkeys, *args)))
        return self._next()

    def _next(self) -> Any:
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def acquire(redis: ScriptedRedis, principal: Principal = KEY, tokens: int = 10) -> Any:
    limiter = RedisRateLimiter(redis, "pre:")  # type: ignore[arg-type]
    return asyncio.run(limiter.acquire(principal, tokens))


def test_one_evalsha_per_admitted_request() -> None:
    redis = ScriptedRedis([1, 0, 0, b"59", b"990.5"])
    decision = acquire(redis)
    assert decision.admitted
    assert (decision.requests_left, decision.tokens_left) == (59, 990)
    assert redis.calls == [("evalsha", (SCRIPT_SHA, 1, "pre:ratelimit:team-a", 60, 1000, 10))]


def test_unset_limits_are_sent_as_zero_and_reported_as_none() -> None:
    redis = ScriptedRedis([1, 0, 0, b"0", b"4.5"])
    decision = acquire(redis, Principal("k", "k", rpm=None, tpm=5), tokens=2)
    assert redis.calls[0][1][3:5] == (0, 5)
    assert (decision.requests_left, decision.tokens_left) == (None, 4)


def test_noscript_falls_back_to_eval_with_the_script() -> None:
    redis = ScriptedRedis(NoScriptError("NOSCRIPT"), [1, 0, 0, b"1", b"1"])
    assert acquire(redis).admitted
    assert [name for name, _ in redis.calls] == ["evalsha", "eval"]
    assert redis.calls[1][1][0] == SCRIPT


def test_a_refusal_names_the_short_bucket_and_the_wait() -> None:
    decision = acquire(ScriptedRedis([0, 1500, 2, b"10", b"3"]))
    assert not decision.admitted
    assert decision.short == "tokens"
    assert decision.retry_after_s == 1.5


def test_after_a_refusal_the_key_is_refused_locally_until_it_can_have_refilled() -> None:
    # 0.5 requests left at 60 rpm: one request is 0.5 s away; nothing is asked meanwhile.
    redis = ScriptedRedis([0, 500, 1, b"0.5", b"900"])
    limiter = RedisRateLimiter(redis, "pre:")  # type: ignore[arg-type]

    async def twice() -> tuple[Any, Any]:
        return await limiter.acquire(KEY, 10), await limiter.acquire(KEY, 10)

    first, second = asyncio.run(twice())
    assert not first.admitted and not second.admitted
    assert second.short == "requests"
    assert 0 < second.retry_after_s <= 0.5
    assert len(redis.calls) == 1


def test_a_request_larger_than_the_token_bucket_never_reaches_redis() -> None:
    redis = ScriptedRedis()
    decision = acquire(redis, tokens=1001)
    assert not decision.admitted
    assert decision.short == "tokens" and decision.retry_after_s is None
    assert redis.calls == []


@pytest.mark.parametrize(
    "failure", [RedisConnectionError("Connection refused"), TimeoutError("timed out"), "junk"]
)
def test_redis_failures_make_the_limiter_unavailable(failure: Any) -> None:
    with pytest.raises(LimiterUnavailable, match="Redis"):
        acquire(ScriptedRedis(failure))
