"""The real server with embeddings on: it loads the model at start, serves it, stops cleanly."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

MODEL = "all-minilm-l6-v2"
CONFIG = f"""\
model: sim-integration
simulator: {{ttft_ms: 5, tpot_ms: 0.5}}
embeddings: {{enabled: true, model: {MODEL}, threads: 1}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str, Path]]:
    """A server process with embeddings enabled; killed at the end if still running."""
    config = tmp_path / "service.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferops_service", "serve", "--config", str(config),
             "--port", str(port), "--metrics-port", str(metrics_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:
        yield (
            process,
            f"http://127.0.0.1:{port}",
            f"http://127.0.0.1:{metrics_port}/metrics",
            log,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    # Loading the model takes seconds; a slow disk or a cold cache can take much longer.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not ready after 120s: {log.read_text()}")


def test_loads_the_model_serves_embeddings_and_stops_cleanly(
    server: tuple[subprocess.Popen[bytes], str, str, Path],
) -> None:
    process, base_url, metrics_url, log = server
    wait_until_ready(process, base_url, log)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        texts = ["How do I reset my password?", "I forgot my password; how can I change it?"]
        floats = client.post("/v1/embeddings", json={"model": MODEL, "input": texts})
        packed = client.post(
            "/v1/embeddings",
            json={"model": MODEL, "input": texts, "encoding_format": "base64"},
        )
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert floats.status_code == packed.status_code == 200
    vectors = np.array([item["embedding"] for item in floats.json()["data"]], dtype=np.float32)
    decoded = np.array(
        [np.frombuffer(base64.b64decode(i["embedding"]), "<f4") for i in packed.json()["data"]]
    )
    np.testing.assert_array_equal(vectors, decoded)
    assert float(vectors[0] @ vectors[1]) > 0.8
    assert MODEL in listed

    metrics = httpx.get(metrics_url).text
    tokens = floats.json()["usage"]["prompt_tokens"]
    assert f'inferops_input_tokens_total{{route="/v1/embeddings"}} {2 * tokens:.1f}' in metrics
    assert 'inferops_requests_total{route="/v1/embeddings",status="200"} 2.0' in metrics

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    text = log.read_text()
    assert "Traceback" not in text
    # The weights' progress bar would fill the log at every start.
    assert "Loading weights" not in text
