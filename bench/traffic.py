"""Simulated LLM request streams: what a canary and its baseline serve, request by request.

The model (per request, all draws independent across requests):

- input tokens: log-normal, median 400, sigma 0.8, 16 to 8,192; the client
  records its prompt's size in characters (about 4 a token) before sending;
- output tokens: log-normal, median 180, sigma 0.7, 1 to 2,048;
- time to first token: prefill ``0.05 s + 0.15 ms x input tokens`` times a
  log-normal(0, 0.3) batching factor, plus a queueing delay (exponential,
  mean 0.4 s) for 3% of requests;
- time per output token: 25 ms times log-normal(0, 0.2), and 1.5 to 4 times
  that for 1% of requests (preemption, KV-cache swapping);
- latency: TTFT + (output tokens - 1) x TPOT + 5 ms of network: heavy-tailed
  and growing with the answer's length;
- errors: 1% of requests fail fast (0.05 to 2 s, no tokens), on every version;
- cost: $0.50 per 1M input and $1.50 per 1M output tokens, recorded per request
  as the load generator does.

A regression multiplies TTFT and TPOT (latency), TTFT only, the output tokens
or the prompt's tokens, or adds to the error rate. ``draw`` spreads requests
evenly over a stretch for many tracks at once (the bare judge's benchmark);
``draw_poisson`` takes arrival times (Poisson, from the release simulation)
and gives one track's ``SampleSet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inferops.analysis.samples import SampleSet

Array = npt.NDArray[np.float64]

PRICES = {"usd_per_1m_input_tokens": 0.5, "usd_per_1m_output_tokens": 1.5}
BASE_ERROR_RATE = 0.01


@dataclass(frozen=True)
class Scenario:
    """A change between baseline and canary."""

    name: str
    latency: float = 1.0
    ttft: float = 1.0
    tokens: float = 1.0
    inputs: float = 1.0
    errors: float = 0.0

    @property
    def regression(self) -> bool:
        """Whether the canary is worse than the baseline."""
        return self != Scenario(self.name)


SCENARIOS = (
    Scenario("A/A"),
    Scenario("latency +10%", latency=1.10),
    Scenario("TTFT +10%", ttft=1.10),
    Scenario("errors +2pt", errors=0.02),
    Scenario("errors +0.5pt", errors=0.005),
    Scenario("tokens +20%", tokens=1.20),
    Scenario("prompt +20%", inputs=1.20),
)
BASELINE = Scenario("baseline")


@dataclass(frozen=True)
class Block:
    """Requests of many simulated tracks over one stretch of time: arrays of (tracks, requests)."""

    ts: Array
    latency_s: Array
    ttft_s: Array
    ok: npt.NDArray[np.bool_]
    output_tokens: Array
    input_tokens: Array


def _requests(
    rng: np.random.Generator, shape: tuple[int, ...], change: Scenario
) -> dict[str, Array]:
    """The per-request model, for requests of the given shape."""
    asked = rng.lognormal(np.log(400), 0.8, shape)
    # The client's own measure of its prompt (about 4 characters a token): a regression in
    # the prompt the service builds (a longer template) changes the tokens, not this.
    chars = np.round(asked * 4 * rng.lognormal(0.0, 0.1, shape))
    inputs = np.clip(np.round(asked * change.inputs), 16, 8192)
    outputs = np.clip(np.round(rng.lognormal(np.log(180), 0.7, shape) * change.tokens), 1, 2048)
    queued = rng.random(shape) < 0.03
    ttft = (0.05 + 0.15e-3 * inputs) * rng.lognormal(0.0, 0.3, shape)
    ttft = ttft + np.where(queued, rng.exponential(0.4, shape), 0.0)
    ttft = ttft * change.latency * change.ttft
    stalled = rng.random(shape) < 0.01
    tpot = (
        0.025
        * rng.lognormal(0.0, 0.2, shape)
        * np.where(stalled, rng.uniform(1.5, 4.0, shape), 1.0)
    )
    tpot = tpot * change.latency
    latency = ttft + (outputs - 1) * tpot + 0.005
    failed = rng.random(shape) < BASE_ERROR_RATE + change.errors
    outputs = np.where(failed, 0.0, outputs)
    cost = (
        inputs * PRICES["usd_per_1m_input_tokens"] + outputs * PRICES["usd_per_1m_output_tokens"]
    ) / 1e6
    return {
        "latency_s": np.where(failed, rng.uniform(0.05, 2.0, shape), latency),
        "ttft_s": np.where(failed, np.nan, ttft),
        "ok": ~failed,
        "output_tokens": outputs,
        "input_tokens": inputs,
        "cost_usd": cost,
        "prompt_chars": chars,
    }


def draw(
    rng: np.random.Generator,
    tracks: int,
    requests: int,
    start_s: float,
    span_s: float,
    change: Scenario,
) -> Block:
    """``requests`` requests per track arriving evenly over ``[start_s, start_s + span_s)``."""
    shape = (tracks, requests)
    ts = np.broadcast_to(start_s + (np.arange(requests) + 0.5) * span_s / requests, shape)
    r = _requests(rng, shape, change)
    return Block(
        ts=np.array(ts),
        latency_s=r["latency_s"],
        ttft_s=r["ttft_s"],
        ok=r["ok"].astype(np.bool_),
        output_tokens=r["output_tokens"],
        input_tokens=r["input_tokens"],
    )


def draw_poisson(rng: np.random.Generator, times: Array, change: Scenario, track: str) -> SampleSet:
    """One track's requests arriving at ``times``."""
    r = _requests(rng, (len(times),), change)
    return SampleSet.from_columns(track, ts=times, **r)


def minute_aggregates(block: Block) -> dict[str, Array]:
    """Per-track figures of one minute, as a metrics backend would report them."""
    latency = np.where(block.ok, block.latency_s, np.nan)
    return {
        "requests": np.full(block.ok.shape[0], float(block.ok.shape[1])),
        "errors": (~block.ok).sum(axis=1).astype(np.float64),
        "latency_mean_s": np.nanmean(latency, axis=1),
        "latency_p99_s": np.nanquantile(latency, 0.99, axis=1),
    }
