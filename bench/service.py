"""Benchmark: what the gateway costs per request, next to calling its upstream directly.

Everything runs on loopback, started by this script and stopped at the end (also on
Ctrl-C or an error):

- a ``redis-server`` of its own on a free port, saving nothing to disk;
- ``bench.upstream``: a trivial OpenAI-compatible server (raw asyncio on uvloop) that
  answers every chat completion with the same small ``chat.completion``, at tens of
  thousands of requests a second on one core, so it is never the bottleneck;
- two gateways (``python -m inferops_service serve``, one uvicorn worker each), configured
  as a secured deployment would be: ``backend: openai`` pointing at that upstream (or the
  zero-latency simulator with ``--backend simulator``), one API key with rpm/tpm limits far
  too high to bite (so the Redis token bucket still runs on every request), PII masking,
  metrics, and an audit log. The first has the response cache off; the second has the
  exact cache on and is used only for the cache-hit runs.

Load comes from ``wrk`` (one thread, keep-alive connections, a Lua script that sets the
POST body and headers). wrk rather than a Python load generator because it costs a few
microseconds per request in C, so on a 2-core machine it leaves the gateway almost a full
core; a Python client would take about as much CPU as the gateway itself. The Lua
script's ``done`` hook prints wrk's own summary as one JSON line (requests, duration,
error counts, and latency percentiles from its histogram in microseconds), which is read
instead of wrk's rounded, unit-suffixed text.

Runs, each ``--seconds`` long, in ``--rounds`` rounds after a short warm-up of every
target: concurrency 32 for throughput and concurrency 1 for latency, against the gateway
and directly against the upstream, plus cache hits at concurrency 32 (the same request
repeated after one warm-up miss). Each round runs them in the reverse order of the last,
so slow drift on a shared machine falls on both sides alike; figures are medians over
rounds. Load is closed-loop (each connection sends its next request when the answer
arrives), so the latencies are those at the throughput reached.

CPU per request is the change in a process's utime+stime (``/proc/PID/stat``, all its
threads) over a run divided by the requests wrk completed; the gateway's is the figure
that matters, the upstream's and Redis's are shown for reference. The machine's busy time
(``/proc/stat``) minus that of these processes and wrk is reported as "other cores": load
from elsewhere (or steal) that a shared machine adds and that depresses throughput, though
not CPU per request. (At tens of thousands of ping-pongs a second, as in the direct c=1 run,
the kernel's own scheduling time shows up there too.)

Before timing, one request through each gateway must be a 200 ``chat.completion`` (for
the openai backend, carrying the upstream's text), and the cache gateway must answer the
repeated request with ``x-inferops-cache: hit-...``. Any non-2xx answer or socket error
during the runs is counted in ``errors``; a valid run has none.

``--profile`` starts one more gateway (cache off) that records every garbage collection,
runs it once plainly at c=32 and reports the collections' pauses in that run, then once
more under cProfile (switched on only for that window) and prints the costliest functions,
the gateway's own steps by inclusive time, and the share of time by package, with the
time of C built-ins charged to the package that called them. The profiler slows Python
code a lot, so its throughput means nothing; the shares say where the time goes.

Run ``python -m bench.service`` (``--help`` for the knobs). The last line of the output is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from inferops_service.auth import hash_key

from bench.upstream import ANSWER

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-llm"
CHAT = "/v1/chat/completions"
KEY = "sk-inferops-bench-key"
# Limits no run can reach, so every request passes the token bucket instead of skipping it.
HUGE_RPM = 1_000_000_000
HUGE_TPM = 1_000_000_000_000
BODY = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Say hello to the team in one short sentence, please."},
    ],
    "max_tokens": 16,
}
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
WRK_MARK = "WRK_JSON "
THROUGHPUT_C = 32
LATENCY_C = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER_LOAD_WARNING = 0.2

# Started as ``python -c`` with the profile's path first: the gateway runs unchanged, and
# SIGUSR1/SIGUSR2 switch the profiler on and off around the timed window only. Every
# garbage collection's start (CLOCK_MONOTONIC, the same clock in every process), duration
# and generation is recorded too, and written next to the profile.
PROFILED_GATEWAY = """
import cProfile, gc, json, os, runpy, signal, sys, time
out = sys.argv[1]
sys.argv = ["inferops-service", *sys.argv[2:]]
prof = cProfile.Profile()
collections = []
began = [0.0]
def on_gc(phase, info):
    if phase == "start":
        began[0] = time.monotonic()
    else:
        collections.append((began[0], time.monotonic() - began[0], info["generation"]))
gc.callbacks.append(on_gc)
def start(*_):
    prof.enable()
def stop(*_):
    prof.disable()
    with open(out + ".gc", "w") as f:
        json.dump(collections, f)
    prof.dump_stats(out + ".part")
    os.replace(out + ".part", out)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
runpy.run_module("inferops_service", run_name="__main__", alter_sys=True)
"""


class BenchError(Exception):
    """The benchmark cannot run or its responses are wrong."""


# --- wrk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk run's summary."""

    requests: int
    duration_s: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def wrk_script(body: dict[str, Any], headers: dict[str, str]) -> str:
    """The Lua script: POST ``body`` with ``headers``; print the summary as one JSON line."""
    text = json.dumps(body, separators=(",", ":"))
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{text}]==]"]
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    lines.append(
        f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{WRK_MARK}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""
    )
    return "\n".join(lines)


def parse_wrk(output: str) -> WrkResult:
    """Read the summary line the script's ``done`` hook printed."""
    for line in output.splitlines():
        if line.startswith(WRK_MARK):
            data = json.loads(line[len(WRK_MARK) :])
            errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=data["duration_us"] / 1e6,
                errors=int(errors),
                p50_ms=data["p50_us"] / 1e3,
                p90_ms=data["p90_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                mean_ms=data["mean_us"] / 1e3,
            )
    raise BenchError(f"no {WRK_MARK.strip()} line in wrk's output:\n{output[-2000:]}")


def run_wrk(url: str, connections: int, seconds: int, script: Path) -> WrkResult:
    """Run wrk with one thread and ``connections`` keep-alive connections."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    command += ["-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, all its threads, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses; the fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling since boot (``/proc/stat``), in seconds."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait is busy.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU time of the children waited for so far (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait(
    what: str,
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path | None,
    timeout: float = 30.0,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise BenchError(f"{what} exited with {process.returncode}\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return
        time.sleep(0.05)
    raise BenchError(f"{what} not ready after {timeout:.0f} s")


def _redis_pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def _http_ok(port: int, path: str) -> bool:
    status, _, _ = request(port, "GET", path)
    return status == 200


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: status, lower-cased headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@dataclass
class Gateway:
    """A running gateway."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CHAT}"


@dataclass
class Processes:
    """Every process the benchmark started, stopped in reverse order however it ends."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, command: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """SIGTERM (the gateway then exits cleanly), SIGKILL if it lingers."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                self.stop(process)


def start_redis(procs: Processes, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server of our own: loopback, free port, no persistence."""
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server not installed: run `make setup` (installs it)")
    port = free_port()
    log = tmp / "redis.log"
    process = procs.start(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        log,
    )  # fmt: skip
    _wait("redis-server", lambda: _redis_pong(port), process, log, timeout=10)
    return process, port


def start_upstream(procs: Processes, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The trivial upstream, in a process of its own."""
    port = free_port()
    log = tmp / "upstream.log"
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--model", MODEL]
    process = procs.start(command, log)
    _wait("upstream", lambda: _http_ok(port, "/health"), process, log, timeout=10)
    return process, port


def gateway_config(
    backend: str, upstream_port: int, redis_port: int, audit: Path, cache: bool, prefix: str
) -> dict[str, Any]:
    """A secured deployment's settings, with limits too high to bite."""
    config: dict[str, Any] = {
        "model": MODEL,
        "backend": backend,
        "auth": {
            "keys": [
                {
                    "name": "bench",
                    "key_sha256": hash_key(KEY),
                    "tenant": "bench",
                    "rpm": HUGE_RPM,
                    "tpm": HUGE_TPM,
                }
            ]
        },
        "redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "key_prefix": prefix},
        "pii": {"mode": "mask"},
        "audit": {"path": str(audit)},
        "cache": {"exact": {"enabled": cache}},
    }
    if backend == "openai":
        config["upstream"] = {"url": f"http://127.0.0.1:{upstream_port}/v1", "model": MODEL}
    else:
        # No simulated model time, and a batch wider than any run's concurrency: no queueing.
        config["simulator"] = {"ttft_ms": 0, "tpot_ms": 0, "max_batch": 1024}
    return config


def start_gateway(
    procs: Processes, tmp: Path, name: str, config: dict[str, Any], profile: Path | None = None
) -> Gateway:
    """``inferops-service serve`` with ``config``, optionally wrapped by the profiler."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port, metrics_port = free_port(), free_port()
    serve = [
        "serve",
        "--config",
        str(path),
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
    ]
    if profile is None:
        command = [sys.executable, "-m", "inferops_service", *serve]
    else:
        command = [sys.executable, "-c", PROFILED_GATEWAY, str(profile), *serve]
    # Only the file configures it, whatever the caller's environment says.
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFEROPS_")}
    log = tmp / f"{name}.log"
    process = procs.start(command, log, env)
    _wait(f"gateway {name}", lambda: _http_ok(port, "/health"), process, log)
    return Gateway(name, process, port, metrics_port, log)


# --- checks -------------------------------------------------------------------------------


def post_chat(port: int) -> tuple[int, dict[str, str], bytes]:
    """The benchmark's request, once."""
    return request(port, "POST", CHAT, json.dumps(BODY).encode(), HEADERS)


def check_completion(what: str, status: int, body: bytes, backend: str) -> None:
    """A real answer: 200, a chat.completion with text (the upstream's, via openai)."""
    if status != 200:
        raise BenchError(f"{what}: status {status}: {body[:500]!r}")
    data = json.loads(body)
    if data.get("object") != "chat.completion":
        raise BenchError(f"{what}: not a chat.completion: {body[:500]!r}")
    text = data["choices"][0]["message"]["content"]
    if not text or (backend == "openai" and text != ANSWER):
        raise BenchError(f"{what}: unexpected answer {text!r}")


def check_cache_hit(gateway: Gateway, backend: str) -> str:
    """One miss to fill the cache, then the same request must be a hit; return its header."""
    status, _, body = post_chat(gateway.port)
    check_completion("cache gateway, first request", status, body, backend)
    status, headers, body = post_chat(gateway.port)
    check_completion("cache gateway, repeated request", status, body, backend)
    verdict = headers.get("x-inferops-cache", "")
    if not verdict.startswith("hit"):
        raise BenchError(f"cache gateway: repeated request was not a hit ({verdict or 'none'})")
    return verdict


# --- measurement --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One timed run and the CPU each watched process spent on it."""

    kind: str
    connections: int
    wrk: WrkResult
    cpu_s: dict[str, float]
    wall_s: float
    wrk_cores: float
    # Cores busy with work that was not the benchmark's (other programs, steal): if this is
    # high, the machine was shared during the run and throughput figures are depressed.
    other_cores: float

    def cpu_ms_per_req(self, process: str) -> float:
        return 1e3 * self.cpu_s[process] / self.wrk.requests if self.wrk.requests else 0.0


def measure(
    kind: str,
    url: str,
    connections: int,
    seconds: int,
    script: Path,
    pids: dict[str, int],
    ours: Sequence[int] = (),
) -> Sample:
    """Run wrk once, reading the CPU time of ``pids``, of ``ours`` and of the machine."""
    watched = {**{f"_{pid}": pid for pid in ours}, **pids}
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    machine, wrk = machine_busy_seconds(), children_cpu_seconds()
    started = time.perf_counter()
    result = run_wrk(url, connections, seconds, script)
    wall = time.perf_counter() - started
    machine, wrk = machine_busy_seconds() - machine, children_cpu_seconds() - wrk
    after = {name: cpu_seconds(pid) for name, pid in watched.items()}
    spent = {name: after[name] - before[name] for name in watched}
    mine = sum(spent[f"_{pid}"] for pid in ours) if ours else sum(spent.values())
    cpu = {name: spent[name] for name in pids}
    other = max(0.0, machine - mine - wrk) / wall
    return Sample(kind, connections, result, cpu, wall, wrk / wall, other)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(samples: list[Sample], kind: str, connections: int) -> dict[str, Any]:
    """Medians over rounds of one kind of run."""
    mine = [s for s in samples if s.kind == kind and s.connections == connections]
    processes = mine[0].cpu_s.keys() if mine else ()
    return {
        "rps": _median([s.wrk.rps for s in mine]),
        "rps_rounds": [round(s.wrk.rps, 1) for s in mine],
        "p50_ms": _median([s.wrk.p50_ms for s in mine]),
        "p90_ms": _median([s.wrk.p90_ms for s in mine]),
        "p99_ms": _median([s.wrk.p99_ms for s in mine]),
        "cpu_ms_per_req": {p: _median([s.cpu_ms_per_req(p) for s in mine]) for p in processes},
        # Cores the process kept busy: near 1.0 means that one-threaded process is the limit.
        "busy_cores": {p: _median([s.cpu_s[p] / s.wall_s for s in mine]) for p in processes},
        "wrk_cores": _median([s.wrk_cores for s in mine]),
        "other_cores": _median([s.other_cores for s in mine]),
        "errors": sum(s.wrk.errors for s in mine),
        "requests": sum(s.wrk.requests for s in mine),
    }


# --- profile ------------------------------------------------------------------------------


def _package(func: tuple[str, int, str]) -> str | None:
    """The package a profiled function belongs to; None for a standard built-in."""
    filename, _, name = func
    if filename == "~":
        # "<method 'feed_data' of 'httptools.parser.parser.HttpRequestParser' objects>" or
        # "<built-in method orjson.dumps>": third-party C code is its package's own time.
        owner = name.split(" of '", 1)[1].split("'", 1)[0] if " of '" in name else ""
        if not owner and name.startswith("<built-in method "):
            owner = name[len("<built-in method ") :].rstrip(">")
        top = owner.split(".", 1)[0] if "." in owner else ""
        if not top or top in sys.stdlib_module_names:
            return None
        return top
    path = filename.replace("\\", "/")
    if "/inferops_service/" in path:
        return "inferops_service"
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/asyncio/" in path:
        return "asyncio"
    return "stdlib"


@dataclass(frozen=True)
class Profile:
    """What a profile says, as shares of the time spent running Python callbacks."""

    total_s: float
    by_package: dict[str, float]
    own: list[tuple[float, str]]
    inclusive: list[tuple[float, str]]


def profile_shares(path: Path, top: int) -> Profile:
    """Share of profiled time by package, the costliest functions, the gateway's own steps."""
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0
    shares: dict[str, float] = defaultdict(float)
    for func, (_, _, own, _, callers) in raw.items():
        package = _package(func)
        if package is not None:
            shares[package] += own
            continue
        # A standard built-in (dict.get, socket.send, ...) works for whoever called it.
        spent = sum(c[2] for c in callers.values())
        for caller, c in callers.items():
            share = own * (c[2] / spent if spent else 1 / len(callers))
            shares[_package(caller) or "builtins"] += share
        if not callers:
            shares["builtins"] += own
    own_top = sorted(((e[2], _describe(f)) for f, e in raw.items()), reverse=True)[:top]
    # Each resumption of a coroutine is one call, so a step's inclusive time is the CPU it
    # and everything it called spent, without the time it waited.
    ours = sorted(
        ((e[3], _describe(f)) for f, e in raw.items() if _package(f) == "inferops_service"),
        reverse=True,
    )[:top]
    return Profile(
        total,
        {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
        [(t / total, name) for t, name in own_top],
        [(t / total, name) for t, name in ours],
    )


def gc_pauses(path: Path, start: float, stop: float) -> dict[str, Any]:
    """Garbage collections that began between ``start`` and ``stop``, by generation."""
    records = [r for r in json.loads(path.read_text()) if start <= r[0] <= stop]
    by_generation: dict[str, dict[str, float]] = {}
    for generation in sorted({r[2] for r in records}):
        pauses = [r[1] for r in records if r[2] == generation]
        by_generation[str(generation)] = {
            "count": len(pauses),
            "total_ms": round(1e3 * sum(pauses), 1),
            "max_ms": round(1e3 * max(pauses), 2),
        }
    wall = stop - start
    return {
        "by_generation": by_generation,
        "share_of_wall": round(sum(r[1] for r in records) / wall, 4) if wall > 0 else 0.0,
    }


def _describe(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/service/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def run_profile(
    procs: Processes,
    tmp: Path,
    config: dict[str, Any],
    args: argparse.Namespace,
    script: Path,
    backend: str,
) -> dict[str, Any]:
    """A plain gateway run watching garbage collections, then one under cProfile."""
    out = tmp / "gateway.prof"
    gateway = start_gateway(procs, tmp, "gateway-profiled", config, profile=out)
    status, _, body = post_chat(gateway.port)
    check_completion("profiled gateway", status, body, backend)
    run_wrk(gateway.url, THROUGHPUT_C, args.warmup, script)
    pids = {"gateway": gateway.process.pid}
    plain_from = time.monotonic()
    plain = measure("plain", gateway.url, THROUGHPUT_C, args.seconds, script, pids)
    plain_to = time.monotonic()
    os.kill(gateway.process.pid, signal.SIGUSR1)
    sample = measure(
        "profiled",
        gateway.url,
        THROUGHPUT_C,
        args.seconds,
        script,
        {"gateway": gateway.process.pid},
    )
    os.kill(gateway.process.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    procs.stop(gateway.process)
    if not out.exists():
        raise BenchError("the profiled gateway wrote no profile")
    found = profile_shares(out, args.profile_top)
    gc_stats = gc_pauses(out.with_name(out.name + ".gc"), plain_from, plain_to)
    print(
        f"\ngarbage collection in a plain c={THROUGHPUT_C} run of {args.seconds} s "
        f"({plain.wrk.rps:,.0f} req/s, p99 {plain.wrk.p99_ms:.1f} ms): "
        + "; ".join(
            f"gen{g} {v['count']}x, {v['total_ms']:.0f} ms in all, longest {v['max_ms']:.1f} ms"
            for g, v in gc_stats["by_generation"].items()
        )
        + f"; {gc_stats['share_of_wall']:.1%} of the run's wall time"
    )
    print(
        f"\nprofile: one gateway run of {args.seconds} s at c={THROUGHPUT_C} under cProfile "
        f"({sample.wrk.rps:,.0f} req/s while profiled; {found.total_s:.1f} s inside Python "
        "callbacks of the event loop; the loop's own C code between callbacks is not seen)"
    )
    print("share by package, own time (C built-ins charged to their caller):")
    for package, share in found.by_package.items():
        if share >= 0.005:
            print(f"  {share:6.1%}  {package}")
    print(f"top {len(found.own)} functions by own time:")
    for share, name in found.own:
        print(f"  {share:6.1%}  {name}")
    print(f"top {len(found.inclusive)} gateway functions by inclusive time:")
    for share, name in found.inclusive:
        print(f"  {share:6.1%}  {name}")
    return {
        "gc": gc_stats,
        "plain_rps": round(plain.wrk.rps, 1),
        "plain_p99_ms": round(plain.wrk.p99_ms, 3),
        "rps_while_profiled": round(sample.wrk.rps, 1),
        "errors": sample.wrk.errors,
        "by_package": {k: round(v, 4) for k, v in found.by_package.items() if v >= 0.005},
        "top_own": [[name, round(share, 4)] for share, name in found.own],
        "top_gateway_inclusive": [[name, round(share, 4)] for share, name in found.inclusive],
    }


# --- report -------------------------------------------------------------------------------


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """A readable table of the medians."""
    head = (
        f"{'run':<18} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'gw ms/req':>10} {'up ms/req':>10} {'redis ms/req':>12} {'gw cores':>9} "
        f"{'wrk cores':>9} {'other cores':>11} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for label, s in rows:
        cpu, busy = s["cpu_ms_per_req"], s["busy_cores"]

        def ms(p: str, cpu: dict[str, float] = cpu) -> str:
            return f"{cpu[p]:.3f}" if p in cpu else "-"

        gw_busy = f"{busy['gateway']:.2f}" if "gateway" in busy else "-"
        lines.append(
            f"{label:<18} {s['rps']:>9,.0f} {s['p50_ms']:>8.3f} {s['p90_ms']:>8.3f} "
            f"{s['p99_ms']:>8.3f} {ms('gateway'):>10} {ms('upstream'):>10} {ms('redis'):>12} "
            f"{gw_busy:>9} {s['wrk_cores']:>9.2f} {s['other_cores']:>11.2f} {s['errors']:>6}"
        )
    return "\n".join(lines)


def _lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind through the finally blocks, which stop every process started.
    raise SystemExit(128 + signum)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, verify it answers, run the rounds; return the figures."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk not installed: run `make bench-service` (installs it)")
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="inferops-bench-") as name:
            tmp = Path(name)
            return _bench(args, procs, tmp)
    finally:
        procs.stop_all()


def _bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict[str, Any]:
    backend: str = args.backend
    redis, redis_port = start_redis(procs, tmp)
    upstream, upstream_port = start_upstream(procs, tmp)
    audit = tmp / "audit.log"

    def config(cache: bool, prefix: str, audit_path: Path) -> dict[str, Any]:
        return gateway_config(backend, upstream_port, redis_port, audit_path, cache, prefix)

    gateway = start_gateway(procs, tmp, "gateway", config(False, "bench:", audit))
    cached = start_gateway(procs, tmp, "gateway-cache", config(True, "bench-cache:", tmp / "a2"))
    status, _, body = post_chat(gateway.port)
    check_completion("gateway", status, body, backend)
    status, _, body = post_chat(upstream_port)
    check_completion("upstream", status, body, "openai")
    hit = check_cache_hit(cached, backend)
    print(f"checked: gateway answers 200 chat.completion ({backend} backend); cache says {hit}")

    script = tmp / "post.lua"
    script.write_text(wrk_script(BODY, HEADERS), encoding="utf-8")
    direct_url = f"http://127.0.0.1:{upstream_port}{CHAT}"
    targets = {
        "gateway": (
            gateway.url,
            {"gateway": gateway.process.pid, "upstream": upstream.pid, "redis": redis.pid},
        ),
        "direct": (direct_url, {"upstream": upstream.pid}),
        "cache_hit": (
            cached.url,
            {"gateway": cached.process.pid, "upstream": upstream.pid, "redis": redis.pid},
        ),
    }
    ours = (gateway.process.pid, cached.process.pid, upstream.pid, redis.pid, os.getpid())
    errors = 0
    for url, _ in targets.values():
        errors += run_wrk(url, THROUGHPUT_C, args.warmup, script).errors

    plan = [
        ("gateway", THROUGHPUT_C),
        ("direct", THROUGHPUT_C),
        ("cache_hit", THROUGHPUT_C),
        ("gateway", LATENCY_C),
        ("direct", LATENCY_C),
    ]
    samples: list[Sample] = []
    for r in range(args.rounds):
        for kind, connections in plan if r % 2 == 0 else plan[::-1]:
            url, pids = targets[kind]
            sample = measure(kind, url, connections, args.seconds, script, pids, ours)
            samples.append(sample)
            errors += sample.wrk.errors
            print(
                f"round {r + 1}/{args.rounds} {kind:<9} c={connections:<2} "
                f"{sample.wrk.rps:>9,.0f} req/s  p50 {sample.wrk.p50_ms:.3f} ms  "
                f"p99 {sample.wrk.p99_ms:.3f} ms  errors {sample.wrk.errors}",
                flush=True,
            )

    gw32 = summarise(samples, "gateway", THROUGHPUT_C)
    d32 = summarise(samples, "direct", THROUGHPUT_C)
    c32 = summarise(samples, "cache_hit", THROUGHPUT_C)
    gw1 = summarise(samples, "gateway", LATENCY_C)
    d1 = summarise(samples, "direct", LATENCY_C)
    print()
    print(
        table(
            [
                (f"gateway c={THROUGHPUT_C}", gw32),
                (f"direct c={THROUGHPUT_C}", d32),
                (f"cache hit c={THROUGHPUT_C}", c32),
                (f"gateway c={LATENCY_C}", gw1),
                (f"direct c={LATENCY_C}", d1),
            ]
        )
    )
    print(
        f"medians of {args.rounds} rounds of {args.seconds} s; ms/req is CPU time "
        "(utime+stime) per completed request; 'cores' is CPU time / wall time; 'other cores':\n"
        "the machine's busy time not spent by this benchmark's processes (other load, steal)"
    )
    other = _median([s.other_cores for s in samples])
    if other > OTHER_LOAD_WARNING:
        print(
            f"note: other work kept {other:.2f} cores busy during the median run on this "
            f"{os.cpu_count()}-core machine: throughput is lower than on an idle one; "
            "CPU per request is the steadier figure"
        )

    profile = None
    if args.profile:
        prof_config = config(False, "bench-profile:", tmp / "a3")
        profile = run_profile(procs, tmp, prof_config, args, script, backend)
        errors += profile["errors"]

    def r3(x: float) -> float:
        return round(x, 3)

    figures: dict[str, Any] = {
        "gateway_rps": round(gw32["rps"], 1),
        "direct_rps": round(d32["rps"], 1),
        "gateway_to_direct_rps_ratio": round(gw32["rps"] / d32["rps"], 4) if d32["rps"] else None,
        "gateway_cpu_ms_per_req": r3(gw32["cpu_ms_per_req"]["gateway"]),
        "direct_cpu_ms_per_req": r3(d32["cpu_ms_per_req"]["upstream"]),
        "gateway_cpu_ms_per_req_c1": r3(gw1["cpu_ms_per_req"]["gateway"]),
        "gateway_busy_cores_c32": round(gw32["busy_cores"]["gateway"], 2),
        "upstream_cpu_ms_per_req_via_gateway": r3(gw32["cpu_ms_per_req"]["upstream"]),
        "redis_cpu_ms_per_req_via_gateway": r3(gw32["cpu_ms_per_req"]["redis"]),
        "gateway_p50_ms_c1": r3(gw1["p50_ms"]),
        "gateway_p99_ms_c1": r3(gw1["p99_ms"]),
        "direct_p50_ms_c1": r3(d1["p50_ms"]),
        "direct_p99_ms_c1": r3(d1["p99_ms"]),
        "gateway_p50_ms_c32": r3(gw32["p50_ms"]),
        "gateway_p99_ms_c32": r3(gw32["p99_ms"]),
        "direct_p50_ms_c32": r3(d32["p50_ms"]),
        "direct_p99_ms_c32": r3(d32["p99_ms"]),
        "added_p50_ms_c1": r3(gw1["p50_ms"] - d1["p50_ms"]),
        "added_p99_ms_c1": r3(gw1["p99_ms"] - d1["p99_ms"]),
        "gateway_rps_c1": round(gw1["rps"], 1),
        "direct_rps_c1": round(d1["rps"], 1),
        "cache_hit_rps": round(c32["rps"], 1),
        "cache_hit_cpu_ms_per_req": r3(c32["cpu_ms_per_req"]["gateway"]),
        "cache_hit_p50_ms_c32": r3(c32["p50_ms"]),
        "cache_hit_p99_ms_c32": r3(c32["p99_ms"]),
        "errors": errors,
        "rps_rounds": {
            "gateway_c32": gw32["rps_rounds"],
            "direct_c32": d32["rps_rounds"],
            "cache_hit_c32": c32["rps_rounds"],
            "gateway_c1": gw1["rps_rounds"],
            "direct_c1": d1["rps_rounds"],
        },
        # One audit record per answered request: proof the audit log was really written.
        "audit_records": _lines(audit) if audit.exists() else 0,
        "gateway_requests": gw32["requests"] + gw1["requests"],
        "config": {
            "backend": backend,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "connections": [THROUGHPUT_C, LATENCY_C],
            "load": "wrk -t1 keep-alive",
            "cpus": os.cpu_count(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "other_load_cores_median": round(other, 2),
        },
    }
    if profile is not None:
        figures["profile"] = profile
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--backend",
        choices=("openai", "simulator"),
        default="openai",
        help="gateway backend (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of runs (default: 3)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per run (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more gateway run under cProfile; print the top costs",
    )
    parser.add_argument("--profile-top", type=int, default=20, help="functions to list")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1 or args.warmup < 1:
        parser.error("--rounds, --seconds and --warmup must be at least 1")
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.perf_counter()
    try:
        figures = bench(args)
    except BenchError as exc:
        print(f"bench.service: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench.service: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    figures["config"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    if figures["errors"]:
        print(
            f"WARNING: {figures['errors']} failed requests (non-2xx or socket errors): "
            "the figures are not valid",
            file=sys.stderr,
        )
    print(json.dumps(figures, allow_nan=False))
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
