"""``POST /v1/embeddings``: OpenAI's embeddings API over the local sentence-embedding model.

Contract:

- The request is ``{"model", "input", "encoding_format"?, "dimensions"?, "user"?}``; any
  other field is a 400, as OpenAI answers ("Unrecognized request argument supplied").
  ``input`` is a string or an array of 1 to ``embeddings.max_inputs`` strings, none empty,
  none over ``embeddings.max_input_chars`` characters or the model's token limit (254 of
  its tokens; texts are never truncated). Token arrays (``[int]``, ``[[int]]``) are refused
  with 400 ``unsupported_input``: they are ids of OpenAI's tokenizers, meaningless to this
  model. ``encoding_format`` is ``float`` (the default) or ``base64`` (the vector's
  little-endian float32 bytes). ``dimensions``, if sent, must be the model's own (384):
  this model was not trained to have its vectors cut short. ``user`` is accepted, unused.
- A model other than ``embeddings.model`` is a 404 ``model_not_found``, as in chat.
- The answer is ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
  "model", "usage": {"prompt_tokens", "total_tokens"}}``, ``data`` in the order of the
  inputs; every vector has unit norm, so a dot product is a cosine similarity. Tokens are
  the model tokenizer's, without its ``[CLS]`` and ``[SEP]``.
- The security steps are chat's, in chat's order: API key, content type, body size, parsing
  and validation, rate limit, PII screening. The rate limit charges the inputs' characters
  / 4 up front, with no output tokens. With ``pii.mode: mask`` each input is masked before
  it is embedded, so the vector is that of ``"write to [EMAIL]"``: masking is deterministic,
  so equal inputs still get equal vectors and a query is masked as its documents were, and
  no personal data reaches the model or can be recovered from the vectors (which can be
  inverted into approximate text). With ``detect`` findings are counted, the inputs embedded
  as sent.
- Each request gets one audit record: status, key, the SHA-256 of the (screened) inputs
  joined by newlines, PII findings, ``prompt_tokens`` and ``detail`` ``"N inputs"``.
  Input tokens are counted in ``inferops_input_tokens_total{route="/v1/embeddings"}``; no
  cost is counted, since ``cost`` prices the chat model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from inferops_service import audit
from inferops_service.auth import Principal
from inferops_service.config import ServiceSettings
from inferops_service.embeddings import Encoded, InputTooLong, SentenceEmbedder
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import ChatRequest, RequestError
from inferops_service.security import Refusal, Security

EMBEDDINGS_ROUTE = "/v1/embeddings"
FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
ENCODINGS = ("float", "base64")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A valid embeddings request: the texts in order and how to encode their vectors."""

    model: str
    texts: tuple[str, ...]
    encoding_format: str
    dimensions: int | None
    # Whether ``input`` was an array, so errors name ``input[i]`` rather than ``input``.
    batched: bool


def parse_embeddings_request(
    body: bytes, max_inputs: int, max_input_chars: int
) -> EmbeddingsRequest:
    """Parse and validate an embeddings body, raising :class:`RequestError` if invalid."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid(
            "We could not parse the JSON body of your request. It must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.")
    for key in data:
        if key not in FIELDS:
            raise _invalid(f"Unrecognized request argument supplied: {key}", param=key)
    model = _required(data, "model")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    texts, batched = _texts(_required(data, "input"), max_inputs, max_input_chars)
    encoding = data.get("encoding_format")
    if encoding is None:
        encoding = "float"
    elif encoding not in ENCODINGS:
        raise _invalid(
            f"Invalid value for 'encoding_format': expected 'float' or 'base64', got {encoding!r}.",
            param="encoding_format",
        )
    dimensions = data.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise _wrong_type("dimensions", "an integer", dimensions)
        if dimensions < 1:
            raise _invalid(
                f"Invalid 'dimensions': {dimensions} is below the minimum of 1.",
                param="dimensions",
                code="integer_below_min_value",
            )
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise _wrong_type("user", "a string", user)
    return EmbeddingsRequest(model, texts, encoding, dimensions, batched)


def _required(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None:
        raise _invalid(f"Missing required parameter: '{name}'.", param=name, code="missing")
    return value


def _texts(value: Any, max_inputs: int, max_chars: int) -> tuple[tuple[str, ...], bool]:
    if isinstance(value, str):
        _check_text("input", value, max_chars)
        return (value,), False
    if not isinstance(value, list):
        raise _wrong_type("input", "a string or an array of strings", value)
    if not value:
        raise _invalid(
            "Invalid 'input': empty array. Expected an array with minimum length 1.",
            param="input",
            code="empty_array",
        )
    if all(_is_token(item) for item in value) or all(isinstance(item, list) for item in value):
        raise _invalid(
            "Invalid 'input': token arrays are not supported. This model has its own "
            "tokenizer: send the text as a string or an array of strings.",
            param="input",
            code="unsupported_input",
        )
    if len(value) > max_inputs:
        raise _invalid(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{max_inputs}, but got an array with length {len(value)} instead.",
            param="input",
            code="array_above_max_length",
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _wrong_type(f"input[{i}]", "a string", item)
        _check_text(f"input[{i}]", item, max_chars)
    return tuple(value), True


def _is_token(item: Any) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def _check_text(param: str, text: str, max_chars: int) -> None:
    if not text:
        raise _invalid(
            f"Invalid '{param}': empty string. Each input must be a non-empty string.",
            param=param,
            code="empty_string",
        )
    if len(text) > max_chars:
        raise _invalid(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{max_chars}, but got a string with length {len(text)} instead.",
            param=param,
            code="string_above_max_length",
        )


class EmbeddingsApi:
    """The ``/v1/embeddings`` handler of one app, and the embedder it owns or was given."""

    def __init__(
        self,
        settings: ServiceSettings,
        security: Security,
        metrics: ServiceMetrics,
        embedder: SentenceEmbedder,
    ) -> None:
        self._settings = settings.embeddings
        self._max_body = settings.limits.max_body_bytes
        self._security = security
        self._embedder = embedder
        self._input_tokens = metrics.input_tokens.labels(EMBEDDINGS_ROUTE)

    async def create(self, request: Request) -> Response:
        """Answer ``POST /v1/embeddings``: the inputs' vectors, in order, with usage."""
        security = self._security
        headers = request.scope["headers"]
        principal: Principal | None = None
        try:
            principal = security.authenticate(headers)
            security.check_content_type(headers)
            body = await _read_body(request, self._max_body)
            parsed = parse_embeddings_request(
                body, self._settings.max_inputs, self._settings.max_input_chars
            )
            if parsed.model != self._settings.model:
                raise RequestError(
                    404,
                    f"The model `{parsed.model}` does not exist or you do not have access to it.",
                    param="model",
                    code="model_not_found",
                )
            dim = self._embedder.model.dim
            if parsed.dimensions is not None and parsed.dimensions != dim:
                raise _invalid(
                    f"Invalid 'dimensions': this model only gives vectors of {dim} numbers.",
                    param="dimensions",
                )
            limit_headers: dict[str, str] | None = None
            if principal is not None and principal.limited:
                limit_headers = await security.admit(principal, _charge(parsed))
            screened = security.screen_parts(parsed.texts)
        except RequestError as exc:
            event = exc.event if isinstance(exc, Refusal) else audit.REQUEST
            security.record(event, EMBEDDINGS_ROUTE, exc.status, principal, detail=exc.code)
            return _error_response(exc)
        texts = parsed.texts
        digest_of = texts
        found: dict[str, int] | None = None
        if screened is not None:
            digest_of = screened[1]
            found = screened[0].found or None
            if security.pii_mode == "mask":
                texts = screened[1]
        digest = security.prompt_digest("\n".join(digest_of)) if security.audit else None
        trail = _Trail(principal, digest, found, len(texts))
        try:
            encoded = await self._embedder.embed(texts)
        except InputTooLong as exc:
            error = _too_long(exc, parsed.batched)
            self._audit(trail, error.status, detail=error.code)
            return _error_response(error)
        except Exception:
            self._audit(trail, 500, detail="internal error")
            raise
        total = sum(encoded.tokens)
        self._input_tokens.inc(total)
        self._audit(trail, 200, prompt_tokens=total, completion_tokens=0)
        return Response(
            _body(parsed, encoded, self._settings.model, total),
            headers=limit_headers,
            media_type=JSON,
        )

    def _audit(self, trail: _Trail, status: int, **fields: Any) -> None:
        if self._security.audit is None:
            return
        fields.setdefault("detail", f"{trail.inputs} inputs")
        self._security.record(
            audit.REQUEST,
            EMBEDDINGS_ROUTE,
            status,
            trail.principal,
            prompt_sha256=trail.sha256,
            pii=trail.pii,
            **fields,
        )


@dataclass(frozen=True, slots=True)
class _Trail:
    """What an embeddings request's audit record says about it."""

    principal: Principal | None
    sha256: str | None
    pii: dict[str, int] | None
    inputs: int


def _charge(parsed: EmbeddingsRequest) -> ChatRequest:
    """The request as the rate limiter sees it: a prompt of the inputs, with no output."""
    return ChatRequest(
        parsed.model, "\n".join(parsed.texts), max_tokens=0, stream=False, include_usage=False
    )


def _body(parsed: EmbeddingsRequest, encoded: Encoded, model: str, tokens: int) -> bytes:
    """The ``list`` object of the vectors, as floats or as base64 of little-endian float32."""
    vectors = encoded.vectors
    if parsed.encoding_format == "base64":
        rows: list[Any] = [
            base64.b64encode(row.astype("<f4", copy=False).tobytes()).decode("ascii")
            for row in vectors
        ]
    else:
        # orjson writes float32 arrays with the shortest digits that read back exactly.
        rows = list(vectors)
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _too_long(exc: InputTooLong, batched: bool) -> RequestError:
    param = f"input[{exc.index}]" if batched else "input"
    return _invalid(
        f"Invalid '{param}': {exc.tokens} tokens; this model takes at most {exc.limit} tokens "
        "per input. Split the text into shorter inputs.",
        param=param,
        code="context_length_exceeded",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    too_large = RequestError(
        413, f"The request body exceeds the limit of {limit} bytes.", code="request_too_large"
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


def _error_response(exc: RequestError) -> Response:
    return Response(exc.body(), status_code=exc.status, headers=exc.headers, media_type=JSON)


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> RequestError:
    return RequestError(400, message, param=param, code=code)


_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _wrong_type(param: str, expected: str, value: Any) -> RequestError:
    got = _JSON_TYPES.get(type(value), type(value).__name__)
    return RequestError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param,
        code="invalid_type",
    )
