"""The ``openai`` backend: chat completions forwarded to an OpenAI-compatible upstream.

Contract:

- The upstream (vLLM, TGI, a hosted API) is ``upstream.url``, its base URL including
  ``/v1``; one aiohttp session with a pool of ``upstream.max_connections`` connections is
  opened in :meth:`OpenAIBackend.start` and closed in :meth:`OpenAIBackend.stop`.
- The body sent is the client's parsed body with ``model`` set to ``upstream.model``
  (default: ``model``), the message texts replaced by the texts given to ``open`` (masked
  ones when PII masking is on), and, for a stream, ``stream_options.include_usage: true``
  so that usage is known even when the client did not ask. ``Authorization: Bearer`` is
  sent when ``upstream.api_key`` is set. Redirects are not followed.
- Timeouts: ``connect_timeout_s`` to open a connection; ``first_byte_timeout_s`` from
  sending the request to the response headers (for an unstreamed answer, the whole
  generation); ``read_timeout_s`` for every silence after the headers, the wait for a
  stream's first token included. A timeout is a 504 ``upstream_timeout``.
- Retries only where the upstream cannot have acted on the call: a connection that could
  not be opened (refused, reset or timed out while connecting; not a TLS failure) and a
  502 or 503 answer, at most ``upstream.retries`` times. Retry ``n`` (from 0) waits
  ``retry_backoff_s * 2**n``; after a 503 with a ``Retry-After`` in seconds it waits that
  long instead, if that is at most :data:`MAX_RETRY_AFTER_S`, and otherwise gives up at
  once (the upstream will not be back within this request). A timeout or a lost connection
  after the request was sent, and a broken stream, are never retried; nor is the breaker's
  trial call.
- Errors before any text are raised from ``open``: unreachable after retries, 502
  ``upstream_unavailable`` (504 ``upstream_timeout`` when connecting timed out); an
  upstream 5xx (or any status not listed here), 502 ``upstream_error`` naming it; 429,
  429 with the upstream's ``Retry-After``; 400, 404, 413 and 422, the same status with the
  upstream's message, code and param (the client's request is wrong); 401 and 403, 502
  ``upstream_auth_failed`` (the gateway's credentials were refused); an open breaker, 503
  ``upstream_circuit_open`` with ``Retry-After``. Upstream messages are cut to
  :data:`MAX_MESSAGE_CHARS`.
- Errors after the answer began (a timeout, a broken or malformed stream, an error event)
  are raised from :meth:`Reply.text` as a :class:`BackendError`.
- The circuit breaker (:mod:`inferops_service.backends.breaker`) hears a failure for an
  unreachable upstream, a timeout, a 5xx, or a broken or malformed answer; any other
  answer is a success (the upstream is up; 4xx and 429 are not its fault). A stream's
  success is heard at its headers (a later break is a failure besides).
  :meth:`OpenAIBackend.ready` is false while the breaker is open.
- Usage comes from the upstream; where it reports none, tokens are counted as the
  simulator does (``ceil(characters / 4)``); a missing finish reason reads ``stop``.
- Each call counts one outcome in ``inferops_upstream_requests_total`` (``ok``,
  ``error``, ``timeout``, ``unavailable``, ``circuit_open``), plus ``retried`` per retry.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import aiohttp
import orjson

from inferops_service.backends import BackendError, Reply, Usage
from inferops_service.backends.breaker import CircuitBreaker, State
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import ChatRequest, with_texts
from inferops_service.simulator import count_prompt_tokens

# A 503's Retry-After is honoured up to this many seconds; a longer one ends the retries.
MAX_RETRY_AFTER_S = 1.0
CHAT_PATH = "/chat/completions"
# An upstream's error message is passed on up to this length.
MAX_MESSAGE_CHARS = 500

_RETRIED_STATUSES = frozenset({502, 503})
# The client's request is wrong: the upstream's answer is passed on as it is.
_CLIENT_STATUSES = frozenset({400, 404, 413, 422})
_CREDENTIAL_STATUSES = frozenset({401, 403})
_INCLUDE_USAGE = {"include_usage": True}
_DATA = b"data:"
_DONE = b"[DONE]"


class OpenAIBackend:
    """Answers from an OpenAI-compatible upstream, behind retries and a circuit breaker."""

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        upstream = settings.upstream
        if upstream.url is None:
            raise ValueError("backend openai needs upstream.url (INFEROPS_UPSTREAM_URL)")
        self._url = upstream.url.rstrip("/") + CHAT_PATH
        self._model = upstream.model or settings.model
        self._headers = {"Content-Type": "application/json"}
        if upstream.api_key:
            self._headers["Authorization"] = f"Bearer {upstream.api_key}"
        # sock_read covers the wait for headers; it is set to read_timeout_s after them.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=upstream.connect_timeout_s,
            sock_read=upstream.first_byte_timeout_s,
        )
        self._read_timeout = upstream.read_timeout_s
        self._max_connections = upstream.max_connections
        self._retries = upstream.retries
        self._backoff = upstream.retry_backoff_s
        self.breaker = CircuitBreaker(
            upstream.breaker.failure_threshold, upstream.breaker.reset_s, clock
        )
        self._session: aiohttp.ClientSession | None = None
        breaker = self.breaker
        metrics.enable_upstream(lambda: 0.0 if breaker.state is State.CLOSED else 1.0)
        self._ok = metrics.upstream_counter("ok")
        self._error = metrics.upstream_counter("error")
        self._timed_out = metrics.upstream_counter("timeout")
        self._unavailable = metrics.upstream_counter("unavailable")
        self._circuit_open = metrics.upstream_counter("circuit_open")
        self._retried = metrics.upstream_counter("retried")

    async def start(self) -> None:
        """Open the connection pool to the upstream."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                headers=self._headers,
                # Uncompressed answers cost less CPU than gzip on both ends of a fast link.
                skip_auto_headers=("Accept-Encoding",),
                # Cookies from the upstream must not be shared between the gateway's clients.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def stop(self) -> None:
        """Close the connection pool."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def ready(self) -> bool:
        """Ready once started, except while the circuit breaker is open."""
        return self._session is not None and self.breaker.state is not State.OPEN

    async def open(self, chat: ChatRequest, texts: tuple[str, ...], stream: bool) -> Reply:
        """Send the request upstream and return its answer, or raise BackendError."""
        session = self._session
        if session is None:
            raise RuntimeError("OpenAIBackend.open was called before start()")
        data = self._body(chat, texts, stream)
        breaker = self.breaker
        if not breaker.allow():
            self._circuit_open.inc()
            raise _circuit_open(breaker.retry_after())
        # The trial call of a half-open breaker is the one call let through: no retries.
        retries = self._retries if breaker.state is State.CLOSED else 0
        response = await self._call(session, data, retries)
        if stream:
            breaker.record_success()
            return StreamedReply(self, response, texts)
        try:
            raw = await response.read()
        except aiohttp.ServerTimeoutError:
            raise self._timeout_error() from None
        except aiohttp.ClientError:
            raise self._failed("The upstream broke off its answer.") from None
        finally:
            response.release()
        answer = _parse_completion(raw)
        if answer is None:
            raise self._failed("The upstream's answer was not a chat completion.")
        content, finish_reason, usage = answer
        breaker.record_success()
        self._ok.inc()
        return CompleteReply(content, _usage(usage, texts, len(content), finish_reason))

    def _body(self, chat: ChatRequest, texts: tuple[str, ...], stream: bool) -> bytes:
        source = chat.body
        body: dict[str, Any]
        if source is None:
            body = _plain_body(chat, texts)
        elif texts == chat.texts:
            body = dict(source)
        else:
            body = with_texts(source, texts)
        body["model"] = self._model
        if stream:
            body["stream"] = True
            options = body.get("stream_options")
            body["stream_options"] = (
                {**options, **_INCLUDE_USAGE} if isinstance(options, dict) else _INCLUDE_USAGE
            )
        elif body.get("stream") or "stream_options" in body:
            body["stream"] = False
            body.pop("stream_options", None)
        return orjson.dumps(body)

    async def _call(
        self, session: aiohttp.ClientSession, data: bytes, retries: int
    ) -> aiohttp.ClientResponse:
        """POST ``data``, retrying what the upstream cannot have acted on; 200 or raise."""
        attempt = 0
        while True:
            try:
                response = await session.post(self._url, data=data, allow_redirects=False)
            except aiohttp.ConnectionTimeoutError:
                if attempt < retries:
                    attempt = await self._retry(attempt, self._backoff_s(attempt))
                    continue
                raise self._timeout_error() from None
            except aiohttp.ClientSSLError as exc:
                raise self._unreachable(exc) from None
            except aiohttp.ClientConnectorError as exc:
                if attempt < retries:
                    attempt = await self._retry(attempt, self._backoff_s(attempt))
                    continue
                raise self._unreachable(exc) from None
            except aiohttp.ServerTimeoutError:
                raise self._timeout_error() from None
            except aiohttp.ClientError as exc:
                raise self._failed(
                    f"The upstream closed the connection before answering: {exc}"
                ) from None
            status = response.status
            if status == 200:
                connection = response.connection
                protocol = None if connection is None else connection.protocol
                if protocol is not None and not response.content.is_eof():
                    # The headers came within first_byte_timeout_s; from now on, silences.
                    # (At the body's end aiohttp drops the timer; so it must not start
                    # one for a body that has already ended.)
                    protocol.read_timeout = self._read_timeout
                    protocol.start_timeout()
                return response
            if status in _RETRIED_STATUSES and attempt < retries:
                delay = self._retry_delay(attempt, status, response.headers.get("Retry-After"))
                if delay is not None:
                    await _discard(response)
                    attempt = await self._retry(attempt, delay)
                    continue
            raise await self._refused(response)

    def _retry_delay(self, attempt: int, status: int, retry_after: str | None) -> float | None:
        """Seconds to wait before retrying an answer of ``status``; None: do not retry."""
        if status == 503 and retry_after is not None:
            seconds = _seconds(retry_after)
            if seconds is not None:
                return seconds if seconds <= MAX_RETRY_AFTER_S else None
        return self._backoff_s(attempt)

    def _backoff_s(self, attempt: int) -> float:
        return float(self._backoff * 2**attempt)

    async def _retry(self, attempt: int, delay: float) -> int:
        """Count and wait out one retry; return the next attempt's number."""
        self._retried.inc()
        await asyncio.sleep(delay)
        return attempt + 1

    async def _refused(self, response: aiohttp.ClientResponse) -> BackendError:
        """Turn an upstream's error answer into the gateway's, counting it."""
        status = response.status
        try:
            raw = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.release()
        message, code, param = _error_fields(raw)
        if status >= 500:
            return self._failed(f"The upstream answered HTTP {status}: {message or 'no detail'}")
        # The upstream answered on purpose: it is up, whatever it thought of the request.
        self.breaker.record_success()
        self._error.inc()
        if status in _CLIENT_STATUSES:
            return BackendError(
                status,
                message or f"The upstream refused the request (HTTP {status}).",
                code=code,
                param=param,
            )
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            return BackendError(
                429,
                message or "The upstream is rate limiting this gateway; retry later.",
                code=code or "rate_limit_exceeded",
                headers={"Retry-After": retry_after} if retry_after else None,
            )
        if status in _CREDENTIAL_STATUSES:
            return BackendError(
                502,
                f"The upstream refused this gateway's credentials (HTTP {status}): set "
                "INFEROPS_UPSTREAM_API_KEY to a key it accepts.",
                code="upstream_auth_failed",
            )
        return BackendError(
            502,
            f"The upstream answered HTTP {status}: {message or 'no detail'}",
            code="upstream_error",
        )

    def _failed(self, message: str) -> BackendError:
        """The upstream answered badly or broke off: a breaker failure."""
        self.breaker.record_failure()
        self._error.inc()
        return BackendError(502, message, code="upstream_error")

    def _timeout_error(self) -> BackendError:
        self.breaker.record_failure()
        self._timed_out.inc()
        return BackendError(504, "The upstream did not answer in time.", code="upstream_timeout")

    def _unreachable(self, exc: Exception) -> BackendError:
        self.breaker.record_failure()
        self._unavailable.inc()
        return BackendError(
            502, f"The upstream cannot be reached: {exc}", code="upstream_unavailable"
        )


class CompleteReply:
    """An answer the upstream gave whole: its text comes out in one piece."""

    __slots__ = ("_answer", "_content", "usage")

    def __init__(self, content: str, usage: Usage) -> None:
        self._content = content
        self._answer = usage
        self.usage: Usage | None = None

    async def text(self) -> AsyncGenerator[str, None]:
        """Yield the whole answer."""
        if self._content:
            yield self._content
        self.usage = self._answer


class StreamedReply:
    """An answer streamed by the upstream as server-sent events, passed on as it comes."""

    __slots__ = ("_backend", "_response", "_texts", "usage")

    def __init__(
        self, backend: OpenAIBackend, response: aiohttp.ClientResponse, texts: tuple[str, ...]
    ) -> None:
        self._backend = backend
        self._response = response
        self._texts = texts
        self.usage: Usage | None = None

    async def text(self) -> AsyncGenerator[str, None]:
        """Yield the content of the events, one piece per read from the upstream."""
        backend = self._backend
        response = self._response
        finish_reason: str | None = None
        usage: Any = None
        chars = 0
        done = failed = False
        pending = b""
        try:
            try:
                async for chunk in response.content.iter_any():
                    if done:
                        # Only the end of the body follows [DONE]; reading it keeps the
                        # connection for the next call.
                        continue
                    if pending:
                        chunk = pending + chunk
                    lines = chunk.split(b"\n")
                    pending = lines.pop()
                    # Events that arrived together go out together: fewer, larger pieces.
                    pieces: list[str] = []
                    for line in lines:
                        if not line.startswith(_DATA):
                            continue  # blank lines, comments, event names
                        payload = line[5:].strip()
                        if payload == _DONE:
                            done = True
                            break
                        event = _event(payload)
                        if event is None:
                            raise backend._failed("The upstream sent a malformed stream event.")
                        if event.get("error") is not None:
                            raise backend._failed(
                                f"The upstream failed mid-answer: {event['error']}"
                            )
                        choices = event.get("choices")
                        if choices:
                            choice = choices[0]
                            content = (choice.get("delta") or {}).get("content")
                            if content:
                                pieces.append(content)
                                chars += len(content)
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
                        if event.get("usage"):
                            usage = event["usage"]
                    if pieces:
                        yield pieces[0] if len(pieces) == 1 else "".join(pieces)
                # A body may end without a newline after its last line.
                if pending.startswith(_DATA) and pending[5:].strip() == _DONE:
                    done = True
            except aiohttp.ServerTimeoutError:
                if not done:
                    raise backend._timeout_error() from None
            except aiohttp.ClientError:
                if not done:
                    raise backend._failed("The upstream broke off its answer.") from None
            if not done and finish_reason is None:
                raise backend._failed("The upstream's stream ended before the answer was complete.")
        except BackendError:
            failed = True  # counted where it was raised
            raise
        finally:
            # Back to the pool when the body was read to its end; else closed, which also
            # tells the upstream to stop generating for a client that went away.
            response.release()
            if not failed:
                backend._ok.inc()
        self.usage = _usage(usage, self._texts, chars, finish_reason or "stop")


def _event(payload: bytes) -> dict[str, Any] | None:
    """One stream event's object; None when it is not one."""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    choices = event.get("choices")
    if choices is not None and not (
        isinstance(choices, list) and all(isinstance(c, dict) for c in choices)
    ):
        return None
    return event


def _parse_completion(raw: bytes) -> tuple[str, str, Any] | None:
    """The content, finish reason and usage of a ``chat.completion``; None if it is not one."""
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        finish_reason = choice.get("finish_reason") or "stop"
        usage = data.get("usage")
    except (orjson.JSONDecodeError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if not isinstance(content, str) or not isinstance(finish_reason, str):
        return None
    return content, finish_reason, usage


def _usage(reported: Any, texts: tuple[str, ...], chars: int, finish_reason: str) -> Usage:
    """The upstream's token counts, or the simulator's estimate where it gave none."""
    prompt = completion = None
    if isinstance(reported, dict):
        prompt = reported.get("prompt_tokens")
        completion = reported.get("completion_tokens")
    if not isinstance(prompt, int):
        prompt = count_prompt_tokens(sum(map(len, texts)) + max(0, len(texts) - 1))
    if not isinstance(completion, int):
        completion = count_prompt_tokens(chars)
    return Usage(prompt, completion, finish_reason)


def _plain_body(chat: ChatRequest, texts: tuple[str, ...]) -> dict[str, Any]:
    """A body for a request built without one: each text a user message."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text} for text in texts]}
    if chat.max_tokens is not None:
        body["max_tokens"] = chat.max_tokens
    if chat.temperature is not None:
        body["temperature"] = chat.temperature
    return body


def _error_fields(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """The message, code and param of an upstream's error body, in the shapes servers use."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return (text[:MAX_MESSAGE_CHARS] or None), None, None
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    # OpenAI and recent vLLM nest the error; TGI gives it as a string, older vLLM flat.
    fields = error if isinstance(error, dict) else data
    message = fields.get("message")
    if not isinstance(message, str):
        message = error if isinstance(error, str) else None
    if message is not None:
        message = message[:MAX_MESSAGE_CHARS]
    code = fields.get("code")
    param = fields.get("param")
    return (
        message,
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )


def _seconds(value: str) -> float | None:
    """A Retry-After given in seconds; None for an HTTP date or anything else."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _circuit_open(retry_after: float) -> BackendError:
    seconds = max(1, math.ceil(retry_after))
    return BackendError(
        503,
        "The upstream failed repeatedly, so this gateway has stopped calling it for a while; "
        f"retry after {seconds} s.",
        code="upstream_circuit_open",
        headers={"Retry-After": str(seconds)},
    )


async def _discard(response: aiohttp.ClientResponse) -> None:
    """Read and drop an answer's body, so its connection can serve the retry."""
    try:
        await response.read()
    except (TimeoutError, aiohttp.ClientError):
        pass
    finally:
        response.release()
