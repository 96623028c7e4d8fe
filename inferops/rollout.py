"""The rollout's steps as plain functions: state changes, commits, measurement.

Flows call these in order; nothing here imports Prefect. Every change to the
environment is a commit to its GitOps repository made by ``commit_state``;
the platform makes it live. ``converge`` first finishes what an interrupted
release left behind: it rolls it back, because an unfinished canary has no
verdict that would allow anything else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from inferops.analysis.evidence import WindowStats
from inferops.gitops import history, messages
from inferops.gitops.manifests import DesiredState, TrackSpec, read_state, write_state
from inferops.gitops.repo import GitOpsRepo
from inferops.metrics import MetricsProvider


@dataclass(frozen=True)
class Candidate:
    """What a release puts on the canary track: an image and its environment."""

    image: str
    env: tuple[tuple[str, str], ...] = ()


def candidate_for(
    state: DesiredState, image: str, overrides: Mapping[str, str] | None
) -> Candidate:
    """The new version: ``image`` with the stable environment changed by ``overrides``.

    An override with an empty value removes that variable.
    """
    env = dict(state.stable.env)
    for key, value in (overrides or {}).items():
        if value == "":
            env.pop(key, None)
        else:
            env[key] = value
    return Candidate(image, tuple(sorted(env.items())))


def current_state(repo: GitOpsRepo) -> DesiredState:
    """The desired state at the head of the repository."""
    return read_state(repo.files())


def canary_at(
    state: DesiredState, candidate: Candidate, weight: int, replicas: int | None = None
) -> DesiredState:
    """The canary running ``candidate`` at ``weight`` (replicas default: as many as stable)."""
    canary = TrackSpec(candidate.image, replicas or max(1, state.stable.replicas), candidate.env)
    return replace(state, canary=canary, weight=weight).validate()


def promoted(state: DesiredState) -> DesiredState:
    """The canary's image and environment become stable; the canary is emptied."""
    stable = TrackSpec(state.canary.image, state.stable.replicas, state.canary.env)
    return replace(
        state, stable=stable, canary=replace(state.canary, replicas=0), weight=0
    ).validate()


def rolled_back(state: DesiredState) -> DesiredState:
    """The stable version takes all traffic; the canary is emptied."""
    return replace(state, canary=replace(state.canary, replicas=0), weight=0).validate()


def commit_state(repo: GitOpsRepo, state: DesiredState, message: messages.Message) -> str:
    """Commit ``state`` with ``message``; the new head (unchanged head if nothing changed)."""
    files = write_state(repo.files(), state)
    sha = repo.commit(files, message.subject, message.body, message.trailers)
    return sha or repo.head()


def converge(repo: GitOpsRepo) -> str | None:
    """Roll back an interrupted release; the commit made, or None when none was needed."""
    log = repo.log()
    interrupted = history.unfinished(log)
    if interrupted is None:
        return None
    last = interrupted.events[-1]
    index, _, total = last.step.partition("/")
    state = current_state(repo)
    reason = (
        f"{interrupted.release_id} was interrupted at step {last.step} ({last.weight}%) "
        "without a verdict; rolled back before the next release."
    )
    msg = messages.rollback(
        interrupted.release_id,
        int(index or 0),
        int(total or 0),
        interrupted.image or state.canary.image,
        state.stable.image,
        reason,
    )
    return commit_state(repo, rolled_back(state), msg)


def measure(
    metrics: MetricsProvider,
    env: str,
    image: str,
    window: tuple[float, float],
    release_start: float,
    min_requests: int,
) -> tuple[WindowStats, WindowStats | None]:
    """Canary and baseline figures for a load window (start, end) in unix time.

    The baseline is the stable version over the same window; when it served
    too little there (the canary takes all traffic at 100%), the stable
    version's traffic since the release began stands in for it.
    """
    start, end = window
    version = image.rpartition("@sha256:")[2][:12] or image
    span = max(1.0, end - start)
    canary = metrics.window_stats({"env": env, "track": "canary", "version": version}, span, end)
    baseline = metrics.window_stats({"env": env, "track": "stable"}, span, end)
    if baseline.requests < min_requests:
        since = max(span, end - release_start)
        baseline = metrics.window_stats({"env": env, "track": "stable"}, since, end)
    return canary, baseline if baseline.requests > 0 else None


def settle(scrape_interval_s: float) -> None:
    """Wait until the last samples of a window have been scraped."""
    time.sleep(2 * scrape_interval_s + 0.5)
