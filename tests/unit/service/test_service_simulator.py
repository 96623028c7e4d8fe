"""The simulated model: token maths, batching-aware timing, queueing and fault injection."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from inferops_service.config import FaultSettings, SimulatorSettings
from inferops_service.simulator import (
    NATURAL_MIN_TOKENS,
    FaultInjector,
    Plan,
    Simulator,
    count_prompt_tokens,
    natural_length,
    plan_completion,
    prompt_fingerprint,
    render_text,
    slowdown,
    tokens_per_step,
)


def make(faults: FaultSettings | None = None, **simulator: float) -> Simulator:
    return Simulator(SimulatorSettings.model_validate(simulator), faults or FaultSettings())


def plan(tokens: int) -> Plan:
    return Plan(prompt_tokens=1, completion_tokens=tokens, finish_reason="length", text_offset=0)


async def timed_run(sim: Simulator, p: Plan) -> tuple[float, float, str]:
    """Return (time to first piece, total time, text) of one generation."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = None
    pieces = []
    async with aclosing(sim.generate(p, 0.025, 16)) as text:
        async for piece in text:
            if first is None:
                first = loop.time() - start
            pieces.append(piece)
    assert first is not None
    return first, loop.time() - start, "".join(pieces)


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100)])
def test_prompt_tokens_are_a_quarter_of_the_characters_rounded_up(chars: int, tokens: int) -> None:
    assert count_prompt_tokens(chars) == tokens


def test_batch_slowdown_grows_with_each_extra_sequence() -> None:
    assert slowdown(1, 0.04) == 1.0
    assert slowdown(0, 0.04) == 1.0
    assert slowdown(5, 0.04) == pytest.approx(1.16)
    assert slowdown(16, 0.0) == 1.0


def test_answer_is_cut_at_the_limit_or_ends_naturally() -> None:
    assert natural_length(0) == NATURAL_MIN_TOKENS
    cut = plan_completion(prompt_chars=10, fingerprint=0, limit=10, token_inflation=1.0)
    assert (cut.prompt_tokens, cut.completion_tokens, cut.finish_reason) == (3, 10, "length")
    natural = plan_completion(prompt_chars=10, fingerprint=0, limit=64, token_inflation=1.0)
    assert (natural.completion_tokens, natural.finish_reason) == (NATURAL_MIN_TOKENS, "stop")


def test_token_inflation_multiplies_the_output_and_rounds() -> None:
    inflated = plan_completion(prompt_chars=0, fingerprint=0, limit=10, token_inflation=1.55)
    assert inflated.completion_tokens == 16
    assert inflated.finish_reason == "length"


def test_same_prompt_gives_the_same_plan_and_text() -> None:
    fp = prompt_fingerprint("hello world")
    assert fp == prompt_fingerprint("hello world")
    a = plan_completion(11, fp, 200, 1.0)
    assert a == plan_completion(11, fp, 200, 1.0)
    assert render_text(a.text_offset, 0, 5) == render_text(a.text_offset, 0, 5)


def test_text_pieces_join_into_the_whole_answer() -> None:
    whole = render_text(7, 0, 40)
    pieces = render_text(7, 0, 1) + render_text(7, 1, 15) + render_text(7, 16, 24)
    assert pieces == whole
    assert not whole.startswith(" ")
    assert len(whole.split()) == 40


def test_tokens_per_step_follows_the_token_time() -> None:
    assert tokens_per_step(0.004, 0.025, 16) == 6
    assert tokens_per_step(0.05, 0.025, 16) == 1
    assert tokens_per_step(0.0001, 0.025, 16) == 16
    assert tokens_per_step(0.0, 0.025, 16) == 16


def test_timing_follows_ttft_and_tpot() -> None:
    sim = make(ttft_ms=30, tpot_ms=2)
    first, total, text = asyncio.run(timed_run(sim, plan(21)))
    assert 0.028 <= first < 0.25
    # First token at TTFT, then 20 more tokens at TPOT each.
    assert 0.028 + 20 * 0.002 <= total < 0.5
    assert len(text.split()) == 21


def test_extra_latency_is_added_before_the_first_token() -> None:
    sim = make(FaultSettings(extra_latency_ms=40), ttft_ms=10, tpot_ms=0)
    first, _, _ = asyncio.run(timed_run(sim, plan(1)))
    assert first >= 0.049


def test_concurrent_sequences_slow_each_other_down() -> None:
    sim = make(ttft_ms=0, tpot_ms=10, batch_slowdown=0.5)
    seen: list[tuple[int, float]] = []

    async def main() -> None:
        async def watch() -> None:
            await asyncio.sleep(0.005)
            seen.append((sim.active, sim.token_seconds()))

        await asyncio.gather(timed_run(sim, plan(20)), timed_run(sim, plan(20)), watch())

    asyncio.run(main())
    assert [active for active, _ in seen] == [2]
    assert seen[0][1] == pytest.approx(0.015)
    assert sim.active == 0
    assert sim.token_seconds() == pytest.approx(0.010)


def test_requests_beyond_max_batch_queue_and_wait_counts_toward_ttft() -> None:
    sim = make(ttft_ms=30, tpot_ms=0, max_batch=1, batch_slowdown=0)
    queued: list[int] = []

    async def main() -> list[tuple[float, float, str]]:
        async def watch() -> None:
            await asyncio.sleep(0.01)
            queued.append(sim.queued)

        runs = await asyncio.gather(timed_run(sim, plan(1)), timed_run(sim, plan(1)), watch())
        return [r for r in runs if r is not None]

    runs = asyncio.run(main())
    firsts = sorted(first for first, _, _ in runs)
    assert queued == [1]
    # The second waits for the first to finish before its own 30 ms prefill.
    assert firsts[0] >= 0.028
    assert firsts[1] >= firsts[0] + 0.028


def test_closing_early_releases_the_slot() -> None:
    sim = make(ttft_ms=0, tpot_ms=1, max_batch=1)

    async def main() -> None:
        async with aclosing(sim.generate(plan(100), 0.001, 1)) as text:
            async for _ in text:
                assert sim.active == 1
                break
        assert sim.active == 0
        await asyncio.wait_for(timed_run(sim, plan(2)), timeout=1)

    asyncio.run(main())


def test_error_injection_is_reproducible_with_a_seed() -> None:
    a = FaultInjector(0.3, seed=42)
    b = FaultInjector(0.3, seed=42)
    draws_a = [a.should_fail() for _ in range(2000)]
    draws_b = [b.should_fail() for _ in range(2000)]
    assert draws_a == draws_b
    assert 0.25 < sum(draws_a) / len(draws_a) < 0.35


def test_error_rate_extremes() -> None:
    never = FaultInjector(0.0, seed=None)
    always = FaultInjector(1.0, seed=None)
    assert not any(never.should_fail() for _ in range(100))
    assert all(always.should_fail() for _ in range(100))
