"""Load for the inference service: OpenAI-compatible chat completions.

Contract (``inferops.loadtest.run_load`` relies on it):

- Each simulated user posts ``/v1/chat/completions`` with a prompt from a small
  pool; a share of the requests stream (SSE) and measure the time to first
  token as the time to the first ``data:`` event carrying generated text.
- Every request becomes one sample: ``ts`` (unix start time), ``latency_s``
  (until the whole answer was read), ``ttft_s`` (streaming only, else null),
  ``status`` (0 when no HTTP answer came), ``track`` and ``version`` (from the
  ``x-inferops-track``/``x-inferops-version`` headers), ``input_tokens`` and
  ``output_tokens`` (``usage.prompt_tokens``/``completion_tokens`` of the answer;
  a stream asks for ``stream_options.include_usage`` and reads the usage chunk
  the service sends before ``[DONE]``; null when the answer carried none),
  ``cost_usd`` (the request's price from ``INFEROPS_LOAD_PRICES``, null when no
  price table is set), ``prompt_chars`` (the characters of the messages sent:
  the request's size before any version saw it, which the judge adjusts TTFT
  for), ``ok``, plus ``stream`` and ``error`` (why it was not ok).
  A request is priced as ``CostModel`` prices a sample: ``usd_per_request``
  plus its known tokens at their per-1M prices, so a failed request without
  usage costs ``usd_per_request`` and nothing more.
  Samples are kept in memory and written as JSON lines to
  ``INFEROPS_SAMPLES_FILE`` when locust quits (in batches on long runs).
- HTTP errors from the service are data: they count as failures in the
  samples and in locust's statistics, but the exit code stays 0. The exit code
  is 1 only when the load generator failed: the locustfile raised, nothing was
  sent, or no request got any HTTP answer.

Configuration (environment variables):

- ``INFEROPS_LOAD_STAGES``: JSON list of ``{"duration_s", "users",
  "spawn_rate"}`` (and ``rate_rps``); when set, a load shape runs the stages in
  order and stops after the last. Without it, ``-u``/``-r``/``-t`` drive the
  run as usual. Stages with ``rate_rps`` are open-loop: requests arrive as a
  Poisson process at that rate whatever the service answers (a closed loop of
  users waits for each answer, which hides queueing), ``users`` of them at most
  in flight. An arrival that finds every user busy waits for one (its wait is
  the sample's ``queued_s``); more than ``MAX_BACKLOG`` waiting are dropped and
  counted, so a generator that cannot keep up says so.
- ``INFEROPS_SAMPLES_FILE``: where the samples go (none are written if unset).
- ``INFEROPS_LOAD_MODEL`` (default ``sim-llama-3-8b``),
  ``INFEROPS_LOAD_MAX_TOKENS`` (default 128), ``INFEROPS_LOAD_STREAM_SHARE``
  (0..1, default 0.5), ``INFEROPS_LOAD_THINK_S`` (longest pause between a
  user's requests, default 0.1), ``INFEROPS_LOAD_TIMEOUT_S`` (per request,
  default 120), ``INFEROPS_LOAD_API_KEY`` (sent as a bearer token if set).
- ``INFEROPS_LOAD_PRICES``: the price table behind ``cost_usd``, a JSON object
  with any of ``usd_per_1m_input_tokens``, ``usd_per_1m_output_tokens`` and
  ``usd_per_request`` (non-negative numbers, missing ones 0), e.g.
  ``{"usd_per_1m_input_tokens": 0.5, "usd_per_1m_output_tokens": 1.5}``.
- ``INFEROPS_PROGRESS_FILE``: where to write, every ``PROGRESS_EVERY_S``, one JSON
  object on how the run goes: ``elapsed_s``, ``users``, ``requests``, ``failures``,
  ``rps`` and ``ttft_p95_s`` over the last interval (null without streams).
- ``INFEROPS_LOAD_PARENT_PID``: the process that owns this load (``run_load``
  sets it). Once that process is gone (killed, say), the load stops within a
  second, its samples written: no load outlives the release that started it.

A variable holding a value the load generator cannot use raises ``ConfigError``
naming it, so locust exits 1 before sending anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

import gevent
import gevent.queue
from geventhttpclient.useragent import ConnectionError as ClientConnectionError
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment

ROUTE = "/v1/chat/completions"
PROGRESS_EVERY_S = 2.0
MAX_BACKLOG = 10_000
"""Open-loop arrivals waiting for a free user before new ones are dropped (and counted)."""
FLUSH_EVERY = 20_000
"""Samples held in memory before a batch is appended to the samples file."""

PROMPTS = (
    "Summarize the main causes of the 2008 financial crisis in three sentences.",
    "Write a Python function that checks whether a string is a palindrome, with a docstring.",
    "Explain the difference between a process and a thread to a new engineer.",
    "Draft a polite email asking a colleague to review my pull request by Friday.",
    "What are the trade-offs between PostgreSQL and SQLite for a small web app?",
    "Translate into French: 'The meeting has been moved to Thursday afternoon.'",
    "Give me a packing list for a three-day hiking trip in autumn.",
    "Explain what a p99 latency is and why it matters more than the average.",
    "Suggest five names for a coffee shop that also sells used books.",
    "Describe how a canary release reduces the risk of a bad deployment.",
    "Rewrite this sentence to be more concise: 'At this point in time we are unable to proceed.'",
    "List the steps to rotate an API key without downtime.",
)

log = logging.getLogger("inferops.loadtest")


class ConfigError(ValueError):
    """An environment variable holds a value the load generator cannot use."""


@dataclass(frozen=True)
class Stage:
    """One step of the load: hold ``users`` for ``duration_s``, changing at ``spawn_rate``/s."""

    duration_s: float
    users: int
    spawn_rate: float
    rate_rps: float | None = None


@dataclass(frozen=True)
class Prices:
    """What a request costs: the fields of ``CostModel`` in ``inferops.analysis.spec``."""

    usd_per_1m_input_tokens: float = 0.0
    usd_per_1m_output_tokens: float = 0.0
    usd_per_request: float = 0.0

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        """The price of one request in USD; a token count not known counts as none."""
        return (
            self.usd_per_request
            + (input_tokens or 0) * self.usd_per_1m_input_tokens / 1e6
            + (output_tokens or 0) * self.usd_per_1m_output_tokens / 1e6
        )


@dataclass(frozen=True)
class Config:
    """What the environment asked this load generator to do."""

    model: str
    max_tokens: int
    stream_share: float
    think_s: float
    timeout_s: float
    api_key: str | None
    samples_file: Path | None
    stages: tuple[Stage, ...]
    prices: Prices | None
    parent_pid: int | None
    progress_file: Path | None


def _number(name: str, default: float, low: float, high: float = float("inf")) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} must lie between {low} and {high}")
    return value


def _stages(raw: str | None) -> tuple[Stage, ...]:
    if not raw:
        return ()
    try:
        stages = tuple(
            Stage(
                float(s["duration_s"]),
                int(s["users"]),
                float(s["spawn_rate"]),
                None if s.get("rate_rps") is None else float(s["rate_rps"]),
            )
            for s in json.loads(raw)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"INFEROPS_LOAD_STAGES must be a JSON list of "
            f'{{"duration_s", "users", "spawn_rate"}} objects: {exc}'
        ) from None
    if len({s.rate_rps is None for s in stages}) > 1:
        raise ConfigError("INFEROPS_LOAD_STAGES: give rate_rps on every stage or on none")
    if any(s.rate_rps is not None and not s.rate_rps > 0 for s in stages):
        raise ConfigError("INFEROPS_LOAD_STAGES: rate_rps must be above 0")
    return stages


_PRICE_FIELDS = ("usd_per_1m_input_tokens", "usd_per_1m_output_tokens", "usd_per_request")


def _price(name: str, value: Any) -> float:
    # bool is an int to Python, but `true` is no price; NaN and infinity are none either.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value >= 0:
        return float(value)
    raise ConfigError(f"INFEROPS_LOAD_PRICES: {name}={value!r} must be a non-negative number")


def _prices(raw: str | None) -> Prices | None:
    if not raw:
        return None
    expected = f"a JSON object with any of {', '.join(_PRICE_FIELDS)}"
    try:
        table = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"INFEROPS_LOAD_PRICES must be {expected}: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"INFEROPS_LOAD_PRICES must be {expected}, not {raw!r}")
    unknown = sorted(set(table) - set(_PRICE_FIELDS))
    if unknown:
        raise ConfigError(f"INFEROPS_LOAD_PRICES: unknown field(s) {unknown}; expected {expected}")
    return Prices(**{name: _price(name, value) for name, value in table.items()})


def load_config() -> Config:
    """Read the load generator's configuration from the environment."""
    samples_file = os.environ.get("INFEROPS_SAMPLES_FILE")
    return Config(
        model=os.environ.get("INFEROPS_LOAD_MODEL") or "sim-llama-3-8b",
        max_tokens=int(_number("INFEROPS_LOAD_MAX_TOKENS", 128, 1)),
        stream_share=_number("INFEROPS_LOAD_STREAM_SHARE", 0.5, 0.0, 1.0),
        think_s=_number("INFEROPS_LOAD_THINK_S", 0.1, 0.0),
        timeout_s=_number("INFEROPS_LOAD_TIMEOUT_S", 120.0, 0.1),
        api_key=os.environ.get("INFEROPS_LOAD_API_KEY") or None,
        samples_file=Path(samples_file) if samples_file else None,
        stages=_stages(os.environ.get("INFEROPS_LOAD_STAGES")),
        prices=_prices(os.environ.get("INFEROPS_LOAD_PRICES")),
        parent_pid=int(_number("INFEROPS_LOAD_PARENT_PID", 0, 1)) or None,
        progress_file=Path(progress)
        if (progress := os.environ.get("INFEROPS_PROGRESS_FILE"))
        else None,
    )


CONFIG = load_config()


class SampleRecorder:
    """Buffers one sample per request and appends them to the samples file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.buffer: list[dict[str, Any]] = []
        self.recorded = 0
        self.answered = 0
        self.failed = 0
        self.dropped = 0
        """Open-loop arrivals dropped because too many waited for a free user."""
        self.recent_ttfts: list[float] = []
        """TTFTs since the last progress report."""
        self._started_file = False

    def add(self, sample: dict[str, Any]) -> None:
        """Keep one request's sample."""
        self.buffer.append(sample)
        self.recorded += 1
        if sample["status"]:
            self.answered += 1
        if not sample["ok"]:
            self.failed += 1
        if sample.get("ttft_s") is not None:
            self.recent_ttfts.append(sample["ttft_s"])
        if len(self.buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Append the buffered samples to the file (the first write truncates it)."""
        if self.path is None:
            self.buffer.clear()
            return
        mode = "a" if self._started_file else "w"
        with self.path.open(mode, encoding="utf-8") as out:
            out.writelines(
                json.dumps(sample, separators=(",", ":")) + "\n" for sample in self.buffer
            )
        self._started_file = True
        self.buffer.clear()


RECORDER = SampleRecorder(CONFIG.samples_file)
OPEN_LOOP = any(stage.rate_rps is not None for stage in CONFIG.stages)
ARRIVALS: gevent.queue.Queue[float] = gevent.queue.Queue()
"""Open-loop arrival times (unix seconds) waiting for a user to send them."""


def _stage_at(elapsed: float) -> Stage | None:
    for stage in CONFIG.stages:
        if elapsed < stage.duration_s:
            return stage
        elapsed -= stage.duration_s
    return None


def _arrive() -> None:
    """Put Poisson arrivals at each stage's rate on ARRIVALS until the last stage ends."""
    started = time.monotonic()
    due = started
    while (stage := _stage_at(due - started)) is not None and stage.rate_rps:
        due += random.expovariate(stage.rate_rps)
        gevent.sleep(max(0.0, due - time.monotonic()))
        if ARRIVALS.qsize() >= MAX_BACKLOG:
            RECORDER.dropped += 1
        else:
            ARRIVALS.put(time.time())


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    return headers.get(name) if headers else None


def _tokens(usage: Any) -> tuple[int | None, int | None]:
    """(input, output) tokens of an OpenAI ``usage`` object; a count it lacks is None."""

    def count(name: str) -> int | None:
        value = usage.get(name) if isinstance(usage, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return count("prompt_tokens"), count("completion_tokens")


def _http_problem(response: Any) -> str:
    status = response.status_code
    if not status:
        return f"no answer: {getattr(response, 'error', None)!r}"
    return f"HTTP {status}"


class ChatUser(FastHttpUser):
    """A client of the chat completions API."""

    def wait_time(self) -> float:
        """A closed loop's think time; an open loop's users wait for arrivals instead."""
        return 0.0 if OPEN_LOOP else random.uniform(0.0, CONFIG.think_s)

    network_timeout = CONFIG.timeout_s
    connection_timeout = min(CONFIG.timeout_s, 10.0)
    default_headers = {"Authorization": f"Bearer {CONFIG.api_key}"} if CONFIG.api_key else None

    @task
    def chat(self) -> None:
        """Send one chat completion, streaming or not, and record its sample."""
        self.queued_s: float | None = None
        if OPEN_LOOP:
            arrived = ARRIVALS.get()
            self.queued_s = max(0.0, time.time() - arrived)
        body: dict[str, Any] = {
            "model": CONFIG.model,
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "max_tokens": CONFIG.max_tokens,
        }
        if random.random() < CONFIG.stream_share:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            self._streamed(body)
        else:
            self._completed(body)

    def _completed(self, body: dict[str, Any]) -> None:
        started, t0 = time.time(), time.perf_counter()
        with self.client.post(ROUTE, json=body, name="chat", catch_response=True) as response:
            latency = time.perf_counter() - t0
            tokens: tuple[int | None, int | None] = (None, None)
            problem: str | None = None
            if response.status_code == 200:
                try:
                    payload = json.loads(response.content or b"")
                    _ = payload["choices"][0]["message"]
                    tokens = _tokens(payload.get("usage"))
                except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                    problem = f"malformed completion: {exc!r}"
            else:
                problem = _http_problem(response)
            self._finish(response, started, latency, None, tokens, problem, body, stream=False)

    def _streamed(self, body: dict[str, Any]) -> None:
        started, t0 = time.time(), time.perf_counter()
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
        with self.client.post(
            ROUTE,
            json=body,
            name="chat (stream)",
            headers=headers,
            stream=True,
            catch_response=True,
        ) as response:
            ttft: float | None = None
            tokens: tuple[int | None, int | None] = (None, None)
            problem: str | None = None
            if response.status_code != 200:
                problem = _http_problem(response)
                _ = response.content  # read the error body so the connection can be reused
            else:
                done = False
                size = 0
                try:
                    # readline returns each SSE line as soon as it arrives, which a
                    # fixed-size read would not.
                    while line := response._response.readline(b"\n"):
                        size += len(line)
                        text = line.decode("utf-8", errors="replace").strip()
                        if not text.startswith("data:"):
                            continue
                        data = text[len("data:") :].strip()
                        if data == "[DONE]":
                            done = True
                            continue
                        chunk = json.loads(data)
                        if chunk.get("error"):
                            problem = f"error event: {chunk['error']}"
                        if ttft is None and any(
                            (choice.get("delta") or {}).get("content")
                            for choice in chunk.get("choices") or ()
                        ):
                            ttft = time.perf_counter() - t0
                        # With include_usage every chunk says "usage": null but the last
                        # before [DONE], which carries the whole request's counts.
                        if chunk.get("usage"):
                            tokens = _tokens(chunk["usage"])
                except (
                    OSError,
                    HTTPException,
                    ClientConnectionError,
                    gevent.Timeout,
                    ValueError,
                    AttributeError,
                    TypeError,
                ) as exc:
                    problem = f"stream broken: {exc!r}"
                if problem is None and not done:
                    problem = "stream ended before [DONE]"
                response.request_meta["response_length"] = size
            latency = time.perf_counter() - t0
            # Locust times streamed requests to the headers only; report the whole answer.
            response.request_meta["response_time"] = latency * 1000
            self._finish(response, started, latency, ttft, tokens, problem, body, stream=True)

    def _finish(
        self,
        response: Any,
        started: float,
        latency: float,
        ttft: float | None,
        tokens: tuple[int | None, int | None],
        problem: str | None,
        body: dict[str, Any],
        *,
        stream: bool,
    ) -> None:
        if problem is None:
            response.success()
        else:
            response.failure(problem)
        input_tokens, output_tokens = tokens
        cost = None if CONFIG.prices is None else CONFIG.prices.cost(input_tokens, output_tokens)
        RECORDER.add(
            {
                "ts": round(started, 6),
                "latency_s": round(latency, 6),
                "ttft_s": None if ttft is None else round(ttft, 6),
                "status": response.status_code,
                "track": _header(response, "x-inferops-track"),
                "version": _header(response, "x-inferops-version"),
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost_usd": cost,
                "prompt_chars": sum(len(m["content"]) for m in body["messages"]),
                "queued_s": None if self.queued_s is None else round(self.queued_s, 6),
                "ok": problem is None,
                "stream": stream,
                "error": problem,
            }
        )


if CONFIG.stages:

    class StagesShape(LoadTestShape):
        """Runs ``INFEROPS_LOAD_STAGES`` in order, then stops the test."""

        def tick(self) -> tuple[int, float] | None:
            elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
            for stage in CONFIG.stages:
                if elapsed < stage.duration_s:
                    return stage.users, stage.spawn_rate
                elapsed -= stage.duration_s
            return None


def _stop_when_orphaned(environment: Environment, parent_pid: int) -> None:
    """Quit once ``parent_pid`` is no longer this process' parent (it died)."""
    while os.getppid() == parent_pid:
        gevent.sleep(0.5)
    log.warning("the process that started this load (pid %d) is gone; stopping", parent_pid)
    if environment.runner is not None:
        environment.runner.quit()


def _report_progress(environment: Environment, path: Path) -> None:
    """Write how the run goes to ``path`` every ``PROGRESS_EVERY_S`` (replaced whole)."""
    started = last = time.monotonic()
    counted = 0
    while True:
        gevent.sleep(PROGRESS_EVERY_S)
        now = time.monotonic()
        ttfts = sorted(RECORDER.recent_ttfts)
        RECORDER.recent_ttfts = []
        report = {
            "elapsed_s": round(now - started, 1),
            "users": environment.runner.user_count if environment.runner else 0,
            "requests": RECORDER.recorded,
            "failures": RECORDER.failed,
            "rps": round((RECORDER.recorded - counted) / (now - last), 2),
            "ttft_p95_s": ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))] if ttfts else None,
            "dropped": RECORDER.dropped,
        }
        counted, last = RECORDER.recorded, now
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(report), encoding="utf-8")
        partial.replace(path)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    if CONFIG.parent_pid is not None:
        gevent.spawn(_stop_when_orphaned, environment, CONFIG.parent_pid)
    if CONFIG.progress_file is not None:
        gevent.spawn(_report_progress, environment, CONFIG.progress_file)


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    if OPEN_LOOP:
        gevent.spawn(_arrive)


def _generator_failure(environment: Environment) -> str | None:
    """Why the load generator itself failed, or None when its numbers can be used."""
    runner = environment.runner
    if runner is not None and runner.exceptions:
        first = next(iter(runner.exceptions.values()))
        return f"the locustfile raised {len(runner.exceptions)} kind(s) of error: {first['msg']}"
    if environment.stats.total.num_requests == 0:
        return "no request completed; make the run longer than one request or check the host"
    if RECORDER.answered == 0:
        return f"none of {RECORDER.recorded} requests got an HTTP answer from {environment.host}"
    return None


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    RECORDER.flush()
    if RECORDER.dropped:
        log.warning(
            "the load generator dropped %d arrivals: more than %d waited for a free user; "
            "give the stages more users",
            RECORDER.dropped,
            MAX_BACKLOG,
        )
    failure = _generator_failure(environment)
    if failure is not None:
        log.error("load generator failed: %s", failure)
    environment.process_exit_code = 0 if failure is None else 1
