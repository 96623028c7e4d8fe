"""run_load drives a real Locust subprocess against a fake OpenAI-compatible server.

The fake answers ``POST /v1/chat/completions`` like the service does: a
``chat.completion`` JSON, or with ``stream: true`` an SSE stream of
``chat.completion.chunk`` events, a usage chunk and ``data: [DONE]``; every
answer carries ``x-inferops-track`` and ``x-inferops-version``. It can fail a
share of requests with a 5xx OpenAI error body or cut a stream short.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inferops.loadtest import LoadProfile, LoadTestError, run_load

VERSIONS = {"stable": "1111111", "canary": "2222222"}
OUTPUT_TOKENS = 5
PROFILE = LoadProfile.model_validate(
    {"name": "test", "stages": [{"duration_s": 3, "users": 2, "spawn_rate": 2}]}
)
LOAD_ENV = {"INFEROPS_LOAD_STREAM_SHARE": "0.5", "INFEROPS_LOAD_THINK_S": "0.02"}


@dataclass
class FakeService:
    """Behaviour of the fake server, changeable between tests."""

    canary_every: int = 3
    fail_every: int = 0
    cut_stream_every: int = 0
    served: Counter[str] = field(default_factory=Counter)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_request(self) -> tuple[int, str]:
        with self.lock:
            n = next(self.counter)
            track = "canary" if n % self.canary_every == 0 else "stable"
            self.served[track] += 1
        return n, track


class ChatHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    fake: FakeService

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n, track = self.fake.next_request()
        if self.path != "/v1/chat/completions":
            self._json(
                404, {"error": {"message": "not found", "type": "invalid_request_error"}}, track
            )
        elif self.fake.fail_every and n % self.fake.fail_every == 0:
            error = {"message": "the model backend failed", "type": "server_error", "code": None}
            self._json(500, {"error": error}, track)
        elif body.get("stream"):
            cut = bool(self.fake.cut_stream_every) and n % self.fake.cut_stream_every == 0
            self._stream(body, track, cut=cut)
        else:
            self._json(200, _completion(body), track)

    def _headers(self, status: int, track: str, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-inferops-track", track)
        self.send_header("x-inferops-version", VERSIONS[track])

    def _json(self, status: int, payload: dict[str, Any], track: str) -> None:
        data = json.dumps(payload).encode()
        self._headers(status, track, "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], track: str, *, cut: bool) -> None:
        self._headers(200, track, "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body["model"]
        events: list[dict[str, Any] | str] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        ]
        for word in ("Canary", " releases", " limit", " the", " blast"):
            events.append({**base, "choices": [{"index": 0, "delta": {"content": word}}]})
        if cut:
            events = events[:3]
        else:
            events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            usage = {"prompt_tokens": 12, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 17}
            events += [{**base, "choices": [], "usage": usage}, "[DONE]"]
        for event in events:
            text = event if isinstance(event, str) else json.dumps(event)
            self._chunk(f"data: {text}\n\n".encode())
            time.sleep(0.002)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Canary releases limit the blast"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": OUTPUT_TOKENS, "total_tokens": 17},
    }


@pytest.fixture
def service() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService()
    handler = type("Handler", (ChatHandler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_samples_are_written_and_counted_by_track(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, host = service
    progress: list[str] = []

    result = run_load(host, PROFILE, tmp_path / "run", env=LOAD_ENV, on_progress=progress.append)

    samples = result.samples()
    assert result.requests == len(samples) > 20
    assert result.failures == 0
    assert result.rps > 0
    assert set(result.by_track) == {"stable", "canary"}
    assert sum(result.by_track.values()) == result.requests
    # Requests cut off when the run stopped were served but never recorded.
    assert all(0 <= fake.served[t] - n <= 2 for t, n in result.by_track.items())
    assert result.by_track["canary"] == pytest.approx(result.requests / 3, rel=0.3)
    assert {s["version"] for s in samples if s["track"] == "canary"} == {VERSIONS["canary"]}
    streamed = [s for s in samples if s["stream"]]
    plain = [s for s in samples if not s["stream"]]
    assert streamed and plain
    assert all(0 < s["ttft_s"] <= s["latency_s"] for s in streamed)
    assert all(s["ttft_s"] is None for s in plain)
    assert {s["output_tokens"] for s in samples} == {OUTPUT_TOKENS}
    assert {s["status"] for s in samples} == {200}
    assert progress[0].startswith("load: test against") and "requests" in progress[-1]
    assert (tmp_path / "run" / "locust_stats.csv").is_file()
    canary = result.window_stats("canary")
    assert canary.requests == result.by_track["canary"] and canary.errors == 0
    assert canary.latency_p95_s is not None and canary.ttft_p95_s is not None


def test_service_errors_are_failures_in_the_samples(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    fake, host = service
    fake.fail_every = 4
    fake.cut_stream_every = 5

    result = run_load(host, PROFILE, tmp_path / "run", env=LOAD_ENV)

    samples = result.samples()
    errors = Counter(s["error"] for s in samples if not s["ok"])
    assert errors["HTTP 500"] == sum(1 for s in samples if s["status"] == 500) > 0
    assert errors["stream ended before [DONE]"] > 0
    assert result.failures == sum(errors.values())
    assert result.failures < result.requests
    stable = result.window_stats("stable")
    assert stable.errors == sum(1 for s in samples if s["status"] == 500 and s["track"] == "stable")


def test_a_host_nobody_answers_on_is_a_load_test_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{sock.getsockname()[1]}"

        with pytest.raises(LoadTestError, match=r"exited with status 1(.|\n)*got an HTTP answer"):
            run_load(host, PROFILE, tmp_path / "run", duration_s=2)
