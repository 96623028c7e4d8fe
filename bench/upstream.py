"""A trivial OpenAI-compatible upstream for benchmarks: fixed answers, as cheap as possible.

Every ``POST /v1/chat/completions`` gets the same small ``chat.completion`` (with usage),
or, when the body asks for ``"stream": true``, the same answer as server-sent events ending
in a usage chunk and ``[DONE]``. ``GET /v1/models`` lists the one model; ``GET /health``
answers 200; anything else is a 404. The body is never parsed as JSON: the benchmark
measures the gateway, so the upstream must cost as little as possible per request.

It is a raw asyncio protocol (on uvloop when installed) speaking just enough HTTP/1.1:
keep-alive, pipelined requests, bodies sized by ``Content-Length`` (a chunked request body
is refused with 411 and the connection closed). Every response is prebuilt bytes.

Run ``python -m bench.upstream --port PORT [--model NAME]``; it serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from typing import Any, cast

MODEL = "bench-llm"
ANSWER = "Hello! This is a fixed answer."
USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
CREATED = 1_767_225_600
MAX_HEAD = 64 * 1024

_STREAM = re.compile(rb'"stream"\s*:\s*true')
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def completion_body(model: str = MODEL) -> bytes:
    """The one non-streamed answer."""
    return _json(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def stream_body(model: str = MODEL) -> bytes:
    """The same answer as server-sent events: role, text, finish, usage, ``[DONE]``."""

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        event: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": choices,
        }
        if usage is not None:
            event["usage"] = usage
        return b"data: " + _json(event) + b"\n\n"

    return b"".join(
        (
            chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]),
            chunk([{"index": 0, "delta": {"content": ANSWER}, "finish_reason": None}]),
            chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            chunk([], USAGE),
            b"data: [DONE]\n\n",
        )
    )


class Responses:
    """Every response the server sends, built once."""

    def __init__(self, model: str = MODEL) -> None:
        self.completion = _response("200 OK", completion_body(model))
        self.stream = _response("200 OK", stream_body(model), "text/event-stream")
        models = {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "b"}]}
        self.models = _response("200 OK", _json(models))
        self.health = _response("200 OK", b'{"status":"ok"}')
        self.not_found = _response("404 Not Found", b'{"error":{"message":"not found"}}')
        self.length_required = _response("411 Length Required", b"")
        self.too_large = _response("431 Request Header Fields Too Large", b"")


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests as they arrive, answer each from ``Responses``."""

    __slots__ = ("_buffer", "_responses", "_transport")

    def __init__(self, responses: Responses) -> None:
        self._responses = responses
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        close = False
        # A loop, not one request per call: a client may pipeline several in one segment.
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    out.append(self._responses.too_large)
                    close = True
                break
            head = buffer[:end]
            match = _LENGTH.search(head)
            if match is None and _CHUNKED.search(head):
                out.append(self._responses.length_required)
                close = True
                break
            start = end + 4
            stop = start + (int(match.group(1)) if match else 0)
            if len(buffer) < stop:
                break
            out.append(self._answer(head, buffer[start:stop]))
            buffer = buffer[stop:]
            if _CLOSE.search(head) or head.find(b" HTTP/1.0\r\n", 0, 1024) >= 0:
                close = True
                break
        self._buffer = b"" if close else buffer
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()

    def _answer(self, head: bytes, body: bytes) -> bytes:
        r = self._responses
        if head.startswith(b"POST /v1/chat/completions "):
            return r.stream if _STREAM.search(body) else r.completion
        if head.startswith(b"GET /v1/models "):
            return r.models
        if head.startswith(b"GET /health "):
            return r.health
        return r.not_found


async def serve(host: str, port: int, model: str = MODEL) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    responses = Responses(model)
    server = await loop.create_server(
        lambda: UpstreamProtocol(responses), host, port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bench upstream on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.model))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.host, args.port, args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
