"""Roll a candidate out as a canary, step by step, each step a GitOps commit.

The runbook: take the environment's lock; finish any interrupted release;
plan the release from its traffic (refused before any commit when it cannot
fit its time budget); then for each traffic step commit the weight, wait until
it is live, and drive load window by window, feeding each window's requests to
the rollout machine (``inferops.analysis.machine``) until it answers next
step, roll back or, at full traffic, promote.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from flows.runs import clean_orphans, recorded, returned
from inferops import rollout as steps
from inferops import runs
from inferops.analysis.machine import Action, Answer, RolloutMachine
from inferops.analysis.release_plan import PlanRefused
from inferops.analysis.spec import AnalysisSpec
from inferops.config import load_config
from inferops.environments import Target, open_target
from inferops.gitops import history, messages
from inferops.gitops.manifests import TrackSpec
from inferops.gitops.repo import GitOpsRepo
from inferops.loadtest import LoadStopped, load_profile, read_samples, run_load
from inferops.lock import Hold
from inferops.platforms.base import EnvironmentDown, Platform
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


@task
def drive_load(target: Target, label: str, seconds: float, spec: AnalysisSpec) -> Path:
    """Drive ``seconds`` of the step's load through the router; the samples it recorded.

    The load stops early, with ``EnvironmentDown``, once the router has refused
    connections for two seconds.
    """
    plan = target.env.canary
    profile = load_profile(target.config.path(plan.load_profile))
    prices = {"INFEROPS_LOAD_PRICES": json.dumps(spec.cost.model_dump())} if spec.cost else {}
    try:
        result = run_load(
            target.router_url,
            profile,
            target.state_dir / "loadtests" / label,
            duration_s=seconds,
            env={"INFEROPS_LOAD_MAX_TOKENS": str(plan.max_tokens), **prices},
            watch=steps.OutageWatch(target.outage),
            owner=runs.current(target.state_dir),
        )
    except LoadStopped as exc:
        raise EnvironmentDown(str(exc)) from exc
    get_run_logger().info(
        "load %s: %d requests (%s)",
        label,
        result.requests,
        ", ".join(f"{k} {v}" for k, v in sorted(result.by_track.items())),
    )
    return result.samples_path


def _publish(release_id: str, answer: Answer) -> None:
    """The step's verdict as a Prefect artifact; the release goes on without it (its
    verdicts are in the GitOps history) when Prefect cannot take it."""
    try:
        _artifact(release_id, answer)
    except Exception as exc:
        get_run_logger().warning("the verdict's artifact was not published: %s", exc)


def _artifact(release_id: str, answer: Answer) -> None:
    verdict = answer.verdict
    rows = "\n".join(
        f"| {c.label} | {c.outcome.value} | {p.towards_pass:.0%} | {p.towards_fail:.0%} "
        f"| {c.detail} |"
        for c, p in zip(verdict.checks, answer.progress, strict=True)
    )
    create_markdown_artifact(
        key=f"verdict-{release_id}-step-{answer.step + 1}",
        markdown=(
            f"## {release_id} step {answer.step + 1} ({answer.weight}%): "
            f"**{answer.action.value}**\n\n{answer.reason}\n\n"
            "| check | outcome | evidence to pass | evidence to fail | statistics |\n"
            "|---|---|---|---|---|\n" + rows
        ),
        description=f"canary verdict of {release_id} at step {answer.step + 1}",
    )


def _progress_line(answer: Answer) -> str:
    return ", ".join(
        f"{p.check} {p.outcome.value} ({p.towards_pass:.0%} to pass, n={p.canary_n})"
        for p in answer.progress
    )


def _pods(platform: Platform) -> list[dict[str, Any]] | None:
    """The pods the platform lists now, or None (with a warning) when it cannot say."""
    try:
        return list(platform.status().pods)
    except Exception as exc:  # the samples still judge: say so and go on
        get_run_logger().warning("pod restarts unknown this window: %s", exc)
        return None


def _judge_step(
    target: Target,
    machine: RolloutMachine,
    release_id: str,
    index: int,
    platform: Platform,
    restarts_before: dict[str, int],
) -> Answer:
    """Load and judge one step until the machine moves on, promotes or rolls back."""
    settings = target.env.canary
    machine.step_live(time.time())
    window = 0
    while True:
        seconds = settings.window_s + (settings.warmup_s if window == 0 else 0.0)
        samples = drive_load(target, f"{release_id}-step{index}-{window}", seconds, machine.spec)
        down = steps.OutageWatch(target.outage).confirm()
        if down is not None:  # what the window saw is the outage, not the canary
            raise EnvironmentDown(down)
        canary, stable = steps.tracks_of(read_samples(samples))
        machine.observe(canary, stable)
        pods = _pods(platform)
        if pods is not None:
            machine.observe_restarts(steps.restarts_since(restarts_before, pods))
        answer = machine.decide(time.time())
        _publish(release_id, answer)
        logger = get_run_logger()
        logger.info("%s: %s", answer.action.value, answer.headline)
        logger.info("evidence: %s", _progress_line(answer))
        if answer.action is not Action.GATHER:
            return answer
        window += 1


def _describe(image: str, env: tuple[tuple[str, str], ...]) -> str:
    short = image.rpartition("@sha256:")[2][:12] or image
    return short + (f" with {', '.join(f'{k}={v}' for k, v in env)}" if env else "")


@dataclass(frozen=True)
class _Release:
    """One release's commits: each step, and its rollback."""

    target: Target
    hold: Hold
    repo: GitOpsRepo
    release_id: str
    total: int
    candidate: Candidate
    stable: TrackSpec

    def record(self, state: Any, message: messages.Message) -> str:
        """Commit ``state``, unless the release lost its hold of the environment."""
        self.hold.check()  # a release that lost its hold commits nothing more
        return commit(self.target, state, message)

    def roll_back(
        self, index: int, weight: int, why: str, outage: EnvironmentDown | None = None
    ) -> str:
        """Commit the rollback and wait until it is live. When the environment is down
        (``outage``, or found while waiting), settle the release with one line that says
        so and raise ``EnvironmentDown``: its rollback applies when it runs again."""
        rid, total = self.release_id, self.total
        sha = self.record(
            steps.rolled_back(steps.current_state(self.repo), self.stable.replicas),
            messages.rollback(rid, index, total, self.candidate.image, self.stable.image, why),
        )
        cause = f"the environment went down: {outage}"
        if outage is None:
            try:
                wait_live(self.target, sha)
                return sha
            except Exception as exc:
                down = steps.OutageWatch(self.target.outage).confirm()
                if down is None:
                    raise
                cause = f"{why}; then the environment went down: {down}"
                outage = EnvironmentDown(down)
                outage.__cause__ = exc
        line = (
            f"{rid} rolled back at step {index} of {total} ({weight}%): {cause}. "
            f"The rollback is committed ({sha[:12]}); it applies when the environment "
            f"runs again (inferops up --env {self.target.name})"
        )
        runs.settle(line)
        raise EnvironmentDown(line) from outage


def _steps(
    target: Target, hold: Hold, spec: AnalysisSpec, release_id: str, candidate: Candidate
) -> dict[str, Any]:
    """Every step of one release, ending in a promotion or a rollback commit."""
    repo = target.repo()
    stable = steps.current_state(repo).stable
    settings = target.env.canary
    plan = steps.plan_for(target, spec, get_run_logger().warning)
    get_run_logger().info("plan:\n%s", plan.describe())
    if not plan.fits:
        raise PlanRefused(f"{release_id} refused before it started: {plan.refusal()}")
    machine = plan.machine(time.time(), settings.warmup_s)
    platform = target.platform()  # one client for the release's pod reads
    restarts_before = steps.pod_restarts(_pods(platform) or [])
    total = len(plan.steps)
    run = _Release(target, hold, repo, release_id, total, candidate, stable)
    reason = (
        f"{release_id} starts: canary {_describe(candidate.image, candidate.env)} "
        f"against stable {_describe(stable.image, stable.env)}."
    )
    verdict_so_far = "start"
    answer: Answer | None = None
    for index, step in enumerate(plan.steps, start=1):
        weight = step.weight
        state = steps.at_step(steps.current_state(repo), candidate, step)
        message = messages.step(
            release_id, index, total, weight, candidate.image, verdict_so_far, reason
        )
        if (noted := runs.current(target.state_dir)) is not None:
            noted.update(step=f"{index}/{total} ({weight}%)")
        try:
            wait_live(target, run.record(state, message))
            answer = _judge_step(target, machine, release_id, index, platform, restarts_before)
        except Exception as exc:
            # Fail safe: a step that cannot be judged is withdrawn before the error is
            # reported; when the environment went down, the rollback says so.
            down = exc if isinstance(exc, EnvironmentDown) else None
            if down is None and (found := steps.OutageWatch(target.outage).confirm()):
                down = EnvironmentDown(found)
            if down is None:
                run.roll_back(index, weight, f"step {index} ({weight}%) failed: {exc}")
                raise
            why = f"step {index} ({weight}%) failed: the environment went down: {down}"
            run.roll_back(index, weight, why, down)
            raise
        reason = f"step {index} ({weight}%): {answer.reason}"
        if answer.action is Action.ROLLBACK:
            sha = run.roll_back(index, weight, reason)
            return _result(release_id, "rollback", sha, answer, index, weight)
        if answer.action is Action.PROMOTE:
            break
        verdict_so_far = "continue"
    assert answer is not None and answer.action is Action.PROMOTE
    sha = run.record(
        steps.promoted(
            steps.current_state(repo), max(stable.replicas, plan.steps[-1].canary_replicas)
        ),
        messages.promote(release_id, total, candidate.image, reason),
    )
    wait_live(target, sha)
    return _result(release_id, "promote", sha, answer, total, 100)


def _result(
    release_id: str, decision: str, sha: str, answer: Answer, step: int, weight: int
) -> dict[str, Any]:
    return {
        "release_id": release_id,
        "decision": decision,
        "revision": sha,
        "headline": answer.headline,
        "reason": answer.reason,
        "verdict": answer.verdict.to_dict(),
        "step": step,
        "weight": weight,
    }


def final_state(result: dict[str, Any]) -> State:
    """The run's final state: ``Promoted`` (completed) or ``RolledBack`` (failed).

    A rolled-back release is a release that did not ship, so its run ends failed, in red
    where Prefect lists runs and for automations that watch failures; its message is the
    reason in plain words, and its result is the same verdict a promotion carries.
    """
    headline = f"{result['release_id']}: {result['headline']}"
    if result["decision"] == "promote":
        return Completed(data=result, name="Promoted", message=headline)
    return Failed(data=result, name="RolledBack", message=headline)


def verdict_of(state: State) -> dict[str, Any]:
    """The verdict a rollout or release run returned; an error it ended with is raised."""
    return returned(state, "verdict")


@flow(name="rollout")
def rollout(
    image: str,
    env: str = "local",
    service_env: dict[str, str] | None = None,
    config_path: str = "inferops.yaml",
) -> State:
    """Roll ``image`` out on ``env`` as a canary; ends ``Promoted`` or ``RolledBack``.

    Call it with ``return_state=True`` and read the verdict with ``verdict_of``.
    """
    target = open_target(load_config(config_path), env)
    repo = target.repo()
    with (
        recorded(target.state_dir) as record,
        target.lock(f"release {history.next_release_id(repo.log())}") as hold,
    ):
        clean_orphans(target.state_dir)
        interrupted = steps.converge(repo)
        if interrupted:
            get_run_logger().warning(
                "rolled back an interrupted release first (%s)", interrupted[:12]
            )
            wait_live(target, interrupted)
        candidate = steps.candidate_for(steps.current_state(repo), image, service_env)
        release_id = history.next_release_id(repo.log())
        record.update(release_id=release_id)
        return final_state(_steps(target, hold, target.slos(), release_id, candidate))
