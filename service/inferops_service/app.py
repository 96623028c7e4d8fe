"""The HTTP API: an OpenAI-compatible surface over the simulated model.

Contract:

- ``POST /v1/chat/completions`` answers a ``chat.completion`` object, or with
  ``"stream": true`` server-sent ``chat.completion.chunk`` events ending in ``data: [DONE]``
  (preceded by a usage event when ``stream_options.include_usage`` is true).
- ``POST /v1/embeddings``, when ``embeddings.enabled``: :mod:`inferops_service.embeddings_api`.
- ``GET /v1/models`` and ``GET /v1/models/{model}`` list and describe the served models (the
  chat model, and the embedding model when enabled).
- ``GET /health`` is 200 while the process serves; ``GET /ready`` is 200 once started and
  503 once draining has begun, so the platform stops routing here before shutdown.
- Errors, including unknown URLs and wrong methods, use OpenAI's error shape: 400 invalid,
  401 missing or bad API key, 404 unknown model or URL, 405, 413 body over
  ``limits.max_body_bytes``, 415 not JSON (when required), 429 rate limited, 500 injected
  or unexpected failure (or PII screening failed), 503 rate limits cannot be checked.
- Every response carries ``x-inferops-version`` and ``x-inferops-track`` from the settings.
- The ``/v1`` routes go through :mod:`inferops_service.security` when it is configured, in
  this order: API key (no I/O), content type, body size, parsing and validation, rate limit
  (one Redis round trip), PII screening, the response cache (:mod:`inferops_service.cache`,
  one ``GET``; a hit is replayed and ends the request, with ``x-inferops-cache``), the
  model (its answer then stored), then metrics and one audit record.
  Cheap checks come first, so a request without a valid key costs neither a body read nor
  Redis. With nothing configured, each step is a single ``if``.

:func:`create_app` builds everything from its arguments: no globals, no I/O until served
(the audit log and Redis are opened in the lifespan).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inferops_service import audit, openapi, pii, redis_client
from inferops_service.auth import Principal
from inferops_service.backends import Backend, Reply, Usage, create_backend
from inferops_service.cache import HEADER as CACHE_HEADER
from inferops_service.cache import (
    Answer,
    Lookup,
    ResponseCache,
    replay_body,
    replay_events,
)
from inferops_service.config import LimitSettings, ServiceSettings
from inferops_service.embeddings import SentenceEmbedder, SentenceModel
from inferops_service.embeddings_api import EMBEDDINGS_ROUTE, EmbeddingsApi
from inferops_service.metrics import CHAT_ROUTE, OTHER_ROUTE, ServiceMetrics
from inferops_service.protocol import (
    DONE_EVENT,
    ChatRequest,
    ChunkWriter,
    RequestError,
    completion_body,
    error_body,
    parse_chat_request,
)
from inferops_service.ratelimit import RateLimiter
from inferops_service.security import Refusal, Security, header
from inferops_service.telemetry import Telemetry

if TYPE_CHECKING:
    # Only the semantic extra brings numpy; the app imports the embedder only to type it.
    from inferops_service.embedding import Embedder
    from inferops_service.telemetry.tracing import RequestSpans

MAX_BODY_BYTES = LimitSettings().max_body_bytes
MODELS_ROUTE = "/v1/models"
MODEL_ROUTE = "/v1/models/{model:path}"
JSON = "application/json"

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """What the process lifecycle changes: readiness to take traffic."""

    ready: bool = False
    draining: bool = False

    def begin_draining(self) -> None:
        """Report not-ready from now on, so the platform stops sending new requests."""
        self.draining = True
        self.ready = False


def create_app(
    settings: ServiceSettings,
    *,
    metrics: ServiceMetrics | None = None,
    backend: Backend | None = None,
    redis: Redis | None = None,
    limiter: RateLimiter | None = None,
    screen: pii.Screen | None = None,
    embedder: Embedder | None = None,
    sentence_model: SentenceModel | None = None,
    telemetry: Telemetry | None = None,
) -> Starlette:
    """Build the service's ASGI app; ``app.state.service`` is its :class:`ServiceState`.

    ``backend`` replaces the one ``settings.backend`` names. ``redis`` is a client to share
    (the caller closes it); without one, the app opens its own from ``redis.url`` when a key
    has limits or the cache is on. ``limiter`` and ``screen`` replace the Redis rate limiter
    and the PII screen (tests inject failing ones); ``embedder`` replaces the semantic
    cache's embedder. ``telemetry`` replaces the tracing and metric pushes the settings ask
    for. ``sentence_model`` is a loaded embedding model to share (else the app loads its
    own at start, once, when ``embeddings.enabled`` or ``cache.semantic.embedder`` is
    ``minilm``; ``/ready`` waits for it). ``app.state.cache`` is the
    :class:`ResponseCache`, or None.
    """
    metrics = ServiceMetrics() if metrics is None else metrics
    backend = create_backend(settings, metrics) if backend is None else backend
    telemetry = Telemetry(settings, metrics) if telemetry is None else telemetry
    state = ServiceState()
    security = Security(settings, metrics, limiter=limiter, screen=screen)
    # One model per process, for /v1/embeddings and the semantic cache alike.
    sentences = (
        SentenceEmbedder(settings.embeddings, sentence_model)
        if settings.embeddings.enabled or settings.cache.semantic.needs_model
        else None
    )
    cache = (
        ResponseCache(settings, metrics, embedder=embedder, sentences=sentences)
        if settings.cache.enabled
        else None
    )
    api = _Api(settings, backend, metrics, state, security, cache)
    embeddings = (
        EmbeddingsApi(settings, security, metrics, sentences)
        if settings.embeddings.enabled and sentences is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # One client and pool for every concern that uses Redis, opened in the serving loop.
        shared = redis
        owned = None
        if shared is None and (security.needs_redis or cache is not None):
            shared = owned = redis_client.connect(settings.redis)
        security.start(shared)
        api.redis = shared
        if cache is not None and shared is not None:
            cache.start(shared)
        if sentences is not None:
            await sentences.start()  # loads the model in its worker thread; not ready before
        await backend.start()
        await telemetry.start()
        try:
            state.ready = not state.draining
            yield
        finally:
            state.begin_draining()
            await backend.stop()
            if sentences is not None:
                await sentences.stop()
            if cache is not None:
                await cache.stop()
            security.stop()
            if owned is not None:
                await owned.aclose()
            # Last, so the final push carries everything counted while draining.
            await telemetry.stop()

    identity = [
        (b"x-inferops-version", settings.identity.version.encode("latin-1", "replace")),
        (b"x-inferops-track", settings.identity.track.encode("latin-1", "replace")),
    ]
    app = Starlette(
        routes=[
            Route(CHAT_ROUTE, api.chat_completions, methods=["POST"]),
            *([Route(EMBEDDINGS_ROUTE, embeddings.create, methods=["POST"])] if embeddings else []),
            Route(MODELS_ROUTE, api.list_models, methods=["GET"]),
            Route(MODEL_ROUTE, api.get_model, methods=["GET"]),
            Route("/health", api.health, methods=["GET"]),
            Route("/ready", api.ready, methods=["GET"]),
            Route("/openapi.json", api.openapi, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                TelemetryMiddleware,
                metrics=metrics,
                headers=identity,
                max_inflight=settings.limits.max_inflight,
                retry_after_s=settings.limits.shed_retry_after_s,
                spans=telemetry.spans,
            )
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.cache = cache
    return app


def service_state(app: Starlette) -> ServiceState:
    """Return the lifecycle state of an app made by :func:`create_app`."""
    state = app.state.service
    if not isinstance(state, ServiceState):
        raise TypeError("app was not built by inferops_service.app.create_app")
    return state


class _Api:
    """The route handlers, bound to one app's settings, backend, metrics and security."""

    def __init__(
        self,
        settings: ServiceSettings,
        backend: Backend,
        metrics: ServiceMetrics,
        state: ServiceState,
        security: Security,
        cache: ResponseCache | None,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._model = settings.model
        self._backend = backend
        self.redis: Redis | None = None
        # Without Redis, rate-limited keys are refused (policy closed): not worth routing to.
        self._redis_essential = settings.rate_limited and settings.redis.on_error.auth == "closed"
        self._metrics = metrics
        self._state = state
        self._security = security
        self._max_body = settings.limits.max_body_bytes
        self._model_object = {
            "id": settings.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "inferops",
        }
        # Every model served, by id: the chat model, and the embedding model when enabled.
        self._model_objects = {settings.model: self._model_object}
        if settings.embeddings.enabled:
            self._model_objects.setdefault(
                settings.embeddings.model, {**self._model_object, "id": settings.embeddings.model}
            )
        self._models_body = orjson.dumps(
            {"object": "list", "data": list(self._model_objects.values())}
        )
        self._openapi_body = orjson.dumps(
            openapi.document(settings.identity.version, embeddings=settings.embeddings.enabled)
        )

    async def chat_completions(self, request: Request) -> Response:
        """Answer a chat completion, streamed or not, from the cache or the backend."""
        started = time.perf_counter()
        security = self._security
        headers = request.scope["headers"]
        principal: Principal | None = None
        try:
            principal = security.authenticate(headers)
            security.check_content_type(headers)
            body = await _read_body(request, self._max_body)
            chat = parse_chat_request(
                body, self._settings.simulator.max_output_tokens, self._settings.limits
            )
            if chat.model != self._model:
                raise _unknown_model(chat.model)
            # Headers of the answer: the rate limits', then the cache's.
            response_headers: dict[str, str] | None = None
            if principal is not None and principal.limited:
                response_headers = await security.admit(principal, chat)
            lookup: Lookup | None = None
            hit: Answer | None = None
            if self._cache is None:
                screened_parts = security.screen_parts(chat.texts)
                screened, texts = (None, chat.texts) if screened_parts is None else screened_parts
            else:
                screened, texts, lookup, hit = await self._look_up(principal, chat, headers)
                response_headers = {**(response_headers or {}), CACHE_HEADER: lookup.status}
        except RequestError as exc:
            event = exc.event if isinstance(exc, Refusal) else audit.REQUEST
            security.record(event, CHAT_ROUTE, exc.status, principal, detail=exc.code)
            return _error_response(exc)
        screened_text = chat.prompt_text if screened is None else screened.text
        trail = _Trail(
            principal,
            security.prompt_digest(screened_text),
            screened.found or None if screened is not None else None,
        )
        if hit is not None and lookup is not None:
            return self._replay(chat, hit, lookup, trail, response_headers)
        # The model sees the masked texts when masking, else the texts as sent.
        sent = texts if security.pii_mode == "mask" else chat.texts
        try:
            reply = await self._backend.open(chat, sent, chat.stream)
        except RequestError as exc:
            self._audit(trail, exc.status, detail=exc.code or exc.message)
            return _error_response(exc)
        except Exception:
            self._audit(trail, 500, detail="internal error")
            raise
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        trail.completion_id = completion_id
        if chat.stream:
            return EventStreamResponse(
                self._stream(chat, reply, completion_id, started, trail, lookup), response_headers
            )
        pieces: list[str] = []
        first_token_at = started
        try:
            async with aclosing(reply.text()) as text:
                async for piece in text:
                    if not pieces:
                        first_token_at = time.perf_counter()
                    pieces.append(piece)
        except RequestError as exc:
            self._audit(trail, exc.status, detail=exc.code or exc.message)
            return _error_response(exc)
        usage = _finished(reply)
        self._account(usage, started, first_token_at, time.perf_counter(), trail)
        answer_text = "".join(pieces)
        if lookup is not None and self._cache is not None:
            await self._cache.store(lookup, _answer(usage, answer_text))
        return Response(
            completion_body(completion_id, self._model, usage, answer_text),
            headers=response_headers,
            media_type=JSON,
        )

    async def _look_up(
        self, principal: Principal | None, chat: ChatRequest, headers: list[tuple[bytes, bytes]]
    ) -> tuple[pii.Screened | None, tuple[str, ...], Lookup, Answer | None]:
        """Screen the prompt text by text, then look the request up in the cache."""
        assert self._cache is not None
        security = self._security
        screened_parts = security.screen_parts(chat.texts)
        screened, texts = (None, chat.texts) if screened_parts is None else screened_parts
        lookup = self._cache.begin(
            principal,
            chat,
            texts,
            header(headers, b"cache-control"),
            # With detect, the model sees the prompt as sent: its answer may repeat the PII.
            unmasked_pii=screened is not None
            and bool(screened.found)
            and security.pii_mode != "mask",
        )
        return screened, texts, lookup, await self._cache.lookup(lookup)

    def _replay(
        self,
        chat: ChatRequest,
        answer: Answer,
        lookup: Lookup,
        trail: _Trail,
        headers: Mapping[str, str] | None,
    ) -> Response:
        """Answer from the cache: no model, no tokens or cost counted, one audit record."""
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        trail.completion_id = completion_id
        self._audit(
            trail,
            200,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost_usd=0.0,
            detail=f"cache {lookup.status}",
        )
        if chat.stream:
            return EventStreamResponse(
                replay_events(answer, completion_id, self._model, chat.include_usage), headers
            )
        return Response(
            replay_body(answer, completion_id, self._model), headers=headers, media_type=JSON
        )

    async def _stream(
        self,
        chat: ChatRequest,
        reply: Reply,
        completion_id: str,
        started: float,
        trail: _Trail,
        lookup: Lookup | None,
    ) -> AsyncGenerator[bytes, None]:
        writer = ChunkWriter(completion_id, self._model, chat.include_usage)
        first_token_at: float | None = None
        finished = False
        pieces: list[str] | None = [] if lookup is not None and lookup.store else None
        try:
            async with aclosing(reply.text()) as text:
                async for piece in text:
                    first = first_token_at is None
                    if first:
                        first_token_at = time.perf_counter()
                    if pieces is not None:
                        pieces.append(piece)
                    yield writer.content(piece, first)
            finished = True
            usage = _finished(reply)
            self._account(usage, started, first_token_at or started, time.perf_counter(), trail)
            if lookup is not None and pieces is not None and self._cache is not None:
                # Stored before the stream ends: whoever has the answer can count on a hit.
                await self._cache.store(lookup, _answer(usage, "".join(pieces)))
        except RequestError as exc:
            # The status line has gone: the failure travels as an error event, as OpenAI's do.
            yield b"data: " + exc.body() + b"\n\n"
            return
        finally:
            if not finished:
                # The client left, or generation failed: the record says it did not finish.
                self._audit(trail, 200, detail="stream ended early")
        yield writer.finish(usage)
        if chat.include_usage:
            yield writer.usage(usage)
        yield DONE_EVENT

    def _account(
        self, plan: Usage, started: float, first_token_at: float, ended: float, trail: _Trail
    ) -> None:
        tokens_after_first = plan.completion_tokens - 1
        cost = self._settings.cost.usd_for(plan.prompt_tokens, plan.completion_tokens)
        self._metrics.observe_completion(
            CHAT_ROUTE,
            ttft_seconds=first_token_at - started,
            tpot_seconds=(ended - first_token_at) / tokens_after_first
            if tokens_after_first > 0
            else None,
            input_tokens=plan.prompt_tokens,
            output_tokens=plan.completion_tokens,
            cost_usd=cost,
        )
        self._audit(
            trail,
            200,
            prompt_tokens=plan.prompt_tokens,
            completion_tokens=plan.completion_tokens,
            cost_usd=cost,
        )

    def _audit(self, trail: _Trail, status: int, **fields: Any) -> None:
        if self._security.audit is None:
            return
        self._security.record(
            audit.REQUEST,
            CHAT_ROUTE,
            status,
            trail.principal,
            prompt_sha256=trail.prompt_sha256,
            pii=trail.pii,
            id=trail.completion_id,
            **fields,
        )

    async def list_models(self, request: Request) -> Response:
        """List the models this service serves."""
        refused = self._guard_read(request, MODELS_ROUTE)
        if refused is not None:
            return refused
        return Response(self._models_body, media_type=JSON)

    async def get_model(self, request: Request) -> Response:
        """Describe the served model, or 404 for any other id."""
        refused = self._guard_read(request, MODEL_ROUTE)
        if refused is not None:
            return refused
        model = request.path_params["model"]
        described = self._model_objects.get(model)
        if described is None:
            return _error_response(_unknown_model(model))
        return Response(orjson.dumps(described), media_type=JSON)

    def _guard_read(self, request: Request, route: str) -> Response | None:
        """Authenticate a read-only route and audit it; return the refusal, if any."""
        security = self._security
        if security.keys is None and security.audit is None:
            return None
        try:
            principal = security.authenticate(request.scope["headers"])
        except Refusal as exc:
            security.record(exc.event, route, exc.status, None, detail=exc.code)
            return _error_response(exc)
        model = request.path_params.get("model")
        status = 404 if model is not None and model not in self._model_objects else 200
        security.record(audit.REQUEST, route, status, principal)
        return None

    async def openapi(self, request: Request) -> Response:
        """Describe the API as an OpenAPI 3.0 document."""
        return Response(self._openapi_body, media_type=JSON)

    async def health(self, request: Request) -> Response:
        """Report that the process is alive."""
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(self, request: Request) -> Response:
        """Report whether this instance should receive traffic, and what it is missing.

        503 while starting or draining, while the backend cannot answer (an open circuit
        breaker), and while Redis is unreachable if rate limits depend on it; 200 with
        ``"status": "degraded"`` while Redis is unreachable and only the cache (or limits
        configured to fail open) needed it.
        """
        if not self._state.ready:
            status = "draining" if self._state.draining else "starting"
            return Response(orjson.dumps({"status": status}), status_code=503, media_type=JSON)
        if not self._backend.ready():
            body = {"status": "unavailable", "backend": "not ready (circuit open)"}
            return Response(orjson.dumps(body), status_code=503, media_type=JSON)
        if self.redis is not None:
            try:
                await self.redis.ping()
            except Exception as exc:
                body = {"status": "degraded", "redis": f"unreachable ({type(exc).__name__})"}
                if self._redis_essential:
                    body["status"] = "unavailable"
                    return Response(orjson.dumps(body), status_code=503, media_type=JSON)
                return Response(orjson.dumps(body), media_type=JSON)
        return Response(b'{"status":"ready"}', media_type=JSON)


@dataclass(slots=True)
class _Trail:
    """What a chat request's audit record says about it, gathered along the way."""

    principal: Principal | None
    prompt_sha256: str | None
    pii: dict[str, int] | None
    completion_id: str | None = None


def _answer(usage: Usage, text: str) -> Answer:
    return Answer(text, usage.finish_reason, usage.prompt_tokens, usage.completion_tokens)


def _finished(reply: Reply) -> Usage:
    """The usage of a reply whose text has ended; a backend that reports none is a bug."""
    if reply.usage is None:
        raise RuntimeError(f"{type(reply).__name__} ended its text without reporting usage")
    return reply.usage


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = RequestError(
        413,
        f"The request body exceeds the limit of {limit} bytes.",
        code="request_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _unknown_model(model: str) -> RequestError:
    return RequestError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _error_response(exc: RequestError, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        exc.body(), status_code=exc.status, headers=headers or exc.headers, media_type=JSON
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Give routing errors (unknown URL, wrong method) OpenAI's error shape."""
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        code: str | None = "unknown_url"
    else:
        message, code = exc.detail, None
    error = RequestError(exc.status_code, message, code=code)
    return _error_response(error, exc.headers)


class EventStreamResponse(Response):
    """Sends server-sent events; stops generating soon after the client goes away.

    Starlette's StreamingResponse watches for a disconnect through a task group, which more
    than halved streaming throughput; here one watcher task raises a flag that is checked
    between events, so a departed client frees its batch slot within one decode step.
    """

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None
    ) -> None:
        self._events = events
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the events to the client until they end or the client disconnects."""
        gone = False

        async def watch_for_disconnect() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True

        watcher = asyncio.create_task(watch_for_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with aclosing(self._events) as events:
                async for event in events:
                    if gone:
                        return
                    await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


class TelemetryMiddleware:
    """Counts and times every request, sheds overload, and stamps the identity headers.

    The duration runs until the app has sent its last byte, so a stream is timed in full.
    An exception before the response started is answered with an OpenAI-shaped 500 here,
    so that it is counted and carries the identity headers like any other answer.

    With ``max_inflight`` API requests (``/v1/...``) already being served, a new one is
    answered 503 with ``Retry-After`` at once, before its body is read: the process holds
    at most that many requests, however many arrive, so memory and latency stay bounded
    and clients back off. Health, readiness and metrics are never shed.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        headers: list[tuple[bytes, bytes]],
        max_inflight: int | None = None,
        retry_after_s: int = 1,
        spans: RequestSpans | None = None,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._headers = headers
        self._max_inflight = max_inflight
        self._spans = spans
        self._api_inflight = 0
        self._shed_body = error_body(
            "The server is overloaded; retry after the time in the Retry-After header.",
            "server_error",
            None,
            "overloaded",
        )
        self._shed_headers = [
            (b"content-type", JSON.encode()),
            (b"content-length", str(len(self._shed_body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, recording it if it is an HTTP request."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        if self._max_inflight is not None and scope["path"].startswith("/v1/"):
            if self._api_inflight >= self._max_inflight:
                await self._shed(scope, send, started)
                return
            self._api_inflight += 1
            try:
                await self._serve(scope, receive, send, started)
            finally:
                self._api_inflight -= 1
            return
        await self._serve(scope, receive, send, started)

    async def _shed(self, scope: Scope, send: Send, started: float) -> None:
        self._metrics.shed.inc()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [*self._shed_headers, *self._headers],
            }
        )
        await send({"type": "http.response.body", "body": self._shed_body})
        route = CHAT_ROUTE if scope["path"] == CHAT_ROUTE else OTHER_ROUTE
        self._metrics.observe_request(route, 503, time.perf_counter() - started)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        status = 0

        async def send_stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *self._headers]}
            await send(message)

        span = None if self._spans is None else self._spans.start(scope)
        error: Exception | None = None
        inflight = self._metrics.inflight
        inflight.inc()
        try:
            await self._app(scope, receive, send_stamped)
        except Exception as exc:
            error = exc
            if status:
                raise
            log.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            await _send_server_error(send_stamped)
        finally:
            inflight.dec()
            route = scope.get("route")
            path = getattr(route, "path", None)
            template = path if isinstance(path, str) else None
            self._metrics.observe_request(
                template or OTHER_ROUTE, status or 500, time.perf_counter() - started
            )
            if span is not None:
                span.end(status or 500, template, error)


async def _send_server_error(send: Send) -> None:
    body = error_body(
        "The server had an error while processing your request.", "server_error", None, None
    )
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
