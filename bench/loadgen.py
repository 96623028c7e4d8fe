"""Benchmark: how many streaming requests a second the load generator sends per core.

A load test must never mistake a slow generator for a slow service, so this measures
the generator alone, on the path ``inferops loadtest`` runs: ``run_load`` starts
Locust with the project's locustfile, closed-loop users with no think time, against
``bench.upstream`` (prebuilt answers at tens of thousands of requests a second, so it
is never the bottleneck). Every request streams (SSE, the usage chunk, ``[DONE]``): the
locustfile reads each event line by line for TTFT. The reference run in the same
process sends the same load without streaming.

The generator's CPU is the locust process's utime+stime (``/proc/PID/stat``), sampled
until it exits; requests per core is requests per second divided by the cores it
used. Rounds alternate the two kinds, so drift on a shared machine falls on both;
figures are medians with the lowest and highest round. The last line is JSON.

``python -m bench.loadgen [--seconds 15] [--rounds 3] [--users 32]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.service import free_port
from inferops.loadtest import LoadProfile, run_load
from inferops.platforms.supervisor import process_cpu_seconds


def _cpu_s(pid: int) -> float | None:
    return process_cpu_seconds(pid)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench.upstream exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench.upstream not listening on {port} after {timeout_s:.0f} s")


class CpuWatch:
    """The CPU seconds of the load generator, sampled until it exits."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.cpu_s = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add_load(self, pid: int) -> None:
        self.pid = pid
        self._thread.start()

    def drop_load(self, pid: int) -> None:
        self._done.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._done.is_set() and self.pid is not None:
            cpu = _cpu_s(self.pid)
            if cpu is not None:
                self.cpu_s = cpu
            time.sleep(0.1)


def one_run(url: str, seconds: float, users: int, stream: bool, out: Path) -> dict[str, float]:
    profile = LoadProfile.model_validate(
        {"name": "gen", "stages": [{"duration_s": seconds, "users": users, "spawn_rate": users}]}
    )
    watch = CpuWatch()
    env = {
        "INFEROPS_LOAD_STREAM_SHARE": "1" if stream else "0",
        "INFEROPS_LOAD_THINK_S": "0",
        "INFEROPS_LOAD_MODEL": "bench-llm",
    }
    result = run_load(url, profile, out, env=env, owner=watch)
    if result.failures:
        raise SystemExit(f"{result.failures} of {result.requests} requests failed: see {out}")
    rps = result.requests / max(result.duration_s, 1e-9)
    cores = watch.cpu_s / max(result.duration_s, 1e-9)
    return {"rps": rps, "cores": cores, "rps_per_core": rps / max(cores, 1e-9)}


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "low": round(min(values), 1),
        "high": round(max(values), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=32)
    args = parser.parse_args(argv)
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    runs: dict[str, list[dict[str, float]]] = {"stream": [], "plain": []}
    try:
        _wait_port(port, upstream)
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                order = ["stream", "plain"] if round_ % 2 == 0 else ["plain", "stream"]
                for kind in order:
                    figures = one_run(
                        url,
                        args.seconds,
                        args.users,
                        kind == "stream",
                        Path(tmp) / f"{kind}{round_}",
                    )
                    runs[kind].append(figures)
                    print(
                        f"round {round_ + 1} {kind:>6}: {figures['rps']:7.0f} req/s on "
                        f"{figures['cores']:.2f} cores = {figures['rps_per_core']:7.0f} req/s "
                        "per core",
                        flush=True,
                    )
    finally:
        upstream.terminate()
        upstream.wait(10)
    stream = [r["rps_per_core"] for r in runs["stream"]]
    plain = [r["rps_per_core"] for r in runs["plain"]]
    ratios = [s / p for s, p in zip(stream, plain, strict=True)]
    summary: dict[str, Any] = {
        "bench": "loadgen",
        "users": args.users,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "stream_rps_per_core": _spread(stream),
        "plain_rps_per_core": _spread(plain),
        "stream_vs_plain": {k: round(v, 3) for k, v in _spread(ratios).items()},
        "stream_cores_used": _spread([r["cores"] for r in runs["stream"]]),
    }
    per_core = summary["stream_rps_per_core"]
    print(
        f"streaming: {per_core['median']:.0f} req/s per core "
        f"({per_core['low']:.0f}-{per_core['high']:.0f}), "
        f"{summary['stream_vs_plain']['median']:.2f} of the non-streamed rate"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
