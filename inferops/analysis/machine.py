"""The rollout's decisions as one pure state machine: samples and the clock in, answers out.

The rollout flow and the benchmark drive the same object, so what is measured
is what runs. Nothing here reads files, talks to a network or sleeps.

Interface::

    machine = RolloutMachine(spec, steps, budget_s=1800, started_at=t0, warmup_s=5)
    machine.step_live(now)                 # the step's commit is live
    machine.observe(canary, stable)        # requests of both tracks (SampleSet), any batch
    machine.observe_restarts(Restarts(canary=1, stable=0, last="OOMKilled"))  # pods, so far
    answer = machine.decide(now)           # gather | next | promote | rollback
    # next: commit the next step, then step_live() again; promote/rollback: done

``observe`` keeps the requests that started in the current step after its
warm-up (``warmup_s`` after ``step_live``); earlier ones are left out, so a
step's evidence never mixes two traffic splits. It keeps at most ``MAX_KEPT``
requests a track over the release, so memory stays bounded whatever the
traffic and the budget. ``decide`` answers with an
``Answer``: the action, a reason in plain words (the statistics follow it),
the verdict with every check's evidence, and per check the evidence gathered
against the evidence a verdict needs.

**Evidence accumulates across the release, stratified by step.** The canary's
code does not change between steps; the traffic share and the pods' load do.
Each step is a stratum: canary and stable are compared within it (same time,
same traffic mix), and the strata combine by inverse-variance weighting
(``inferops.analysis.checks.combine``). Every comparison is one anytime-valid
test over the whole release, so the false-rollback rate of the spec,
``false_rollback_rate``, holds for the release, not per step. A step whose
pods do not carry like loads (``StepPlan.comparable`` false: at 10% on two
replicas each canary pod serves a ninth of a stable pod's load, and looks
faster than it is) adds nothing to the relative comparisons; its absolute
ones still count.

**The rules**, at every ``decide``:

0. The canary's pods restarted more than the spec's ``max_restarts`` times
   since the release began (``observe_restarts``): roll back at once. A
   crashing canary loses requests the samples may not show (the router
   retries elsewhere, or the crash falls between windows).
1. A critical check that fails rolls back at once, at any step (a
   non-critical one after ``failure_limit`` consecutive failing looks).
2. The release's time budget is spent: roll back. Inconclusive evidence never
   promotes; the reason names what stayed unclear.
3. The step has not yet run ``dwell_s`` after its warm-up, or has served fewer
   than ``min_requests`` canary requests: gather.
4. Below the last comparable step: go to the next step. Early steps limit the
   blast radius: a canary that is clearly broken fails rule 1 there, while the
   fine comparisons gather power where the canary carries more traffic.
5. At the last comparable step (the last with a baseline), every relative
   comparison must pass (rule out its regression worth detecting) before the
   canary takes all traffic: gather until it does.
6. At 100%: every absolute comparison (error rate, latency, TTFT and TPOT
   quantiles, cost, as the spec lists them) must pass on the canary's requests
   of the whole release, with at least ``min_requests`` of them: then promote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from inferops.analysis.checks import (
    Estimate,
    Limits,
    evaluate,
    is_relative,
    label,
    limits_for,
    relative_estimate,
)
from inferops.analysis.evidence import WindowStats
from inferops.analysis.sample_judge import METHOD
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import AnalysisSpec
from inferops.analysis.verdict import CheckResult, Decision, Evidence, Outcome, Verdict


class Action(StrEnum):
    """What the rollout does next."""

    GATHER = "gather"
    NEXT = "next"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


_DECISION = {
    Action.GATHER: Decision.CONTINUE,
    Action.NEXT: Decision.CONTINUE,
    Action.PROMOTE: Decision.PROMOTE,
    Action.ROLLBACK: Decision.ROLLBACK,
}


MAX_KEPT = 300_000
"""Most requests a track keeps over a release (about 30 MB each): a release at 100 req/s
decides in minutes on a few thousand; only a long budget at thousands of req/s reaches it."""


@dataclass(frozen=True)
class Restarts:
    """Container restarts of each track's pods since the release began."""

    canary: int = 0
    stable: int = 0
    last: str | None = None
    """How a canary container last ended (``OOMKilled``, ``Error``), when known."""


class MachineError(RuntimeError):
    """The machine was driven out of order (a bug in the caller, not in the canary)."""


@dataclass(frozen=True)
class StepPlan:
    """One step as the machine judges it."""

    weight: int
    """Percent of traffic to the canary."""
    dwell_s: float
    """Least time the step is judged (after its warm-up) before it may end."""
    min_requests: int
    """Least canary requests the step serves before it may end."""
    comparable: bool = True
    """Both tracks' pods carry like loads: the step feeds the relative comparisons."""


@dataclass(frozen=True)
class Progress:
    """One check's evidence: how far it is towards passing and towards failing."""

    check: str
    outcome: Outcome
    towards_pass: float
    """0..1: the strongest pass evidence needed so far (1 = passed)."""
    towards_fail: float
    """0..1: the same towards a rollback (1 = failed)."""
    canary_n: int
    baseline_n: int


@dataclass(frozen=True)
class Answer:
    """What the machine answers at one look."""

    action: Action
    headline: str
    """The answer in plain words."""
    statistics: str
    """The evidence behind it (may be empty)."""
    step: int
    """Index of the step this answer is about (0-based)."""
    weight: int
    verdict: Verdict
    progress: tuple[Progress, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """The headline, then the statistics: what commits, artifacts and reports show."""
        return _joined(self.headline, self.statistics)

    @property
    def done(self) -> bool:
        """Whether the release has its final answer."""
        return self.action in (Action.PROMOTE, Action.ROLLBACK)


def _fraction(p: float, level: float) -> float:
    """How far an always-valid p-value has come towards ``level`` (log scale, 0..1)."""
    if p >= 1:
        return 0.0
    if p <= 0:
        return 1.0
    return min(1.0, math.log(p) / math.log(level))


def progress_of(result: CheckResult) -> Progress:
    """A check's evidence as fractions of what passing and failing need."""
    tests = result.tests
    # A check passes when all its comparisons pass: the weakest one sets its progress.
    towards_pass = min((_fraction(t.p_pass, t.beta) for t in tests), default=0.0)
    towards_fail = max((_fraction(t.p_fail, t.alpha) for t in tests), default=0.0)
    return Progress(
        result.label,
        result.outcome,
        round(towards_pass, 3),
        round(towards_fail, 3),
        max((t.canary_n for t in tests), default=0),
        max((t.baseline_n or 0 for t in tests), default=0),
    )


@dataclass
class _Stratum:
    """One step's requests and, once the step has ended, its cached estimates."""

    step: int
    canary: list[SampleSet] = field(default_factory=list)
    stable: list[SampleSet] = field(default_factory=list)
    closed: dict[str, Estimate | None] | None = None
    _joined: tuple[SampleSet, SampleSet] | None = None

    def joined(self) -> tuple[SampleSet, SampleSet]:
        if self._joined is None:
            self._joined = (
                SampleSet.concat(self.canary, "canary"),
                SampleSet.concat(self.stable, "stable"),
            )
            self.canary, self.stable = [self._joined[0]], [self._joined[1]]
        return self._joined

    def add(self, canary: SampleSet, stable: SampleSet) -> None:
        if len(canary):
            self.canary.append(canary)
        if len(stable):
            self.stable.append(stable)
        self._joined = None


class RolloutMachine:
    """The release's decision state: steps, strata of evidence, failure streaks."""

    def __init__(
        self,
        spec: AnalysisSpec,
        steps: Sequence[StepPlan],
        *,
        budget_s: float,
        started_at: float,
        warmup_s: float = 0.0,
        describe: bool = True,
    ) -> None:
        if not steps or steps[-1].weight != 100:
            raise MachineError("the steps must end at 100%")
        self.spec = spec
        self.steps = tuple(steps)
        self.budget_s = budget_s
        self.started_at = started_at
        self.warmup_s = warmup_s
        self.limits: Limits = limits_for(spec, describe)
        self.step_index = 0
        self.analysis_start: float | None = None
        self.finished: Answer | None = None
        self._strata: list[_Stratum] = []
        self._streaks: dict[str, int] = {}
        self._pooled: SampleSet | None = None
        self._pooled_stable: SampleSet | None = None
        self._relative = {c.label for c in spec.checks if is_relative(c)}
        self.restarts = Restarts()
        self._kept = {"canary": 0, "stable": 0}
        comparable = [i for i, s in enumerate(self.steps) if s.comparable and s.weight < 100]
        self.gate = comparable[-1] if comparable else None
        """The last step with a baseline, where every relative comparison must pass."""

    @property
    def step(self) -> StepPlan:
        """The step being judged (or about to go live)."""
        return self.steps[self.step_index]

    def step_live(self, now: float) -> None:
        """The current step's commit is live: its evidence starts after the warm-up."""
        self._check_open()
        self.analysis_start = now + self.warmup_s
        if not self._strata or self._strata[-1].step != self.step_index:
            self._strata.append(_Stratum(self.step_index))

    def observe(self, canary: SampleSet, stable: SampleSet) -> None:
        """Add requests of both tracks; only the current step's, after its warm-up, count."""
        self._check_open()
        if self.analysis_start is None:
            raise MachineError("observe() before step_live(): no step is live")
        start = self.analysis_start
        kept_canary = canary.select(canary.ts >= start)
        kept_stable = stable.select(stable.ts >= start)
        # Memory is bounded: past MAX_KEPT requests a track, later ones are left out. That
        # is far more evidence than any verdict needs, so it costs no decision its power.
        kept_canary = kept_canary.head(max(0, MAX_KEPT - self._kept["canary"]))
        kept_stable = kept_stable.head(max(0, MAX_KEPT - self._kept["stable"]))
        self._kept["canary"] += len(kept_canary)
        self._kept["stable"] += len(kept_stable)
        self._strata[-1].add(kept_canary, kept_stable)
        self._pooled = None
        self._pooled_stable = None

    def observe_restarts(self, restarts: Restarts) -> None:
        """The pods' container restarts since the release began (totals, not increments)."""
        self._check_open()
        self.restarts = restarts

    def decide(self, now: float) -> Answer:
        """Judge everything gathered so far and answer; ``next`` moves to the next step."""
        self._check_open()
        if self.analysis_start is None:
            raise MachineError("decide() before step_live(): no step is live")
        results = self._results()
        answer = self._answer(results, now)
        if answer.action is Action.NEXT:
            self._close_current()
            self.step_index += 1
            self.analysis_start = None
        elif answer.done:
            self.finished = answer
        return answer

    # --- evidence ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.finished is not None:
            raise MachineError(f"the release has ended: {self.finished.action.value}")

    def _estimates(self, stratum: _Stratum) -> dict[str, Estimate | None]:
        if stratum.closed is not None:
            return stratum.closed
        comparable = self.steps[stratum.step].comparable and self.steps[stratum.step].weight < 100
        canary, stable = stratum.joined()
        return {
            c.label: (
                relative_estimate(c, canary, stable, self.limits.cost)
                if comparable and is_relative(c)
                else None
            )
            for c in self.spec.checks
        }

    def _close_current(self) -> None:
        if self._strata and self._strata[-1].step == self.step_index:
            stratum = self._strata[-1]
            stratum.closed = self._estimates(stratum)

    def pooled(self) -> tuple[SampleSet, SampleSet]:
        """Every canary and stable request the release has judged so far."""
        if self._pooled is None or self._pooled_stable is None:
            joined = [s.joined() for s in self._strata]
            self._pooled = SampleSet.concat([c for c, _ in joined], "canary")
            self._pooled_stable = SampleSet.concat([b for _, b in joined], "stable")
        return self._pooled, self._pooled_stable

    def _results(self) -> list[CheckResult]:
        canary, stable = self.pooled()
        per_stratum = [self._estimates(s) for s in self._strata]
        results = []
        for check in self.spec.checks:
            found = [e[check.label] for e in per_stratum]
            strata = [e for e in found if e is not None]
            result = evaluate(check, canary, stable, self.limits, strata=strata)
            streak = self._streaks.get(result.label, 0) + 1 if result.outcome is Outcome.FAIL else 0
            self._streaks[result.label] = streak
            results.append(replace(result, streak=streak))
        return results

    # --- rules ------------------------------------------------------------------------------

    def _limit(self, result: CheckResult) -> int:
        for check in self.spec.checks:
            if check.label == result.label:
                return check.failure_limit or self.spec.failure_limit
        return self.spec.failure_limit

    def _answer(self, results: list[CheckResult], now: float) -> Answer:
        step, index = self.step, self.step_index
        where = f"step {index + 1} of {len(self.steps)} ({step.weight}%)"
        crashed = self.restarts
        if crashed.canary > self.spec.max_restarts:
            how = f", last ending {crashed.last}" if crashed.last else ""
            return self._make(
                Action.ROLLBACK,
                f"the canary's pods restarted {crashed.canary} time"
                f"{'s' if crashed.canary != 1 else ''} at {where}{how} (at most "
                f"{self.spec.max_restarts} allowed).",
                results,
                f"restarts since the release began: canary {crashed.canary}, "
                f"stable {crashed.stable}",
            )
        failing = [r for r in results if r.outcome is Outcome.FAIL]
        fatal = [r for r in failing if r.critical or r.streak >= self._limit(r)]
        if fatal:
            first = fatal[0]
            more = f" (and {len(fatal) - 1} more failing)" if len(fatal) > 1 else ""
            return self._make(
                Action.ROLLBACK,
                f"{_plain(first)} at {where}{more}.",
                results,
                first.detail,
            )
        elapsed = now - self.started_at
        if elapsed >= self.budget_s:
            unclear = [r for r in results if r.outcome is not Outcome.PASS]
            what = _names(unclear) or "the step's minimum evidence"
            return self._make(
                Action.ROLLBACK,
                f"inconclusive: {what} not yet clear at {where} after {elapsed / 60:.1f} min, "
                f"the release's time budget ({self.budget_s / 60:.0f} min); never promoted on "
                "inconclusive evidence. Add traffic (synthetic load) or allow more time.",
                results,
                unclear[0].detail if unclear else "",
            )
        assert self.analysis_start is not None
        in_step = now - self.analysis_start
        canary_now = len(self._strata[-1].joined()[0]) if self._strata else 0
        if in_step < step.dwell_s or canary_now < step.min_requests:
            return self._make(
                Action.GATHER,
                f"gathering at {where}: {max(in_step, 0):.0f} of {step.dwell_s:.0f} s, "
                f"{canary_now} of {step.min_requests} canary requests",
                results,
            )
        if step.weight < 100 and (self.gate is None or index < self.gate):
            return self._make(
                Action.NEXT, f"{where} showed no regression; on to the next step", results
            )
        if step.weight < 100:
            relative = [r for r in results if r.label in self._relative]
            unclear = [r for r in relative if r.outcome is not Outcome.PASS]
            if unclear:
                return self._make(
                    Action.GATHER,
                    f"gathering at {where}: {_names(unclear)} not yet clear against the "
                    f"stable version ({_progress_words(unclear)})",
                    results,
                )
            return self._make(
                Action.NEXT,
                f"{where}: every comparison with the stable version rules out a regression "
                "worth detecting; on to full traffic",
                results,
            )
        unclear = [r for r in results if r.outcome is not Outcome.PASS]
        total = len(self.pooled()[0])
        if unclear or total < self.spec.min_requests:
            what = _names(unclear) or f"{total} of {self.spec.min_requests} canary requests"
            return self._make(
                Action.GATHER,
                f"gathering at {where}: {what} not yet clear"
                + (f" ({_progress_words(unclear)})" if unclear else ""),
                results,
            )
        return self._make(
            Action.PROMOTE,
            f"promoted: every check passed after {total} canary requests ({elapsed / 60:.1f} min).",
            results,
            "; ".join(r.detail for r in results),
        )

    def _make(
        self, action: Action, headline: str, results: list[CheckResult], statistics: str = ""
    ) -> Answer:
        canary, stable = self.pooled()
        evidence = Evidence(
            canary_requests=len(canary),
            baseline_requests=len(stable),
            canary_window=canary.window() if self.limits.describe else None,
            baseline_window=stable.window() if self.limits.describe else None,
            canary_rps=None,
            required_requests=self.spec.min_requests,
            seconds_to_required=None,
            false_rollback_rate=self.spec.false_rollback_rate,
            alpha_per_test=self.limits.alpha,
            missed_regression_rate=self.spec.missed_regression_rate,
            tests=len([t for r in results for t in r.tests]),
            method=METHOD + "; stratified by step, over the whole release",
            canary_summary=canary.summary(self.spec.cost) if self.limits.describe else {},
            baseline_summary=stable.summary(self.spec.cost) if self.limits.describe else {},
        )
        verdict = Verdict(
            _DECISION[action],
            _joined(headline, statistics),
            tuple(results),
            canary.window_stats() if self.limits.describe else _EMPTY_STATS,
            stable.window_stats() if self.limits.describe and len(stable) else None,
            evidence,
            {r.label: r.streak for r in results},
        )
        return Answer(
            action,
            headline,
            statistics,
            self.step_index,
            self.step.weight,
            verdict,
            tuple(progress_of(r) for r in results),
        )


def _joined(headline: str, statistics: str) -> str:
    return f"{headline} Evidence: {statistics}" if statistics else headline


def _names(results: Sequence[CheckResult]) -> str:
    return ", ".join(label(r.metric) if r.name in (None, r.metric) else r.label for r in results)


def _plain(result: CheckResult) -> str:
    """The rollback's cause in words: which check, and against what."""
    against = {t.against for t in result.tests if t.p_fail <= t.alpha}
    name = label(result.metric) if result.name in (None, result.metric) else result.label
    if against == {"slo"}:
        return f"{name} breaks its SLO"
    return f"{name} is worse than the stable version allows"


def _progress_words(results: Sequence[CheckResult]) -> str:
    return ", ".join(
        f"{_names([r])} {progress_of(r).towards_pass:.0%} of the evidence to pass" for r in results
    )


_EMPTY_STATS = WindowStats("canary", 0.0, 0.0, 0.0)
