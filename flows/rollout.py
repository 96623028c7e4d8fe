"""Roll a candidate out as a canary, step by step, each step a GitOps commit.

The runbook: take the environment's lock; finish any interrupted release;
then for each traffic step commit the weight, wait until it is live, drive
load, measure both tracks and judge. Continue, hold (more load), roll back
or, after the last step, promote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from inferops import rollout as steps
from inferops.analysis.spec import AnalysisSpec
from inferops.analysis.verdict import Decision, Verdict
from inferops.config import load_config
from inferops.environments import Target, open_target
from inferops.gitops import history, messages
from inferops.loadtest import load_profile, read_samples, run_load
from inferops.lock import Hold
from inferops.rollout import Candidate


@task(retries=2, retry_delay_seconds=1)
def commit(target: Target, state: Any, message: messages.Message) -> str:
    """Commit a desired state to the environment's GitOps repository."""
    sha = steps.commit_state(target.repo(), state, message)
    get_run_logger().info("committed %s: %s", sha[:12], message.subject)
    return sha


@task
def wait_live(target: Target, sha: str) -> None:
    """Wait until the platform reports the commit live."""
    started = time.monotonic()
    target.platform(get_run_logger().info).wait_until_live(sha, target.env.canary.live_timeout_s)
    get_run_logger().info("%s is live (%.1fs)", sha[:12], time.monotonic() - started)


@dataclass(frozen=True)
class Window:
    """One load window: when the analysis starts and ends, and the requests it recorded."""

    start: float
    end: float
    samples: Path


@task
def drive_load(target: Target, label: str) -> Window:
    """Drive the step's load through the router; the analysis window it covers."""
    plan = target.env.canary
    profile = load_profile(target.config.path(plan.load_profile))
    started = time.time()
    result = run_load(
        target.router_url,
        profile,
        target.state_dir / "loadtests" / label,
        duration_s=plan.window_s + plan.warmup_s,
        env={"INFEROPS_LOAD_MAX_TOKENS": str(plan.max_tokens)},
    )
    get_run_logger().info(
        "load %s: %d requests (%s)",
        label,
        result.requests,
        ", ".join(f"{k} {v}" for k, v in sorted(result.by_track.items())),
    )
    return Window(started + plan.warmup_s, time.time(), result.samples_path)


@task
def analyse(
    target: Target,
    spec: AnalysisSpec,
    image: str,
    step: list[Window],
    previous: Verdict | None,
) -> Verdict:
    """Judge the canary on the step's windows so far (samples first, metrics otherwise)."""
    steps.settle(target.scrape_interval_s)
    first, last = step[0], step[-1]
    metrics = steps.measure(
        target.metrics(),
        target.track_labels("canary", image),
        target.track_labels("stable"),
        (first.start, last.end),
        spec.min_requests,
    )
    step_rows = [r for w in step for r in steps.since(read_samples(w.samples), w.start)]
    verdict = steps.judge_step(spec, step_rows, metrics, previous)
    get_run_logger().info("verdict: %s: %s", verdict.decision.value, verdict.reason)
    return verdict


def _publish(release_id: str, index: int, label: str, verdict: Verdict) -> None:
    rows = "\n".join(f"| {c.metric} | {c.outcome.value} | {c.detail} |" for c in verdict.checks)
    create_markdown_artifact(
        key=f"verdict-{release_id}-step-{index}",
        markdown=(
            f"## {release_id} {label}: **{verdict.decision.value}**\n\n{verdict.reason}\n\n"
            "| check | outcome | evidence |\n|---|---|---|\n" + rows
        ),
        description=f"canary verdict of {release_id} at {label}",
    )


def _judge_step(
    target: Target,
    spec: AnalysisSpec,
    release_id: str,
    index: int,
    weight: int,
    image: str,
) -> Verdict:
    """Load and judge one step until it passes, fails, or runs out of extensions.

    ``promote`` from the judge means the step passed; ``continue`` and ``hold`` mean
    more evidence is needed, so the window is extended (an extension adds to the step's
    earlier windows, never discards them).
    """
    step: list[Window] = []
    verdict: Verdict | None = None
    for attempt in range(1 + target.env.canary.max_extensions):
        window = drive_load(target, f"{release_id}-step{index}-{attempt}")
        step.append(window)
        verdict = analyse(target, spec, image, step, verdict)
        _publish(release_id, index, f"step {index} ({weight}%)", verdict)
        if verdict.decision in (Decision.PROMOTE, Decision.ROLLBACK):
            return verdict
    assert verdict is not None
    return verdict


def _describe(image: str, env: tuple[tuple[str, str], ...]) -> str:
    short = image.rpartition("@sha256:")[2][:12] or image
    return short + (f" with {', '.join(f'{k}={v}' for k, v in env)}" if env else "")


def _steps(
    target: Target, hold: Hold, spec: AnalysisSpec, release_id: str, candidate: Candidate
) -> dict[str, Any]:
    """Every step of one release, ending in a promotion or a rollback commit."""

    def record(state: Any, message: messages.Message) -> str:
        hold.check()  # a release that lost its hold commits nothing more
        return commit(target, state, message)

    repo = target.repo()
    stable = steps.current_state(repo).stable
    settings = target.env.canary
    plan = steps.plan(
        settings.steps,
        stable.replicas,
        target.canary_replicas,
        settings.warmup_s,
        settings.capacity,
    )
    total = len(plan)
    get_run_logger().info(
        "plan: %s",
        ", ".join(
            f"{s.weight}% ({s.canary_replicas} canary / {s.stable_replicas} stable)" for s in plan
        ),
    )
    reason = (
        f"{release_id} starts: canary {_describe(candidate.image, candidate.env)} "
        f"against stable {_describe(stable.image, stable.env)}."
    )
    verdict_so_far = "start"
    for index, planned in enumerate(plan, start=1):
        weight = planned.weight
        state = steps.at_step(steps.current_state(repo), candidate, planned)
        message = messages.step(
            release_id, index, total, weight, candidate.image, verdict_so_far, reason
        )
        try:
            wait_live(target, record(state, message))
            verdict = _judge_step(target, spec, release_id, index, weight, candidate.image)
        except Exception as exc:
            # Fail safe: a step that cannot be judged is withdrawn before the error is reported.
            reason = f"step {index} ({weight}%) failed: {exc}"
            sha = record(
                steps.rolled_back(steps.current_state(repo), stable.replicas),
                messages.rollback(release_id, index, total, candidate.image, stable.image, reason),
            )
            wait_live(target, sha)
            raise
        outcome = "passed" if verdict.decision is Decision.PROMOTE else verdict.decision.value
        reason = f"step {index} ({weight}%) {outcome}: {verdict.reason}"
        if verdict.decision is not Decision.PROMOTE:
            if verdict.decision is not Decision.ROLLBACK:
                reason += " Evidence stayed short after every extension: never promote on it."
            sha = record(
                steps.rolled_back(steps.current_state(repo), stable.replicas),
                messages.rollback(release_id, index, total, candidate.image, stable.image, reason),
            )
            wait_live(target, sha)
            return {
                "release_id": release_id,
                "decision": "rollback",
                "revision": sha,
                "verdict": verdict.to_dict(),
                "step": index,
                "weight": weight,
            }
        verdict_so_far = "continue"
    sha = record(
        steps.promoted(steps.current_state(repo), max(stable.replicas, plan[-1].canary_replicas)),
        messages.promote(release_id, total, candidate.image, reason),
    )
    wait_live(target, sha)
    return {
        "release_id": release_id,
        "decision": "promote",
        "revision": sha,
        "verdict": verdict.to_dict(),
        "step": total,
        "weight": 100,
    }


@flow(name="rollout")
def rollout(
    image: str,
    env: str = "local",
    service_env: dict[str, str] | None = None,
    config_path: str = "inferops.yaml",
) -> dict[str, Any]:
    """Roll ``image`` out on ``env`` as a canary; returns the final verdict."""
    target = open_target(load_config(config_path), env)
    repo = target.repo()
    with target.lock(f"release {history.next_release_id(repo.log())}") as hold:
        interrupted = steps.converge(repo)
        if interrupted:
            get_run_logger().warning(
                "rolled back an interrupted release first (%s)", interrupted[:12]
            )
            wait_live(target, interrupted)
        candidate = steps.candidate_for(steps.current_state(repo), image, service_env)
        release_id = history.next_release_id(repo.log())
        return _steps(target, hold, target.slos(), release_id, candidate)
