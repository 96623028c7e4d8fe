"""The gateway benchmark's pure parts: wrk's summary, the trivial upstream's HTTP, the profile."""

from __future__ import annotations

import json
import os

import pytest

from bench.service import (
    WRK_MARK,
    BenchError,
    _package,
    cpu_seconds,
    parse_wrk,
    wrk_script,
)
from bench.upstream import Responses, UpstreamProtocol

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/v1/chat/completions
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.91ms    9.10ms  63.31ms   91.31%
    Req/Sec     4.06k   251.43     4.41k    76.00%
  20211 requests in 5.00s, 13.63MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4042.03
Transfer/sec:      2.73MB
WRK_JSON {"requests":20211,"duration_us":5000210,"connect":0,"read":1,"write":0,"status":3,\
"timeout":2,"p50_us":6865,"p90_us":16327,"p99_us":41481,"mean_us":7910.4}
"""


def test_wrk_summary_is_read_from_the_done_hook_line() -> None:
    result = parse_wrk(WRK_OUTPUT.replace("\\\n", ""))
    assert result.requests == 20211
    assert result.duration_s == pytest.approx(5.00021)
    assert result.rps == pytest.approx(20211 / 5.00021)
    assert result.errors == 6  # read + status + timeout
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (6.865, 16.327, 41.481)
    assert result.mean_ms == pytest.approx(7.9104)


def test_wrk_output_without_the_summary_is_an_error() -> None:
    with pytest.raises(BenchError, match="WRK_JSON"):
        parse_wrk("Running 5s test @ http://x\nRequests/sec: 0.00\n")


def test_the_wrk_script_posts_the_body_and_headers_and_prints_every_parsed_field() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": 'it\'s "quoted"'}]}
    script = wrk_script(body, {"Authorization": "Bearer k"})
    assert 'wrk.method = "POST"' in script
    assert f"wrk.body = [==[{json.dumps(body, separators=(',', ':'))}]==]" in script
    assert 'wrk.headers["Authorization"] = [==[Bearer k]==]' in script
    assert WRK_MARK in script
    for key in ("requests", "duration_us", "status", "timeout", "p50_us", "p99_us", "mean_us"):
        assert f'"{key}"' in script


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def connect() -> tuple[UpstreamProtocol, FakeTransport, Responses]:
    responses = Responses()
    protocol = UpstreamProtocol(responses)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, responses


def post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_upstream_answers_pipelined_requests_split_anywhere() -> None:
    protocol, transport, responses = connect()
    stream = post(b'{"stream": true}')
    data = post(b'{"model":"m"}') + stream + b"GET /v1/models HTTP/1.1\r\n\r\n"
    for i in range(0, len(data), 7):
        protocol.data_received(data[i : i + 7])
    assert transport.written == responses.completion + responses.stream + responses.models
    assert not transport.closed
    body = responses.completion.split(b"\r\n\r\n", 1)[1]
    answer = json.loads(body)
    assert answer["object"] == "chat.completion"
    assert answer["usage"]["total_tokens"] == 20
    assert responses.stream.rstrip().endswith(b"data: [DONE]")


def test_upstream_closes_when_asked_and_refuses_chunked_bodies() -> None:
    protocol, transport, responses = connect()
    protocol.data_received(post(b"{}", b"Connection: close\r\n"))
    assert transport.written == responses.completion
    assert transport.closed

    protocol, transport, responses = connect()
    protocol.data_received(
        b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
    )
    assert transport.written == responses.length_required
    assert transport.closed


def test_profile_time_is_charged_to_packages() -> None:
    site = "/x/.venv/lib/python3.11/site-packages"
    assert _package((f"{site}/redis/asyncio/connection.py", 1, "f")) == "redis"
    assert _package(("/work/service/inferops_service/app.py", 1, "f")) == "inferops_service"
    assert _package(("/usr/lib/python3.11/asyncio/streams.py", 1, "f")) == "asyncio"
    assert _package(("~", 0, "<built-in method orjson.dumps>")) == "orjson"
    parser = "<method 'feed_data' of 'httptools.parser.parser.HttpRequestParser' objects>"
    assert _package(("~", 0, parser)) == "httptools"
    # Standard built-ins are charged to their callers.
    assert _package(("~", 0, "<method 'get' of 'dict' objects>")) is None
    assert _package(("~", 0, "<built-in method posix.write>")) is None


def test_cpu_time_of_a_process_is_read_from_proc() -> None:
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc")
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))
    assert cpu_seconds(os.getpid()) >= before >= 0
