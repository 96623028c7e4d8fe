"""The simulated GPU model as a backend: answers at a real model's pace, with faults."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from inferops_service.backends import BackendError, Usage
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.protocol import ChatRequest
from inferops_service.simulator import Plan, Simulator, prompt_fingerprint

# Streamed text goes out about every 25 ms (at most 16 tokens an event): smooth for a
# client, yet few enough events that serialising them stays cheap.
STREAM_STEP_SECONDS = 0.025
STREAM_MAX_STEP_TOKENS = 16
# Unstreamed answers only need the batch occupancy re-read now and then.
BUFFERED_STEP_SECONDS = 0.1
BUFFERED_MAX_STEP_TOKENS = 1 << 30


class SimulatedReply:
    """One planned answer; its usage is known from the plan, reported once the text ends."""

    def __init__(self, simulator: Simulator, plan: Plan, stream: bool) -> None:
        self._sim = simulator
        self._plan = plan
        self._stream = stream
        self.usage: Usage | None = None

    async def text(self) -> AsyncGenerator[str, None]:
        """Yield the answer at the simulated model's pace."""
        step, most = (
            (STREAM_STEP_SECONDS, STREAM_MAX_STEP_TOKENS)
            if self._stream
            else (BUFFERED_STEP_SECONDS, BUFFERED_MAX_STEP_TOKENS)
        )
        generation = self._sim.generate(self._plan, step, most)
        try:
            async for piece in generation:
                yield piece
        finally:
            await generation.aclose()
        plan = self._plan
        self.usage = Usage(plan.prompt_tokens, plan.completion_tokens, plan.finish_reason)


class SimulatorBackend:
    """The backend of demos and load tests: no model, only a batching-aware clock."""

    def __init__(self, settings: ServiceSettings, metrics: ServiceMetrics) -> None:
        self.simulator = sim = Simulator(settings.simulator, settings.faults)
        metrics.track_batch(lambda: sim.active, lambda: sim.queued)

    async def start(self) -> None:
        """Nothing to open."""

    async def stop(self) -> None:
        """Nothing to close."""

    def ready(self) -> bool:
        """Always ready."""
        return True

    async def open(self, chat: ChatRequest, texts: tuple[str, ...], stream: bool) -> SimulatedReply:
        """Plan the answer, or fail the request when a fault is injected."""
        if self.simulator.should_fail():
            raise BackendError(
                500, "The server had an error while processing your request (simulated fault)."
            )
        prompt = "\n".join(texts)
        plan = self.simulator.plan(len(prompt), prompt_fingerprint(prompt), chat.max_tokens)
        return SimulatedReply(self.simulator, plan, stream)
