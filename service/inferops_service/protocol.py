"""The OpenAI chat-completions wire format: request validation and response bodies.

Contract:

- :func:`parse_chat_request` accepts the subset of the OpenAI request this service acts on
  (``model``, ``messages``, ``max_tokens``/``max_completion_tokens``, ``temperature``,
  ``stream``, ``stream_options.include_usage``), tolerates the other documented request
  fields without acting on them, and rejects anything else with :class:`RequestError`,
  as OpenAI does ("Unrecognized request argument supplied").
- Message ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts;
  an assistant message may have ``null`` content (when it carried tool calls).
- Size limits (``limits`` settings) are checked while parsing: the number of messages, the
  characters of one message and of all messages together. Each is a 400 naming the limit.
- :class:`ChatRequest` keeps the parsed body and each message text apart, from which the
  response cache builds its key; :func:`with_texts` writes texts (masked ones) back into a
  copy of the body, for a backend that forwards it.
- Every error body has OpenAI's shape:
  ``{"error": {"message", "type", "param", "code"}}``.

A hand-written validator: this schema is small, and per request it costs a fraction of what
a pydantic model does on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from inferops_service.config import LimitSettings

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

# Documented OpenAI request fields this simulator accepts but does not act on.
IGNORED_FIELDS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
HANDLED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "stream",
        "stream_options",
    }
)


class RequestError(Exception):
    """A request the API answers with an OpenAI-shaped error (and optional headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_
        self.headers = headers

    def body(self) -> bytes:
        """Return the JSON error body."""
        return error_body(self.message, self.type, self.param, self.code)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions request the service acts on, and the body parsed."""

    model: str
    prompt_text: str
    max_tokens: int | None
    stream: bool
    include_usage: bool
    # Each text of the messages in order (a string content, or each text part), which
    # ``prompt_text`` joins with newlines; the cache keys on them one by one.
    texts: tuple[str, ...] = ()
    temperature: float | None = None
    body: Mapping[str, Any] | None = None


def error_body(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    """Return an OpenAI-shaped error body as JSON."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


_DEFAULT_LIMITS = LimitSettings()


def parse_chat_request(
    body: bytes, max_output_tokens: int, limits: LimitSettings = _DEFAULT_LIMITS
) -> ChatRequest:
    """Parse and validate a chat-completions body, raising :class:`RequestError` if invalid."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid(
            "We could not parse the JSON body of your request. It must be a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.")
    for key in data:
        if key not in HANDLED_FIELDS and key not in IGNORED_FIELDS:
            raise _invalid(f"Unrecognized request argument supplied: {key}", param=key)

    model = data.get("model")
    if model is None:
        raise _invalid("Missing required parameter: 'model'.", param="model", code="missing")
    if not isinstance(model, str):
        raise _wrong_type("model", "a string", model)
    texts = _message_texts(data.get("messages"), limits)
    max_tokens = _max_tokens(data, max_output_tokens)
    temperature = data.get("temperature")
    _check_temperature(temperature)
    n = data.get("n")
    if n is not None and n != 1:
        raise _invalid("Only n=1 is supported.", param="n")

    stream = data.get("stream")
    if stream is None:
        stream = False
    elif not isinstance(stream, bool):
        raise _wrong_type("stream", "a boolean", stream)
    return ChatRequest(
        model,
        "\n".join(texts),
        max_tokens,
        stream,
        _include_usage(data.get("stream_options"), stream),
        tuple(texts),
        temperature,
        data,
    )


def _message_texts(messages: Any, limits: LimitSettings) -> list[str]:
    if messages is None:
        raise _invalid("Missing required parameter: 'messages'.", param="messages", code="missing")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise _invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    if len(messages) > limits.max_messages:
        raise _invalid(
            f"Invalid 'messages': array too long. Expected an array with maximum length "
            f"{limits.max_messages}, but got an array with length {len(messages)} instead.",
            param="messages",
            code="array_above_max_length",
        )
    texts: list[str] = []
    total = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _wrong_type(where, "an object", message)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _invalid(
                f"Invalid value for '{where}.role': expected one of "
                f"{', '.join(sorted(ROLES))}, got {role!r}.",
                param=f"{where}.role",
            )
        content = message.get("content")
        if isinstance(content, str):
            chars = len(content)
            texts.append(content)
        elif isinstance(content, list):
            parts = _text_parts(content, f"{where}.content")
            chars = sum(map(len, parts))
            texts.extend(parts)
        elif content is None and role == "assistant":
            chars = 0
        else:
            raise _wrong_type(f"{where}.content", "a string or an array of text parts", content)
        total += chars
        _check_length(f"{where}.content", chars, limits.max_message_chars)
    if limits.max_prompt_chars is not None and total > limits.max_prompt_chars:
        raise _invalid(
            f"The messages hold {total} characters of text; this service accepts at most "
            f"{limits.max_prompt_chars}. Shorten the conversation.",
            param="messages",
            code="context_length_exceeded",
        )
    return texts


def _check_length(param: str, chars: int, limit: int | None) -> None:
    if limit is not None and chars > limit:
        raise _invalid(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{limit}, but got a string with length {chars} instead.",
            param=param,
            code="string_above_max_length",
        )


def _text_parts(parts: list[Any], where: str) -> list[str]:
    texts = []
    for j, part in enumerate(parts):
        if (
            not isinstance(part, dict)
            or part.get("type") != "text"
            or not isinstance(part.get("text"), str)
        ):
            raise _invalid(
                f"Invalid '{where}[{j}]': expected a text part {{'type': 'text', 'text': ...}}.",
                param=f"{where}[{j}]",
            )
        texts.append(part["text"])
    return texts


def _max_tokens(data: dict[str, Any], max_output_tokens: int) -> int | None:
    # max_completion_tokens is OpenAI's newer name and wins when both are sent.
    name = (
        "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    )
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(name, "an integer", value)
    if not 1 <= value <= max_output_tokens:
        raise _invalid(
            f"Invalid '{name}': {value} is out of range; this model allows 1 to "
            f"{max_output_tokens} output tokens.",
            param=name,
            code="integer_out_of_range",
        )
    return value


def _check_temperature(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type("temperature", "a number", value)
    if not 0 <= value <= 2:
        raise _invalid(
            f"Invalid 'temperature': {value} is out of range; expected 0 to 2.",
            param="temperature",
            code="decimal_out_of_range",
        )


def _include_usage(options: Any, stream: bool) -> bool:
    if options is None:
        return False
    if not stream:
        raise _invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise _wrong_type("stream_options.include_usage", "a boolean", include)
    return include


def with_texts(body: Mapping[str, Any], texts: Sequence[str]) -> dict[str, Any]:
    """Return a copy of a parsed body whose message texts are ``texts``, in ChatRequest order."""
    messages: list[Any] = []
    rest = iter(texts)
    try:
        for message in body["messages"]:
            content = message.get("content")
            if isinstance(content, str):
                message = {**message, "content": next(rest)}
            elif isinstance(content, list):
                # Only text parts are accepted, so every part takes the next text.
                parts = [{**part, "text": next(rest)} for part in content]
                message = {**message, "content": parts}
            messages.append(message)
    except StopIteration:
        raise ValueError("fewer texts than the messages hold") from None
    if next(rest, None) is not None:
        raise ValueError("more texts than the messages hold")
    return {**body, "messages": messages}


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


class Usage(Protocol):
    """What an answer's closing events and body report: its token counts and why it ended."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def finish_reason(self) -> str: ...


def usage(plan: Usage) -> dict[str, int]:
    """Return the OpenAI ``usage`` object of an answer."""
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def completion_body(completion_id: str, model: str, plan: Usage, text: str) -> bytes:
    """Return a ``chat.completion`` object as JSON."""
    return orjson.dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": usage(plan),
        }
    )


class ChunkWriter:
    """Renders the server-sent events of one streamed completion."""

    def __init__(self, completion_id: str, model: str, include_usage: bool) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        # OpenAI sends "usage": null on every chunk when usage was asked for.
        self._tail: dict[str, Any] = {"usage": None} if include_usage else {}

    def content(self, text: str, first: bool) -> bytes:
        """Return the event carrying ``text``; the first one also names the role."""
        delta = {"role": "assistant", "content": text} if first else {"content": text}
        return self._event(delta, None)

    def finish(self, plan: Usage) -> bytes:
        """Return the event that ends the choice with its finish reason."""
        return self._event({}, plan.finish_reason)

    def usage(self, plan: Usage) -> bytes:
        """Return the trailing usage event (empty choices), sent when usage was asked for."""
        return _sse({**self._head, "choices": [], "usage": usage(plan)})

    def _event(self, delta: dict[str, str], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**self._head, "choices": [choice], **self._tail})


DONE_EVENT = b"data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
