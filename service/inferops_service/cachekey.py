"""Cache keys: the canonical request, its digests, and the client's ``Cache-Control``.

Contract:

- :func:`request_key` hashes the canonical request: the tenant, the model, every
  generation parameter and the messages, with each message text replaced by its screened
  (PII-masked) version, serialised by orjson with sorted keys, so the JSON key order of the
  request does not matter and no raw prompt text goes into a key. The ``answer`` digest
  (BLAKE2b, 128 bits, hex) names the stored answer.
- Not keyed, since they do not change the answer: ``stream`` and ``stream_options`` (one
  stored answer serves both ways), and ``user``, ``metadata``, ``store``,
  ``safety_identifier``, ``prompt_cache_key``, ``service_tier``. ``max_tokens`` and
  ``max_completion_tokens`` are keyed as the one limit that applies; a number with no
  fraction is keyed as an integer (``1.0`` as ``1``). Any other field changes the key.
- For the semantic cache the request is split in two: the ``query``, the text of the last
  message when it is a user message, and the ``scope``, a digest of everything else (the
  same canonical request with that message's content left out). Only requests whose last
  message is a user message have one; with ``single_turn_only`` only those whose other
  messages are all ``system`` or ``developer``.
- :func:`cache_directives` reads ``Cache-Control``: ``no-cache`` skips the lookup (the
  fresh answer is still stored), ``no-store`` skips lookup and store.

Pure functions; one serialisation and one hash per digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from inferops_service.protocol import ChatRequest

NOT_KEYED = frozenset(
    {
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "max_tokens",
        "max_completion_tokens",
    }
)
INSTRUCTION_ROLES = frozenset({"system", "developer"})
_ANSWER_PERSON = b"inferops-answer"
_SCOPE_PERSON = b"inferops-scope"


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The digests a request is cached under."""

    answer: str
    scope: str | None = None
    query: str | None = None


@dataclass(frozen=True, slots=True)
class Directives:
    """What the client's ``Cache-Control`` allows."""

    lookup: bool = True
    store: bool = True


def request_key(
    tenant: str,
    chat: ChatRequest,
    texts: Sequence[str],
    *,
    semantic: bool = False,
    single_turn_only: bool = True,
) -> RequestKey:
    """Return the digests of a request whose message texts, screened, are ``texts``."""
    body = chat.body or {}
    messages = _masked_messages(body.get("messages") or [], iter(texts))
    params: dict[str, Any] = {
        key: _number(value) for key, value in body.items() if key not in NOT_KEYED
    }
    params["max_tokens"] = chat.max_tokens
    canonical = {"tenant": tenant, "params": params, "messages": messages}
    answer = _digest(canonical, _ANSWER_PERSON)
    if not semantic or not _semantic_eligible(messages, single_turn_only):
        return RequestKey(answer)
    last = messages[-1]
    query = _text_of(last.get("content"))
    canonical["messages"] = [*messages[:-1], {**last, "content": None}]
    return RequestKey(answer, _digest(canonical, _SCOPE_PERSON), query)


def cache_directives(header: bytes | None) -> Directives:
    """Return what a ``Cache-Control`` request header allows (everything when absent)."""
    if not header:
        return Directives()
    names = {part.split(b"=", 1)[0].strip().lower() for part in header.split(b",")}
    if b"no-store" in names:
        return Directives(lookup=False, store=False)
    if b"no-cache" in names:
        return Directives(lookup=False, store=True)
    return Directives()


def _masked_messages(messages: list[Any], texts: Iterator[str]) -> list[dict[str, Any]]:
    """Copy the messages with each text replaced by the next screened text, in order."""
    out = []
    for message in messages:
        copy = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            copy["content"] = next(texts)
        elif isinstance(content, list):
            copy["content"] = [{**part, "text": next(texts)} for part in content]
        out.append(copy)
    return out


def _semantic_eligible(messages: list[dict[str, Any]], single_turn_only: bool) -> bool:
    if not messages or messages[-1].get("role") != "user":
        return False
    if not single_turn_only:
        return True
    return all(m.get("role") in INSTRUCTION_ROLES for m in messages[:-1])


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content)
    return ""


def _number(value: Any) -> Any:
    """Key 1.0 and 1 alike: JSON does not tell them apart."""
    # Only where the integer is exact in a double: orjson writes no integers past 64 bits.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _digest(canonical: Mapping[str, Any], person: bytes) -> str:
    data = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16, person=person).hexdigest()
