"""The real server in its own process: HTTP API, metrics port and graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "sim-integration"
CHAT = "/v1/chat/completions"
METRIC_FAMILIES = {
    "inferops_requests": "counter",
    "inferops_request_duration_seconds": "histogram",
    "inferops_time_to_first_token_seconds": "histogram",
    "inferops_time_per_output_token_seconds": "histogram",
    "inferops_input_tokens": "counter",
    "inferops_output_tokens": "counter",
    "inferops_cost_usd": "counter",
    "inferops_inflight_requests": "gauge",
}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    metrics_url: str
    log: Path

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and return the exit code."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers from a config text; they are killed at the end if still running."""
    started: list[Server] = []

    def start(
        config: str,
        *args: str,
        wait: bool = True,
        port: int | None = None,
        metrics_port: int | None = None,
    ) -> Server:
        n = len(started)
        config_path = tmp_path / f"service-{n}.yaml"
        config_path.write_text(config, encoding="utf-8")
        port = port or free_port()
        metrics_port = metrics_port or free_port()
        log = tmp_path / f"server-{n}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
        env |= {"INFEROPS_IDENTITY_VERSION": "it-1", "INFEROPS_IDENTITY_TRACK": "canary"}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "inferops_service", "serve", "--config", str(config_path),
                 "--port", str(port), "--metrics-port", str(metrics_port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        server = Server(
            process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", log
        )
        started.append(server)
        if wait:
            wait_until_healthy(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def wait_until_healthy(server: Server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}: {server.log.read_text()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not healthy after {timeout}s: {server.log.read_text()}")


FAST = f"model: {MODEL}\nsimulator:\n  ttft_ms: 5\n  tpot_ms: 0.5\n"


def chat(**fields: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "ping"}], **fields}


def test_serves_the_api_and_metrics_then_stops_cleanly(start_server: StartServer) -> None:
    server = start_server(FAST)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        completion = client.post(CHAT, json=chat(max_tokens=12))
        assert completion.status_code == 200
        assert completion.headers["x-inferops-version"] == "it-1"
        assert completion.headers["x-inferops-track"] == "canary"
        assert completion.json()["usage"]["completion_tokens"] == 12

        request = chat(max_tokens=24, stream=True, stream_options={"include_usage": True})
        with client.stream("POST", CHAT, json=request) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [line[6:] for line in stream.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["completion_tokens"] == 24

        assert client.post(CHAT, json=chat(max_tokens=0)).status_code == 400
        assert client.post(CHAT, json=chat(model="other")).status_code == 404
        assert client.get("/ready").json() == {"status": "ready"}
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [MODEL]

    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(server.metrics_url).text)
    }
    for name, kind in METRIC_FAMILIES.items():
        assert families[name].type == kind, name
    requests = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["inferops_requests"].samples
        if s.name == "inferops_requests_total"
    }
    assert requests[(CHAT, "200")] == 2
    assert requests[(CHAT, "400")] == 1
    assert requests[(CHAT, "404")] == 1
    assert requests[("/ready", "200")] == 1
    ttft_counts = [
        s for s in families["inferops_time_to_first_token_seconds"].samples
        if s.name.endswith("_count")
    ]  # fmt: skip
    assert [(s.labels, s.value) for s in ttft_counts] == [({"route": CHAT}, 2.0)]
    outputs = families["inferops_output_tokens"].samples[0]
    assert (outputs.labels, outputs.value) == ({"route": CHAT}, 36.0)
    assert all("version" not in s.labels for f in families.values() for s in f.samples)

    assert server.stop(signal.SIGTERM) == 0


def test_sigint_also_stops_cleanly(start_server: StartServer) -> None:
    server = start_server(FAST)
    assert server.stop(signal.SIGINT) == 0


def test_drains_then_finishes_in_flight_requests(start_server: StartServer) -> None:
    slow = f"model: {MODEL}\nsimulator:\n  ttft_ms: 1500\n  tpot_ms: 1\n"
    server = start_server(slow, "--drain-seconds", "0.5")
    results: list[httpx.Response] = []

    def slow_request() -> None:
        results.append(httpx.post(f"{server.base_url}{CHAT}", json=chat(max_tokens=5), timeout=30))

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    ready = httpx.get(f"{server.base_url}/ready", timeout=5)
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})

    assert server.process.wait(timeout=15) == 0
    worker.join(timeout=5)
    assert [r.status_code for r in results] == [200]
    assert results[0].json()["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("metrics_port", "cannot serve metrics on 127.0.0.1:{port}"),
        ("port", "address already in use"),
    ],
)
def test_busy_port_fails_the_start(start_server: StartServer, which: str, message: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server(FAST, wait=False, **{which: port})
        assert server.process.wait(timeout=15) == 1
    assert message.format(port=port) in server.log.read_text().lower()


def test_bad_config_exits_2(start_server: StartServer) -> None:
    server = start_server("simulator:\n  tpot_ms: fast\n", wait=False)
    assert server.process.wait(timeout=15) == 2
    assert "simulator.tpot_ms" in server.log.read_text()


def test_client_leaving_a_stream_frees_its_batch_slot(start_server: StartServer) -> None:
    server = start_server(f"model: {MODEL}\nsimulator:\n  ttft_ms: 1\n  tpot_ms: 20\n")

    def active_sequences() -> float:
        for family in text_string_to_metric_families(httpx.get(server.metrics_url).text):
            if family.name == "inferops_simulator_active_sequences":
                return family.samples[0].value
        raise AssertionError("inferops_simulator_active_sequences not exported")

    with (
        httpx.Client(base_url=server.base_url, timeout=10) as client,
        client.stream("POST", CHAT, json=chat(max_tokens=4000, stream=True)) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines).startswith("data: ")
        assert active_sequences() == 1
    deadline = time.monotonic() + 5
    while active_sequences() != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert active_sequences() == 0
    assert server.stop() == 0
