"""PrometheusProvider against a real Prometheus scraping a hand-written exposition.

A thread serves the service's metric names in the text exposition format;
Prometheus scrapes it every second with the target labels the platform would
attach (track, version, env, pod). The test changes the counters between
scrapes and checks what ``window_stats`` reads back from the real TSDB.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from inferops.metrics import MetricsError, MultipleValuesReturned, PrometheusProvider, QueryError

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ROUTE = "/v1/chat/completions"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TARGET = {"track": "canary", "version": "abc123", "env": "test", "pod": "inferops-canary-0"}

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).is_file(),
    reason="no prometheus binary (expected /usr/bin/prometheus): install the Debian package "
    "'prometheus' (make setup does)",
)


@dataclass
class Exposition:
    """The service's metrics as the fake target currently reports them."""

    requests: dict[str, float] = field(default_factory=lambda: {"200": 0, "500": 0})
    # Per status, how many requests fell into each duration bucket (by upper bound).
    durations: dict[str, dict[float, int]] = field(default_factory=lambda: {"200": {}, "500": {}})
    ttft: dict[float, int] = field(default_factory=dict)
    output_tokens: float = 0
    cost_usd: float = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self) -> str:
        """The text exposition format (version 0.0.4)."""
        with self.lock:
            lines = ["# TYPE inferops_requests_total counter"]
            for status, count in self.requests.items():
                lines.append(
                    f'inferops_requests_total{{route="{ROUTE}",status="{status}"}} {count}'
                )
            lines.append("# TYPE inferops_request_duration_seconds histogram")
            for status, counts in self.durations.items():
                lines += _histogram(
                    "inferops_request_duration_seconds",
                    f'route="{ROUTE}",status="{status}"',
                    counts,
                )
            lines.append("# TYPE inferops_time_to_first_token_seconds histogram")
            lines += _histogram(
                "inferops_time_to_first_token_seconds", f'route="{ROUTE}"', self.ttft
            )
            lines.append("# TYPE inferops_output_tokens_total counter")
            lines.append(f'inferops_output_tokens_total{{route="{ROUTE}"}} {self.output_tokens}')
            lines.append("# TYPE inferops_cost_usd_total counter")
            lines.append(f'inferops_cost_usd_total{{route="{ROUTE}"}} {self.cost_usd}')
        return "\n".join(lines) + "\n"


def _histogram(name: str, labels: str, counts: dict[float, int]) -> list[str]:
    """Cumulative bucket, sum and count lines for one histogram series."""
    lines, cumulative, total = [], 0, 0.0
    for bound in DURATION_BUCKETS:
        cumulative += counts.get(bound, 0)
        total += counts.get(bound, 0) * bound
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {cumulative}')
    lines.append(f"{name}_sum{{{labels}}} {total}")
    lines.append(f"{name}_count{{{labels}}} {cumulative}")
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def exposition() -> Iterator[tuple[Exposition, int]]:
    state = Exposition()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, exposition: tuple[Exposition, int]
) -> Iterator[tuple[PrometheusProvider, Exposition]]:
    """One Prometheus for the module: it takes about 6 s to report the target up."""
    state, target_port = exposition
    tmp_path = tmp_path_factory.mktemp("prometheus")
    labels = ", ".join(f'{key}: "{value}"' for key, value in TARGET.items())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: inferops\n"
        "    static_configs:\n"
        f'      - targets: ["127.0.0.1:{target_port}"]\n'
        f"        labels: {{{labels}}}\n"
    )
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    provider = PrometheusProvider(f"http://127.0.0.1:{port}", timeout_s=2)
    try:
        _wait_for(
            lambda: _scalar_or_none(provider, 'up{job="inferops"}') == 1,
            what="the target to be up",
            process=process,
            log_path=log_path,
        )
        yield provider, state
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scalar_or_none(provider: PrometheusProvider, query: str) -> float | None:
    """The single value of ``query``, or None while Prometheus cannot answer it yet."""
    try:
        return provider.run_query(query)
    except MetricsError:
        return None


def _wait_for(
    condition: Callable[[], bool],
    *,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    timeout_s: float = 30,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process is not None and process.poll() is not None:
            log = log_path.read_text() if log_path else ""
            pytest.fail(f"prometheus exited with {process.returncode} waiting for {what}:\n{log}")
        if time.monotonic() > deadline:
            log = log_path.read_text()[-2000:] if log_path else ""
            pytest.fail(f"gave up after {timeout_s}s waiting for {what}\n{log}")
        time.sleep(0.2)


def _last_scrape(provider: PrometheusProvider) -> float:
    return provider.run_query('timestamp(up{job="inferops"})')


def test_window_stats_reads_the_real_tsdb(
    prometheus: tuple[PrometheusProvider, Exposition],
) -> None:
    provider, state = prometheus
    selector = {"env": "test", "track": "canary", "version": "abc123"}
    assert provider.is_online()

    # A few scrapes of an idle service first: a window over them has no traffic.
    _wait_for(
        lambda: (_scalar_or_none(provider, 'count_over_time(up{job="inferops"}[1m])') or 0) >= 3,
        what="three scrapes",
    )
    idle_until = _last_scrape(provider)
    idle = provider.window_stats(selector, 2, at=idle_until)

    changed_at = time.time()
    with state.lock:
        state.requests = {"200": 100, "500": 5}
        state.durations = {
            # p50 -> 0.25 + 0.25 * 10/50 = 0.3; p95 -> 0.5 + 0.5 * 5/8 = 0.8125;
            # p99 -> 1 + 1.5 * 1/2 = 1.75 (the fast 5xx must not pull these down)
            "200": {0.25: 40, 0.5: 50, 1: 8, 2.5: 2},
            "500": {0.01: 5},
        }
        state.ttft = {0.1: 30, 0.25: 30}  # p95 -> 0.1 + 0.15 * 27/30 = 0.235
        state.output_tokens = 9000
        state.cost_usd = 0.5
    _wait_for(lambda: _last_scrape(provider) > changed_at + 1, what="two scrapes after the change")
    # Ending the window on a scrape (and starting before the first, zero, sample)
    # keeps increase() from extrapolating, so the counts come back exact.
    busy = provider.window_stats(selector, 120, at=_last_scrape(provider))
    elsewhere = provider.window_stats({**selector, "track": "stable"}, 120)

    assert (idle.requests, idle.errors) == (0, 0)
    assert idle.latency_p50_s is None and idle.latency_p99_s is None and idle.ttft_p95_s is None

    assert busy.track == "canary"
    assert busy.requests == pytest.approx(105, rel=1e-6)
    assert busy.errors == pytest.approx(5, rel=1e-6)
    assert busy.latency_p50_s == pytest.approx(0.3, rel=1e-6)
    assert busy.latency_p95_s == pytest.approx(0.8125, rel=1e-6)
    assert busy.latency_p99_s == pytest.approx(1.75, rel=1e-6)
    assert busy.ttft_p95_s == pytest.approx(0.235, rel=1e-6)
    assert busy.output_tokens == pytest.approx(9000, rel=1e-6)
    assert busy.cost_usd == pytest.approx(0.5, rel=1e-6)

    assert (elsewhere.requests, elsewhere.errors, elsewhere.latency_p95_s) == (0, 0, None)


def test_real_error_answers_map_to_typed_errors(
    prometheus: tuple[PrometheusProvider, Exposition],
) -> None:
    provider, _ = prometheus

    with pytest.raises(QueryError, match="bad_data"):
        provider.run_query("sum(inferops_requests_total")
    with pytest.raises(MultipleValuesReturned, match="2 series"):
        provider.run_query("inferops_requests_total")
