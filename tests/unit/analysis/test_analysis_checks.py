"""One check's comparisons: TTFT within prompt-size bins, and no verdict on too few requests."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from bench.traffic import BASELINE, Scenario, draw_poisson
from inferops.analysis.checks import MIN_RELATIVE_N, evaluate, limits_for, relative_estimate
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import parse_spec
from inferops.analysis.verdict import Outcome

ROOT = Path(__file__).resolve().parents[3]
SPEC = parse_spec(yaml.safe_load((ROOT / "loadtests/checks/llm-canary.yaml").read_text()))
TTFT = next(c for c in SPEC.checks if c.metric == "ttft_s")
LIMITS = limits_for(SPEC)


def tracks(scenario: Scenario, canary: int, stable: int, seed: int) -> tuple[SampleSet, SampleSet]:
    rng = np.random.default_rng(seed)
    return (
        draw_poisson(rng, np.arange(canary, dtype=float), scenario, "canary"),
        draw_poisson(rng, np.arange(stable, dtype=float), BASELINE, "stable"),
    )


def unsized(s: SampleSet) -> SampleSet:
    return replace(s, prompt_chars=np.full(len(s), np.nan))


def test_ttft_within_prompt_size_bins_needs_far_less_evidence() -> None:
    canary, stable = tracks(Scenario("A/A"), 3000, 3000, seed=1)
    sized = relative_estimate(TTFT, canary, stable, None)
    plain = relative_estimate(TTFT, unsized(canary), unsized(stable), None)
    assert sized is not None and plain is not None
    # Prefill time follows the prompt: like sizes compared with like leave less spread.
    assert sized.variance < 0.6 * plain.variance
    assert abs(sized.effect) < 3 * np.sqrt(sized.variance)


def test_a_slower_canary_shows_its_whole_shift_after_the_adjustment() -> None:
    canary, stable = tracks(Scenario("slower", ttft=1.2), 3000, 3000, seed=2)
    sized = relative_estimate(TTFT, canary, stable, None)
    assert sized is not None
    assert abs(sized.effect - np.log(1.2)) < 3 * np.sqrt(sized.variance)


def test_a_longer_prompt_template_still_shows_in_ttft() -> None:
    # The service adds tokens to every prompt; the client's own sizes are unchanged, so
    # the longer prefill is a regression the adjustment must not explain away.
    canary, stable = tracks(Scenario("prompt +50%", inputs=1.5), 3000, 3000, seed=3)
    sized = relative_estimate(TTFT, canary, stable, None)
    assert sized is not None
    assert sized.effect > 5 * np.sqrt(sized.variance) > 0


def test_sizes_on_only_some_requests_leave_the_comparison_unadjusted() -> None:
    canary, stable = tracks(Scenario("A/A"), 500, 500, seed=4)
    chars = canary.prompt_chars.copy()
    chars[7] = np.nan
    partly = replace(canary, prompt_chars=chars)
    assert relative_estimate(TTFT, partly, stable, None) == relative_estimate(
        TTFT, unsized(canary), unsized(stable), None
    )


def test_a_relative_comparison_waits_for_enough_requests_a_side() -> None:
    slow = Scenario("twice as slow", ttft=2.0)
    few, many = tracks(slow, MIN_RELATIVE_N // 2, 9 * MIN_RELATIVE_N, seed=5)
    early = evaluate(TTFT, few, many, LIMITS)
    assert early.outcome is Outcome.PENDING
    assert f"not compared before {MIN_RELATIVE_N} requests a side" in early.detail
    enough, _ = tracks(slow, 2 * MIN_RELATIVE_N, 0, seed=6)
    assert evaluate(TTFT, enough, many, LIMITS).outcome is Outcome.FAIL
