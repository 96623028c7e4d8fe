"""run_load drives a real Locust subprocess against a fake OpenAI-compatible server.

The fake answers ``POST /v1/chat/completions`` like the service does: a
``chat.completion`` JSON, or with ``stream: true`` an SSE stream of
``chat.completion.chunk`` events, a usage chunk and ``data: [DONE]``; every
answer carries ``x-inferops-track`` and ``x-inferops-version``. It can fail a
share of requests with a 5xx OpenAI error body or cut a stream short.

The samples' tokens and prices are also checked against the real service
(``python -m inferops_service serve``), whose simulator answers each prompt of
the pool with the same usage every time.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import free_base_port, run_cli, write_config

from inferops.loadtest import (
    DEFAULT_LOCUSTFILE,
    LoadProfile,
    LoadStopped,
    LoadTestError,
    run_load,
)
from inferops.platforms.supervisor import process_start

VERSIONS = {"stable": "1111111", "canary": "2222222"}
INPUT_TOKENS = 12
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
            usage = {
                "prompt_tokens": INPUT_TOKENS,
                "completion_tokens": OUTPUT_TOKENS,
                "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
            }
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
        "usage": {
            "prompt_tokens": INPUT_TOKENS,
            "completion_tokens": OUTPUT_TOKENS,
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        },
    }


class _QuietServer(ThreadingHTTPServer):
    """A client that leaves mid-answer (a stopped load test) is no error of the fake's."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def service() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService()
    handler = type("Handler", (ChatHandler,), {"fake": fake})
    server = _QuietServer(("127.0.0.1", 0), handler)
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
    # Streams too: their input tokens come from the usage chunk before [DONE].
    assert {s["input_tokens"] for s in streamed} == {s["input_tokens"] for s in plain}
    assert {s["input_tokens"] for s in samples} == {INPUT_TOKENS}
    assert {s["cost_usd"] for s in samples} == {None}  # no price table given
    assert {s["status"] for s in samples} == {200}
    assert progress[0].startswith("load: test against") and "requests" in progress[-1]
    assert (tmp_path / "run" / "locust_stats.csv").is_file()
    # The generator's CPU is measured, so a report can say whether it was the bottleneck.
    assert result.generator_cores is not None and 0 < result.generator_cores < 1.5
    assert result.generator_bound == (result.generator_cores >= 0.85)
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


def test_open_loop_stages_send_poisson_arrivals_at_their_rate(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    """rate_rps: requests arrive at a rate whatever the service answers; each sample says
    how long its arrival waited for a free user."""
    _, host = service
    open_loop = LoadProfile.model_validate(
        {
            "name": "open",
            "stages": [{"duration_s": 4, "users": 8, "spawn_rate": 8, "rate_rps": 25}],
        }
    )
    result = run_load(host, open_loop, tmp_path / "run", env=LOAD_ENV)
    samples = result.samples()
    assert 40 <= len(samples) <= 160  # 100 expected; Poisson, and the users start first
    assert all(s["queued_s"] is not None and s["queued_s"] >= 0 for s in samples)
    closed = run_load(host, PROFILE, tmp_path / "closed", env=LOAD_ENV).samples()
    assert {s["queued_s"] for s in closed} == {None}


class Owner:
    """What a release's record hears of its load generators."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def add_load(self, pid: int) -> None:
        self.events.append(("add", pid))

    def drop_load(self, pid: int) -> None:
        self.events.append(("drop", pid))


def test_a_watch_that_names_a_reason_stops_the_load_early(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    """The rollout's outage watch: a reason stops Locust and becomes LoadStopped."""
    _, host = service
    long_run = LoadProfile.model_validate(
        {"name": "long", "stages": [{"duration_s": 120, "users": 2, "spawn_rate": 2}]}
    )
    asked = itertools.count(1)
    owner = Owner()

    def watch() -> str | None:
        return "the router went away" if next(asked) >= 4 else None

    with pytest.raises(LoadStopped, match="the router went away"):
        run_load(host, long_run, tmp_path / "run", env=LOAD_ENV, watch=watch, owner=owner)

    assert [e for e, _ in owner.events] == ["add", "drop"]
    pid = owner.events[0][1]
    assert owner.events[1] == ("drop", pid) and process_start(pid) is None


_ORPHAN = """
import sys
from pathlib import Path
from inferops.loadtest import LoadProfile, run_load

class Owner:
    def add_load(self, pid):
        Path(sys.argv[3]).write_text(str(pid))
    def drop_load(self, pid):
        pass

profile = LoadProfile.model_validate(
    {"name": "long", "stages": [{"duration_s": 120, "users": 2, "spawn_rate": 2}]}
)
run_load(sys.argv[1], profile, Path(sys.argv[2]), owner=Owner())
"""


def test_the_load_stops_when_the_process_that_started_it_is_killed(
    service: tuple[FakeService, str], tmp_path: Path
) -> None:
    """kill -9 of a release leaves no load behind: Locust sees its parent gone and quits."""
    _, host = service
    pid_file = tmp_path / "locust.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, host, str(tmp_path / "run"), str(pid_file)]
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not (tmp_path / "run" / "locust.log").stat().st_size:
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        locust = int(pid_file.read_text())
        started = process_start(locust)
        assert started is not None
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 30  # a hang guard, not a timing threshold
        while process_start(locust) == started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_start(locust) != started, "the load outlived the process that started it"
        assert "is gone; stopping" in (tmp_path / "run" / "locust.log").read_text()
    finally:
        parent.kill()


@pytest.mark.parametrize(
    "prices",
    [
        "{usd_per_request: 1}",
        '[{"usd_per_request": 1}]',
        '{"usd_per_token": 1}',
        '{"usd_per_1m_input_tokens": -0.5}',
        '{"usd_per_1m_output_tokens": "1.5"}',
    ],
)
def test_a_bad_price_table_is_refused_before_any_request(
    service: tuple[FakeService, str], tmp_path: Path, prices: str
) -> None:
    fake, host = service

    with pytest.raises(LoadTestError, match=r"exited with status 1(.|\n)*INFEROPS_LOAD_PRICES"):
        run_load(host, PROFILE, tmp_path / "run", env={"INFEROPS_LOAD_PRICES": prices})

    assert not fake.served


# The real service: its simulator's usage depends only on the prompt and max_tokens.
SERVICE_MODEL = "sim-llama-3-8b"
MAX_TOKENS = 32
SERVICE_PRICES = {"usd_per_1m_input_tokens": 0.5, "usd_per_1m_output_tokens": 1.5}
LOAD_PRICES = {**SERVICE_PRICES, "usd_per_request": 0.0001}
ERROR_RATE = 0.15
CHAT_ROUTE = "/v1/chat/completions"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RealService:
    url: str
    metrics_url: str

    def counter(self, family: str, **labels: str) -> float:
        """The summed value of a counter's samples with these labels (0 when none yet)."""
        text = httpx.get(self.metrics_url, timeout=5).text
        return sum(
            sample.value
            for metric in text_string_to_metric_families(text)
            if metric.name == family
            for sample in metric.samples
            if sample.name == f"{family}_total" and labels.items() <= sample.labels.items()
        )


@pytest.fixture
def real_service(tmp_path: Path) -> Iterator[RealService]:
    """The inference service failing ERROR_RATE of its requests, as a deployment sets it."""
    config = tmp_path / "service.yaml"
    config.write_text(
        f"model: {SERVICE_MODEL}\n"
        "simulator: {ttft_ms: 5, tpot_ms: 0.5}\n"
        f"cost: {json.dumps(SERVICE_PRICES)}\n"
    )
    port, metrics_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
    env["INFEROPS_FAULTS_ERROR_RATE"] = str(ERROR_RATE)
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferops_service", "serve", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"service not ready: {log.read_text()}"
            time.sleep(0.05)
        yield RealService(url, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.kill()
        process.wait(timeout=10)


def _pool_prompts() -> tuple[str, ...]:
    """The locustfile's prompts, read from its source: importing it would patch this process."""
    tree = ast.parse(DEFAULT_LOCUSTFILE.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "PROMPTS" for target in node.targets
        ):
            prompts: tuple[str, ...] = ast.literal_eval(node.value)
            return prompts
    raise AssertionError(f"no PROMPTS in {DEFAULT_LOCUSTFILE}")


def _usage_of(service: RealService, prompt: str) -> tuple[int, int]:
    """The (prompt, completion) tokens the service answers ``prompt`` with, past its faults."""
    body = {
        "model": SERVICE_MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
    }
    for _ in range(50):
        answer = httpx.post(f"{service.url}{CHAT_ROUTE}", json=body, timeout=10)
        if answer.status_code == 200:
            usage = answer.json()["usage"]
            return usage["prompt_tokens"], usage["completion_tokens"]
    raise AssertionError(f"the service failed {prompt!r} 50 times: {answer.text}")


def _price(input_tokens: int | None, output_tokens: int | None) -> float:
    return (
        LOAD_PRICES["usd_per_request"]
        + (input_tokens or 0) * LOAD_PRICES["usd_per_1m_input_tokens"] / 1e6
        + (output_tokens or 0) * LOAD_PRICES["usd_per_1m_output_tokens"] / 1e6
    )


def test_samples_carry_the_real_services_usage_price_and_injected_failures(
    real_service: RealService, tmp_path: Path
) -> None:
    usage = {prompt: _usage_of(real_service, prompt) for prompt in _pool_prompts()}
    expected = set(usage.values())
    cost_before = real_service.counter("inferops_cost_usd", route=CHAT_ROUTE)
    failed_before = real_service.counter("inferops_requests", route=CHAT_ROUTE, status="500")
    env = {
        **LOAD_ENV,
        "INFEROPS_LOAD_MODEL": SERVICE_MODEL,
        "INFEROPS_LOAD_MAX_TOKENS": str(MAX_TOKENS),
        "INFEROPS_LOAD_PRICES": json.dumps(LOAD_PRICES),
    }

    result = run_load(real_service.url, PROFILE, tmp_path / "run", env=env)

    samples = result.samples()
    ok = [s for s in samples if s["ok"]]
    assert {s["stream"] for s in ok} == {True, False}
    # Each answer's tokens are those the service gives one of the pool's prompts.
    assert {(s["input_tokens"], s["output_tokens"]) for s in ok} <= expected
    # The prompt's size as sent (what the judge adjusts TTFT for) goes with its tokens.
    sizes = {(len(prompt), tokens[0]) for prompt, tokens in usage.items()}
    assert {(s["prompt_chars"], s["input_tokens"]) for s in ok} <= sizes
    assert {s["prompt_chars"] for s in samples} <= {len(prompt) for prompt in usage}
    for s in samples:
        assert s["cost_usd"] == pytest.approx(_price(s["input_tokens"], s["output_tokens"]))
    # Summed, the token prices are what the service itself accounted, less the requests
    # it served after the load generator stopped recording (at most one per user).
    token_cost = sum(s["cost_usd"] - LOAD_PRICES["usd_per_request"] for s in ok)
    accounted = real_service.counter("inferops_cost_usd", route=CHAT_ROUTE) - cost_before
    most = max(_price(*usage) for usage in expected) - LOAD_PRICES["usd_per_request"]
    assert token_cost - 1e-12 <= accounted <= token_cost + 2 * most
    # Injected faults are errors to the samples and to the service's own metrics.
    failed = [s for s in samples if not s["ok"]]
    assert failed and {(s["status"], s["error"]) for s in failed} == {(500, "HTTP 500")}
    assert {s["input_tokens"] for s in failed} == {None}
    assert {s["cost_usd"] for s in failed} == {LOAD_PRICES["usd_per_request"]}
    assert len(failed) / len(samples) == pytest.approx(ERROR_RATE, abs=0.1)
    counted = real_service.counter("inferops_requests", route=CHAT_ROUTE, status="500")
    assert len(failed) <= counted - failed_before <= len(failed) + 2


def test_a_load_test_that_breaches_an_slo_exits_2_naming_it(
    real_service: RealService, tmp_path: Path
) -> None:
    """`inferops loadtest` against the real service failing 15% of its requests."""
    write_config(tmp_path, free_base_port())
    profile = tmp_path / "short.yaml"
    profile.write_text("name: short\nstages:\n  - {duration_s: 4, users: 2, spawn_rate: 2}\n")
    slo = tmp_path / "slo.yaml"
    slo.write_text(
        "cost: {usd_per_1m_output_tokens: 1.5}\n"
        "checks:\n"
        "  - {metric: error_rate, max: 0.05}\n"
        "  - {metric: ttft_p95_s, max: 5}\n"
        "  - {metric: cost_per_1m_output_tokens_usd, max: 1000}\n"
    )
    args = ["loadtest", "--env", "local", "--profile", str(profile), "--slo", str(slo)]

    refused = run_cli(tmp_path, *args[:-4], "--profile", "nope", "--target", real_service.url)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "no load profile 'nope'" in refused.stderr and "smoke" in refused.stderr

    result = run_cli(tmp_path, *args, "--target", real_service.url, "--json")
    assert result.returncode == 2, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["breached"] == ["error_rate"] and summary["held"] is False
    error_rate = next(c for c in summary["checks"] if c["name"] == "error_rate")
    assert 0.05 < error_rate["figure"] < 0.35  # the service fails 15% of requests
    assert "past the SLO" in error_rate["detail"]
    assert [c["held"] for c in summary["checks"]][1:] == [True, True]
    assert summary["requests"] > 20
    kept = json.loads((Path(summary["samples"]).parent / "summary.json").read_text())
    assert kept["breached"] == ["error_rate"]
    page = Path(summary["report"]).read_text()
    assert page.count("<svg") == 2 and "BREACHED" in page
    assert "load: done" in result.stderr and "Traceback" not in result.stderr
