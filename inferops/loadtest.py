"""Load profiles and the load test runner (Locust, run as a subprocess).

Contract:

- A ``LoadProfile`` is data (``loadtests/profiles/*.yaml``): a name and a list
  of stages ``{duration_s, users, spawn_rate}`` run in order. ``load_profile``
  validates a file strictly (unknown keys are errors).
- ``run_load`` runs ``loadtests/locustfile.py`` headless in a child Python
  process (Locust's gevent patching cannot share a process with the pipeline),
  driving the stages through ``INFEROPS_LOAD_STAGES``. ``duration_s`` fits the
  profile to a window: the last stage is held, or the stages are cut, so the
  run lasts exactly that long. The child inherits this process' environment
  plus ``env``; its logs and Locust's CSV statistics land in ``out_dir``.
- HTTP errors from the service are data in the result (``failures``), not
  errors. ``LoadTestError`` means the load generator itself failed or overran
  its wall-clock budget; its message ends with the tail of Locust's log.
  ``LoadStopped`` means ``watch`` named a reason to stop (the environment went
  down, say): the load was stopped early and its reason is the message.
- The load generator stops by itself once the process that ran ``run_load``
  is gone, and an ``owner`` hears its pid when it starts and when it exits:
  no load outlives the release that started it.
- ``LoadResult`` summarises the samples file (one JSON object per request, as
  the locustfile documents) and turns a track's samples into ``WindowStats``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferops.analysis.evidence import WindowStats
from inferops.platforms.supervisor import process_cpu_seconds

DEFAULT_LOCUSTFILE = Path(__file__).parent.parent / "loadtests" / "locustfile.py"
"""The locustfile of a source checkout; pass ``locustfile=`` where the package is installed."""

UNKNOWN_TRACK = "unknown"
"""The track of requests that got no ``x-inferops-track`` header (e.g. no answer at all)."""

_STOP_GRACE_S = 15.0
GENERATOR_BOUND = 0.85
"""Cores of CPU (of the one a Locust process can use) past which a run is generator-bound."""
_LOG_TAIL_LINES = 30


class LoadProfileError(ValueError):
    """A load profile file is missing, unreadable or invalid."""


class LoadTestError(RuntimeError):
    """The load generator failed (not the service under test)."""


class LoadStopped(LoadTestError):
    """The load was stopped early, for the reason ``watch`` gave (the message)."""


class LoadOwner(Protocol):
    """Who keeps track of the load generators a process started (a release's record)."""

    def add_load(self, pid: int) -> None:
        """A load generator started."""

    def drop_load(self, pid: int) -> None:
        """A load generator exited."""


class LoadStage(BaseModel):
    """Hold ``users`` simulated users for ``duration_s``, changing by ``spawn_rate`` per second.

    With ``rate_rps`` the stage is open-loop: requests arrive as a Poisson process at that
    rate whatever the service answers, and ``users`` is how many may be in flight.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float = Field(gt=0, allow_inf_nan=False)
    users: int = Field(ge=0)
    spawn_rate: float = Field(gt=0, allow_inf_nan=False)
    rate_rps: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)


class LoadProfile(BaseModel):
    """A load shape: stages run in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    stages: tuple[LoadStage, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _puts_load_on_the_service(self) -> LoadProfile:
        if not any(stage.users > 0 for stage in self.stages):
            raise ValueError("at least one stage must have users > 0")
        if len({stage.rate_rps is None for stage in self.stages}) > 1:
            raise ValueError(
                "give rate_rps on every stage (open-loop arrivals) or on none (closed-loop users)"
            )
        return self

    @property
    def open_loop(self) -> bool:
        """True when requests arrive at a rate (``rate_rps``) rather than from waiting users."""
        return self.stages[0].rate_rps is not None

    @property
    def duration_s(self) -> float:
        """How long the stages last together."""
        return sum(stage.duration_s for stage in self.stages)

    @property
    def peak_users(self) -> int:
        """The most users any stage holds."""
        return max(stage.users for stage in self.stages)

    def fitted(self, duration_s: float) -> LoadProfile:
        """This profile cut, or its last stage held, to last exactly ``duration_s``."""
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise ValueError(
                f"a load test must last a positive number of seconds, not {duration_s}"
            )
        stages: list[LoadStage] = []
        left = duration_s
        for stage in self.stages:
            if left <= 0:
                break
            stages.append(stage.model_copy(update={"duration_s": min(stage.duration_s, left)}))
            left -= stage.duration_s
        if left > 0:
            last = stages[-1]
            stages[-1] = last.model_copy(update={"duration_s": last.duration_s + left})
        if not any(stage.users > 0 for stage in stages):
            raise ValueError(
                f"profile {self.name!r} cut to {duration_s} s puts no load on the service; "
                "give it a longer duration"
            )
        return self.model_copy(update={"stages": tuple(stages)})


def load_profile(path: Path | str) -> LoadProfile:
    """Read and validate a load profile YAML file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoadProfileError(f"cannot read load profile {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise LoadProfileError(f"load profile {path} is not valid YAML: {exc}") from exc
    try:
        return LoadProfile.model_validate(raw)
    except ValidationError as exc:
        raise LoadProfileError(f"load profile {path} is invalid:\n{exc}") from exc


@dataclass(frozen=True)
class LoadResult:
    """What one load test did, read from its samples."""

    requests: int
    failures: int
    rps: float
    by_track: Mapping[str, int]
    samples_path: Path
    duration_s: float = 0.0
    out_dir: Path | None = field(default=None, compare=False)
    generator_cores: float | None = field(default=None, compare=False)
    """The CPU the load generator used, in cores on average (one process: at most 1)."""

    @property
    def generator_bound(self) -> bool:
        """Whether the generator ran out of CPU: then the rate it reached is its own
        limit, not the service's."""
        return self.generator_cores is not None and self.generator_cores >= GENERATOR_BOUND

    @property
    def failure_rate(self) -> float | None:
        """Share of requests that were not ok, or None without requests."""
        return self.failures / self.requests if self.requests else None

    def samples(self) -> list[dict[str, Any]]:
        """Every request's sample, in the order they finished."""
        return read_samples(self.samples_path)

    def window_stats(self, track: str) -> WindowStats:
        """The client-side view of one track over this run."""
        return stats_from_samples(self.samples(), track=track, window_s=self.duration_s)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines samples file."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def summarize(samples: Sequence[Mapping[str, Any]], samples_path: Path) -> LoadResult:
    """Count requests, failures, throughput and tracks in ``samples``."""
    if not samples:
        return LoadResult(0, 0, 0.0, {}, samples_path)
    start = min(s["ts"] for s in samples)
    end = max(s["ts"] + s["latency_s"] for s in samples)
    span = max(end - start, 0.0)
    tracks = Counter(s.get("track") or UNKNOWN_TRACK for s in samples)
    return LoadResult(
        requests=len(samples),
        failures=sum(1 for s in samples if not s["ok"]),
        rps=len(samples) / span if span > 0 else 0.0,
        by_track=dict(sorted(tracks.items())),
        samples_path=samples_path,
        duration_s=span,
    )


def stats_from_samples(
    samples: Sequence[Mapping[str, Any]], *, track: str, window_s: float
) -> WindowStats:
    """Aggregate one track's samples the way a metrics backend would."""
    mine = [s for s in samples if (s.get("track") or UNKNOWN_TRACK) == track]
    good = sorted(s["latency_s"] for s in mine if not 500 <= s["status"] <= 599)
    ttfts = sorted(s["ttft_s"] for s in mine if s.get("ttft_s") is not None)
    tokens = [s["output_tokens"] for s in mine if s.get("output_tokens") is not None]
    return WindowStats(
        track=track,
        window_s=window_s,
        requests=float(len(mine)),
        errors=float(sum(1 for s in mine if 500 <= s["status"] <= 599)),
        latency_p50_s=_quantile(good, 0.50),
        latency_p95_s=_quantile(good, 0.95),
        latency_p99_s=_quantile(good, 0.99),
        ttft_p95_s=_quantile(ttfts, 0.95),
        output_tokens=float(sum(tokens)) if tokens else None,
    )


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile of sorted values, or None without values."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_load(
    host: str,
    profile: LoadProfile,
    out_dir: Path,
    duration_s: float | None = None,
    env: Mapping[str, str] | None = None,
    on_progress: Callable[[str], None] | None = None,
    *,
    locustfile: Path = DEFAULT_LOCUSTFILE,
    startup_grace_s: float = 30.0,
    progress_every_s: float = 10.0,
    watch: Callable[[], str | None] | None = None,
    watch_every_s: float = 0.5,
    owner: LoadOwner | None = None,
) -> LoadResult:
    """Run ``profile`` against ``host`` with Locust in a subprocess and read its samples.

    ``watch`` is asked every ``watch_every_s`` while the load runs; a reason it returns
    stops the load and raises ``LoadStopped`` with it.
    """
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"host must be an http(s) URL such as http://127.0.0.1:8080, not {host!r}")
    if not locustfile.is_file():
        raise LoadTestError(
            f"locustfile not found at {locustfile}; "
            "pass locustfile= pointing at the project's loadtests/locustfile.py"
        )
    if duration_s is not None:
        profile = profile.fitted(duration_s)
    report = on_progress or (lambda line: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = out_dir / "samples.jsonl"
    samples_path.unlink(missing_ok=True)
    log_path = out_dir / "locust.log"
    stages = [stage.model_dump() for stage in profile.stages]
    child_env = {
        **os.environ,
        **(env or {}),
        "INFEROPS_SAMPLES_FILE": str(samples_path.resolve()),
        "INFEROPS_LOAD_STAGES": json.dumps(stages),
        "INFEROPS_LOAD_PARENT_PID": str(os.getpid()),
        "INFEROPS_PROGRESS_FILE": str((out_dir / "progress.json").resolve()),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(locustfile.resolve()),
        "--headless",
        "--host",
        host,
        "--csv",
        str((out_dir / "locust").resolve()),
        "--only-summary",
    ]
    budget_s = profile.duration_s + startup_grace_s
    report(
        f"load: {profile.name} against {host}: {len(profile.stages)} stage(s), "
        f"{profile.duration_s:.0f} s, up to {profile.peak_users} users"
    )
    started = time.monotonic()
    # cwd=out_dir keeps Locust from picking up a stray locust.conf or pyproject.toml.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=out_dir, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
    if owner is not None:
        owner.add_load(process.pid)
    cpu = _CpuOf(process.pid)
    try:
        returncode, stopped = _wait(
            process,
            started,
            budget_s,
            progress_every_s,
            profile,
            report,
            watch,
            watch_every_s,
            out_dir / "progress.json",
            cpu,
        )
    finally:
        _stop(process)
        if owner is not None:
            owner.drop_load(process.pid)
    elapsed = time.monotonic() - started
    if stopped is not None:
        report(f"load: stopped after {elapsed:.1f} s: {stopped}")
        raise LoadStopped(stopped)
    if returncode is None:
        raise LoadTestError(
            f"locust did not finish within {budget_s:.0f} s ({profile.duration_s:.0f} s of load "
            f"+ {startup_grace_s:.0f} s to start and stop) and was stopped; "
            f"see {log_path}\n{_tail(log_path)}"
        )
    if returncode != 0:
        raise LoadTestError(
            f"locust exited with status {returncode} after {elapsed:.1f} s; "
            f"see {log_path}\n{_tail(log_path)}"
        )
    if not samples_path.is_file():
        raise LoadTestError(
            f"locust finished but wrote no samples to {samples_path}; "
            f"check that {locustfile} records them\n{_tail(log_path)}"
        )
    result = replace(
        summarize(read_samples(samples_path), samples_path),
        out_dir=out_dir,
        generator_cores=cpu.cores(elapsed),
    )
    tracks = " ".join(f"{track}={count}" for track, count in result.by_track.items())
    report(
        f"load: done in {elapsed:.1f} s: {result.requests} requests, {result.failures} failed, "
        f"{result.rps:.1f} req/s; by track: {tracks or 'none'}"
    )
    if result.generator_bound:
        report(
            f"load: the generator used {result.generator_cores:.2f} of its one core: the rate "
            "reached may be its limit, not the service's"
        )
    return result


def _wait(
    process: subprocess.Popen[bytes],
    started: float,
    budget_s: float,
    progress_every_s: float,
    profile: LoadProfile,
    report: Callable[[str], None],
    watch: Callable[[], str | None] | None,
    watch_every_s: float,
    progress: Path,
    cpu: _CpuOf,
) -> tuple[int | None, str | None]:
    """Wait for locust, reporting progress: its exit code (None when it overran
    ``budget_s``), and the reason ``watch`` gave to stop it early (else None)."""
    # At least every second: the generator's CPU is read while it runs.
    poll_s = min(progress_every_s, watch_every_s if watch is not None else 1.0)
    next_report = started + progress_every_s
    while True:
        left = budget_s - (time.monotonic() - started)
        if left <= 0:
            return None, None
        try:
            return process.wait(timeout=min(poll_s, left)), None
        except subprocess.TimeoutExpired:
            pass
        cpu.sample()
        reason = watch() if watch is not None else None
        if reason is not None:
            return None, reason
        now = time.monotonic()
        if now >= next_report:
            next_report = now + progress_every_s
            report(_progress_line(min(now - started, profile.duration_s), profile, progress))


class _CpuOf:
    """The load generator's CPU seconds, sampled while it runs (it is reaped at exit)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seconds: float | None = None

    def sample(self) -> None:
        now = process_cpu_seconds(self.pid)
        if now is not None:
            self.seconds = now

    def cores(self, elapsed_s: float) -> float | None:
        if self.seconds is None or elapsed_s <= 0:
            return None
        return round(self.seconds / elapsed_s, 3)


def _progress_line(elapsed_s: float, profile: LoadProfile, path: Path) -> str:
    """One progress line: the time, and what the load generator last reported."""
    line = f"load: {elapsed_s:.0f}/{profile.duration_s:.0f} s"
    try:
        now = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return line
    ttft = now.get("ttft_p95_s")
    return (
        f"{line}: {now.get('users', 0)} users, {now.get('rps', 0):.1f} req/s, "
        f"p95 TTFT {'-' if ttft is None else f'{ttft * 1000:.0f} ms'}, "
        f"{now.get('failures', 0)} of {now.get('requests', 0)} requests failed"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Make sure locust has exited: ask it to stop (it writes its samples), then kill it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path) -> str:
    """The last lines of a log file, for error messages."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_LOG_TAIL_LINES:])
