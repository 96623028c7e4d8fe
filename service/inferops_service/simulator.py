"""The simulated GPU model: token counts, batching-aware timing and injected faults.

Contract:

- Prompt tokens are approximated as ``ceil(characters of message content / 4)``, the usual
  rule of thumb for English text with a BPE tokenizer.
- Each prompt has a stable "natural" answer length of 32 to 543 tokens (from a CRC-32 of its
  text). A request gets ``min(limit, natural)`` tokens, where ``limit`` is its ``max_tokens``
  or ``simulator.default_max_tokens``, then multiplied by ``faults.token_inflation`` and
  rounded. ``finish_reason`` is ``"length"`` when the limit cut the answer short.
- A request holds one of ``max_batch`` slots from prefill to its last token; later requests
  queue, and their wait counts toward their time to first token.
- With ``active`` sequences in the batch, prefill and every token take
  ``1 + batch_slowdown * (active - 1)`` times their batch-1 time. The factor is re-read at
  every decode step, so a request slows down while the batch fills and speeds up as it drains.
- ``faults.extra_latency_ms`` is waited before queueing (it holds no slot); injected errors
  are drawn from a ``random.Random`` seeded with ``faults.seed``, one draw per request.
- The text is a fixed word cycle starting at a prompt-dependent offset, so the same prompt
  always gets the same answer.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from inferops_service.config import FaultSettings, SimulatorSettings

FinishReason = Literal["stop", "length"]

CHARS_PER_TOKEN = 4
NATURAL_MIN_TOKENS = 32
NATURAL_SPAN_TOKENS = 512

_ANSWER = (
    "This is a simulated answer from the inferops model. It has no weights and no GPU, "
    "only a clock: each word arrives when a real accelerator would have produced it, "
    "so latency, throughput and cost behave like a served model under load. "
    "The words repeat in a fixed order so that every run of the same prompt is identical."
)
# One string per word, with the leading space a BPE tokenizer would attach.
_TOKENS = tuple(f" {word}" for word in _ANSWER.split())


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request will produce: its token counts and where its text starts."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    text_offset: int


def count_prompt_tokens(chars: int) -> int:
    """Approximate the prompt tokens of ``chars`` characters of message content."""
    return -(-chars // CHARS_PER_TOKEN)


def prompt_fingerprint(text: str) -> int:
    """Return a stable 32-bit fingerprint of the prompt text."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def natural_length(fingerprint: int) -> int:
    """Return how many tokens the model would say, unprompted to stop, for this prompt."""
    return NATURAL_MIN_TOKENS + fingerprint % NATURAL_SPAN_TOKENS


def plan_completion(
    prompt_chars: int, fingerprint: int, limit: int, token_inflation: float
) -> Plan:
    """Decide the token counts and finish reason of a request limited to ``limit`` tokens."""
    natural = natural_length(fingerprint)
    finish: FinishReason = "length" if natural > limit else "stop"
    tokens = max(1, round(min(limit, natural) * token_inflation))
    return Plan(count_prompt_tokens(prompt_chars), tokens, finish, fingerprint % len(_TOKENS))


def slowdown(active: int, batch_slowdown: float) -> float:
    """Return how many times slower a step is with ``active`` sequences in the batch."""
    return 1.0 + batch_slowdown * max(0, active - 1)


def tokens_per_step(seconds_per_token: float, step_seconds: float, max_tokens: int) -> int:
    """Return how many tokens to emit together so a step lasts about ``step_seconds``."""
    if seconds_per_token <= 0:
        return max_tokens
    return max(1, min(max_tokens, int(step_seconds / seconds_per_token)))


def render_text(offset: int, start: int, count: int) -> str:
    """Return the text of tokens ``start`` to ``start + count`` of an answer at ``offset``."""
    n = len(_TOKENS)
    text = "".join(_TOKENS[(offset + i) % n] for i in range(start, start + count))
    # The answer itself does not begin with a space.
    return text[1:] if start == 0 else text


class FaultInjector:
    """Decides, one request at a time, whether to fail it; reproducible given a seed."""

    def __init__(self, error_rate: float, seed: int | None) -> None:
        self._rate = error_rate
        self._rng = random.Random(seed)

    def should_fail(self) -> bool:
        """Return True when this request is to be answered with an injected error."""
        if self._rate <= 0:
            return False
        return self._rate >= 1 or self._rng.random() < self._rate


class Simulator:
    """A model server with ``max_batch`` slots whose speed depends on how full it is."""

    def __init__(self, settings: SimulatorSettings, faults: FaultSettings) -> None:
        self._settings = settings
        self._faults = faults
        self._injector = FaultInjector(faults.error_rate, faults.seed)
        self._slots = asyncio.Semaphore(settings.max_batch)
        self._active = 0
        self._queued = 0

    @property
    def active(self) -> int:
        """Sequences being decoded now."""
        return self._active

    @property
    def queued(self) -> int:
        """Requests waiting for a free slot."""
        return self._queued

    def should_fail(self) -> bool:
        """Return True when this request is to be answered with an injected error."""
        return self._injector.should_fail()

    def plan(self, prompt_chars: int, fingerprint: int, max_tokens: int | None) -> Plan:
        """Plan a request with this prompt and optional ``max_tokens``."""
        limit = self._settings.default_max_tokens if max_tokens is None else max_tokens
        return plan_completion(prompt_chars, fingerprint, limit, self._faults.token_inflation)

    def prefill_seconds(self) -> float:
        """Time to the first token at the current batch occupancy."""
        s = self._settings
        return s.ttft_ms / 1000 * slowdown(self._active, s.batch_slowdown)

    def token_seconds(self) -> float:
        """Time per output token at the current batch occupancy."""
        s = self._settings
        return s.tpot_ms / 1000 * slowdown(self._active, s.batch_slowdown)

    async def generate(
        self, plan: Plan, step_seconds: float, max_step_tokens: int
    ) -> AsyncGenerator[str, None]:
        """Yield the answer's text at the model's pace: the first token, then steps of tokens.

        The slot is released when the iterator finishes or is closed, so callers that may stop
        early must close it (``contextlib.aclosing``).
        """
        if self._faults.extra_latency_ms > 0:
            await asyncio.sleep(self._faults.extra_latency_ms / 1000)
        self._queued += 1
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1
        self._active += 1
        try:
            loop = asyncio.get_running_loop()
            # Sleeping to absolute deadlines keeps timer overshoot from adding up over steps.
            deadline = loop.time() + self.prefill_seconds()
            await _sleep_until(loop, deadline)
            yield render_text(plan.text_offset, 0, 1)
            done = 1
            while done < plan.completion_tokens:
                per_token = self.token_seconds()
                count = tokens_per_step(per_token, step_seconds, max_step_tokens)
                count = min(count, plan.completion_tokens - done)
                deadline += count * per_token
                await _sleep_until(loop, deadline)
                yield render_text(plan.text_offset, done, count)
                done += count
        finally:
            self._active -= 1
            self._slots.release()


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
