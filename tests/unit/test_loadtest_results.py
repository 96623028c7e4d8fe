"""Load results summarise samples; run_load refuses bad arguments before starting Locust."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferops.loadtest import (
    LoadProfile,
    LoadTestError,
    run_load,
    stats_from_samples,
    summarize,
)

PROFILE = LoadProfile.model_validate(
    {"name": "p", "stages": [{"duration_s": 1, "users": 1, "spawn_rate": 1}]}
)


def sample(
    ts: float,
    latency: float,
    *,
    status: int = 200,
    track: str | None = "stable",
    ttft: float | None = None,
    tokens: int | None = 10,
) -> dict[str, Any]:
    return {
        "ts": ts,
        "latency_s": latency,
        "ttft_s": ttft,
        "status": status,
        "track": track,
        "version": "abc",
        "output_tokens": tokens,
        "ok": status == 200,
        "stream": ttft is not None,
        "error": None if status == 200 else f"HTTP {status}",
    }


def test_summary_counts_requests_failures_tracks_and_throughput(tmp_path: Path) -> None:
    samples = [
        sample(100.0, 0.5),
        sample(100.5, 0.5, track="canary"),
        sample(101.0, 0.5, status=503, track="canary"),
        sample(101.5, 0.5, status=0, track=None, tokens=None),
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))

    result = summarize(samples, path)

    assert (result.requests, result.failures) == (4, 2)
    assert result.by_track == {"canary": 2, "stable": 1, "unknown": 1}
    assert result.duration_s == 2.0 and result.rps == 2.0
    assert result.failure_rate == 0.5
    assert result.samples() == samples


def test_no_samples_is_an_empty_result(tmp_path: Path) -> None:
    result = summarize([], tmp_path / "samples.jsonl")

    assert (result.requests, result.failures, result.rps, result.failure_rate) == (0, 0, 0, None)


def test_window_stats_from_samples_exclude_5xx_from_latency() -> None:
    samples = [sample(100 + i, 0.1 * (i + 1), ttft=0.01 * (i + 1)) for i in range(10)]
    samples.append(sample(111, 0.001, status=500, tokens=None))
    samples.append(sample(112, 9.0, track="canary"))

    stats = stats_from_samples(samples, track="stable", window_s=30)

    assert (stats.requests, stats.errors, stats.window_s) == (11, 1, 30)
    assert stats.latency_p50_s == pytest.approx(0.55)
    assert stats.latency_p95_s == pytest.approx(0.955)
    assert stats.ttft_p95_s == pytest.approx(0.0955)
    assert stats.output_tokens == 100


def test_window_stats_for_a_track_without_samples_is_no_data() -> None:
    stats = stats_from_samples([sample(100, 0.2)], track="canary", window_s=30)

    assert (stats.requests, stats.errors, stats.error_rate) == (0, 0, None)
    assert stats.latency_p95_s is None and stats.ttft_p95_s is None and stats.output_tokens is None


def test_run_load_needs_an_http_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        run_load("127.0.0.1:8080", PROFILE, tmp_path)


def test_run_load_says_where_the_locustfile_was_expected(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match="locustfile not found"):
        run_load("http://127.0.0.1:8080", PROFILE, tmp_path, locustfile=tmp_path / "nope.py")
