"""The security steps of a request, and the answers they give when they refuse it.

Contract (the API calls these in this order, each only when configured):

1. :meth:`Security.authenticate`: the ``Authorization`` header against the key ring, with
   no Redis. 401 ``invalid_api_key`` (with ``WWW-Authenticate: Bearer``) for a missing key
   when keys are required, and for any key that is not configured.
2. :meth:`Security.check_content_type`: 415 unless the body is ``application/json``, when
   ``limits.require_json_content_type`` is on. (Body size and parsing follow, in the API.)
3. :meth:`Security.admit`: the key's token buckets, one Redis round trip. 429
   ``rate_limit_exceeded`` with ``Retry-After`` (whole seconds, rounded up). When Redis is
   unreachable: 503 with ``Retry-After: 1`` if ``redis.on_error.auth`` is ``closed``
   (the default), else the request is admitted unlimited. Tokens are charged up front: the
   prompt estimate (characters / 4) plus ``max_tokens`` (or the default), since the real
   output is unknown until the end; unused tokens are not refunded.
4. :meth:`Security.screen`: PII detection per ``pii.mode``. With ``mask``, the masked text
   is what the model, the audit log and the response cache see (with the cache on,
   :meth:`Security.screen_parts` screens each message text apart, for the cache's key).
   If screening raises, the request is refused with 500 ``pii_screening_failed`` and
   nothing of the prompt is logged, audited or forwarded: screening fails closed.

Every refusal is counted (``inferops_auth_failures_total``, ``inferops_rate_limited_total``,
``inferops_redis_errors_total``) and raised as a :class:`Refusal` that names its audit
event; :meth:`Security.record` writes audit records. :meth:`Security.start` and
:meth:`Security.stop` belong in the app's lifespan: they open and close the audit log and
put the rate limiter on the app's shared Redis client.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from inferops_service import audit, pii, redis_client
from inferops_service.auth import MISSING, AuthError, KeyRing, Principal
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import ChatRequest, RequestError
from inferops_service.ratelimit import (
    Decision,
    LimiterUnavailable,
    RateLimiter,
    RedisRateLimiter,
)
from inferops_service.simulator import count_prompt_tokens

JSON_MEDIA_TYPE = b"application/json"

log = logging.getLogger(__name__)


class Refusal(RequestError):
    """A request refused by a security step; ``event`` is its audit event."""

    def __init__(self, event: str, status: int, message: str, **details: Any) -> None:
        super().__init__(status, message, **details)
        self.event = event


class Security:
    """API keys, rate limits, PII screening and the audit log of one app."""

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        limiter: RateLimiter | None = None,
        screen: pii.Screen | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self.keys = KeyRing.from_settings(settings.auth) if settings.auth.enabled else None
        self.limiter = limiter
        self._wants_limiter = settings.rate_limited
        self._fail_open = settings.redis.on_error.auth == "open"
        self._where = redis_client.describe(settings.redis)
        self.pii_mode = settings.pii.mode
        self._screen = pii.screen if screen is None else screen
        self._require_json = settings.limits.require_json_content_type
        self._default_max_tokens = settings.simulator.default_max_tokens
        self.audit = (
            audit.AuditLog(settings.audit.path, on_error=metrics.audit_write_errors.inc)
            if settings.audit.path is not None
            else None
        )

    @property
    def needs_redis(self) -> bool:
        """Whether :meth:`start` needs a Redis client (a key has limits, none was injected)."""
        return self._wants_limiter and self.limiter is None

    def start(self, redis: Redis | None) -> None:
        """Open the audit log and, if keys have limits, the rate limiter on ``redis``."""
        if self.audit is not None:
            self.audit.open()
        if self.needs_redis and redis is not None:
            self.limiter = RedisRateLimiter(redis, self._settings.redis.key_prefix, self._where)

    def stop(self) -> None:
        """Close the audit log."""
        if self.audit is not None:
            self.audit.close()

    def authenticate(self, headers: list[tuple[bytes, bytes]]) -> Principal | None:
        """Return the caller's key, None when keys are off or optional, or refuse with 401."""
        if self.keys is None:
            return None
        try:
            return self.keys.authenticate(header(headers, b"authorization"))
        except AuthError as exc:
            self._metrics.count_auth_failure(exc.reason)
            message = (
                "You didn't provide an API key. Send it in the Authorization header: "
                "'Authorization: Bearer YOUR_KEY'."
                if exc.reason == MISSING
                else "Incorrect API key provided. Check the key, or ask the operator for one."
            )
            raise Refusal(
                audit.AUTH_FAILED,
                401,
                message,
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            ) from None

    def check_content_type(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Refuse with 415 a body that is not declared JSON, when that is required."""
        if not self._require_json:
            return
        declared = header(headers, b"content-type") or b""
        if declared.partition(b";")[0].strip().lower() != JSON_MEDIA_TYPE:
            raise RequestError(
                415,
                "The request body must be JSON: send 'Content-Type: application/json'.",
                code="unsupported_media_type",
            )

    def token_estimate(self, chat: ChatRequest) -> int:
        """Return the tokens a request is charged up front: prompt estimate plus its limit."""
        output = self._default_max_tokens if chat.max_tokens is None else chat.max_tokens
        return count_prompt_tokens(len(chat.prompt_text)) + output

    async def admit(self, principal: Principal | None, chat: ChatRequest) -> dict[str, str]:
        """Take the request from the key's buckets; return rate-limit headers, or refuse."""
        if principal is None or not principal.limited:
            return {}
        tokens = self.token_estimate(chat)
        try:
            if self.limiter is None:
                raise LimiterUnavailable("the rate limiter has not been started")
            decision = await self.limiter.acquire(principal, tokens)
        except LimiterUnavailable as exc:
            self._metrics.redis_errors.labels("auth").inc()
            if self._fail_open:
                log.warning("rate limits not checked (redis.on_error.auth is open): %s", exc)
                return {}
            log.error("request refused, rate limits cannot be checked: %s", exc)
            raise Refusal(
                audit.LIMITER_UNAVAILABLE,
                503,
                "Rate limits cannot be checked right now, so the request was not run. "
                "Retry shortly.",
                type_="server_error",
                code="rate_limiter_unavailable",
                headers={"retry-after": "1"},
            ) from None
        headers = _limit_headers(principal, decision)
        if not decision.admitted:
            self._metrics.count_rate_limited(principal.name)
            raise _rate_limited(principal, decision, tokens, headers)
        return headers

    def screen(self, text: str) -> pii.Screened | None:
        """Screen a prompt per ``pii.mode`` (None when off); refuse with 500 if that fails."""
        if self.pii_mode == "off":
            return None
        try:
            screened = self._screen(text)
        except Exception as exc:
            # The exception's text may quote the prompt: log its type only.
            log.error("PII screening failed (%s); request refused", type(exc).__name__)
            raise _screening_failed() from None
        if screened.found:
            self._metrics.count_pii(screened.found)
        return screened

    def screen_parts(self, texts: Sequence[str]) -> tuple[pii.Screened, tuple[str, ...]] | None:
        """Screen each message text on its own, as :meth:`screen`; also return each result.

        The response cache keys on the texts one by one, so each is screened apart; the
        joined result is the prompt :meth:`screen` would give, except for a finding that
        spans two messages, which is not one.
        """
        if self.pii_mode == "off":
            return None
        try:
            results = [self._screen(text) for text in texts]
        except Exception as exc:
            log.error("PII screening failed (%s); request refused", type(exc).__name__)
            raise _screening_failed() from None
        found: dict[str, int] = {}
        for result in results:
            for kind, count in result.found.items():
                found[kind] = found.get(kind, 0) + count
        if found:
            self._metrics.count_pii(found)
        masked = tuple(result.text for result in results)
        return pii.Screened("\n".join(masked), found), masked

    def record(
        self,
        event: str,
        route: str,
        status: int,
        principal: Principal | None,
        **fields: Any,
    ) -> None:
        """Append an audit record, if the audit log is on."""
        if self.audit is None:
            return
        if principal is not None:
            fields["key"] = principal.name
            fields["tenant"] = principal.tenant
        self.audit.write(event, route=route, status=status, **fields)

    def prompt_digest(self, text: str) -> str | None:
        """Return the SHA-256 of the (screened) prompt for the audit log, if it is on."""
        if self.audit is None:
            return None
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _screening_failed() -> Refusal:
    return Refusal(
        audit.PII_ERROR,
        500,
        "The prompt could not be screened for personal data, so the request was "
        "refused; nothing of it was forwarded, stored or logged. Retry, and tell the "
        "operator if it persists.",
        type_="server_error",
        code="pii_screening_failed",
    )


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """Return the first value of a request header, by its lower-case name."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _limit_headers(principal: Principal, decision: Decision) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the key's limits."""
    headers = {}
    if principal.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(principal.rpm)
        if decision.requests_left is not None:
            headers["x-ratelimit-remaining-requests"] = str(max(0, decision.requests_left))
    if principal.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(principal.tpm)
        if decision.tokens_left is not None:
            headers["x-ratelimit-remaining-tokens"] = str(max(0, decision.tokens_left))
    return headers


def _rate_limited(
    principal: Principal, decision: Decision, tokens: int, headers: Mapping[str, str]
) -> Refusal:
    bucket = decision.short or "requests"
    limit = principal.rpm if bucket == "requests" else principal.tpm
    if decision.retry_after_s is None:
        return Refusal(
            audit.RATE_LIMITED,
            429,
            f"Request too large for key '{principal.name}' on tokens per minute: limit "
            f"{limit}, requested {tokens}. Lower max_tokens or shorten the prompt.",
            type_="tokens",
            code="rate_limit_exceeded",
            headers=headers,
        )
    wait = decision.retry_after_s
    return Refusal(
        audit.RATE_LIMITED,
        429,
        f"Rate limit reached for key '{principal.name}' on {bucket} per minute: limit "
        f"{limit}. Please try again in {wait:.3g}s.",
        type_=bucket,
        code="rate_limit_exceeded",
        headers={**headers, "retry-after": str(max(1, math.ceil(wait)))},
    )
