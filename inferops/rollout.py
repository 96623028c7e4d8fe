"""The rollout's steps as plain functions: state changes, commits, measurement.

Flows call these in order; nothing here imports Prefect. Every change to the
environment is a commit to its GitOps repository made by ``commit_state``;
the platform makes it live. ``converge`` first finishes what an interrupted
release left behind: it rolls it back, because an unfinished canary has no
verdict that would allow anything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from inferops.analysis.machine import Restarts
from inferops.analysis.planning import Capacity, plan_steps
from inferops.analysis.release_plan import Placement, Priors, ReleasePlan, plan_release
from inferops.analysis.samples import SampleSet, split_tracks
from inferops.analysis.spec import AnalysisSpec
from inferops.config import CapacitySettings
from inferops.gitops import history, messages
from inferops.gitops.manifests import DesiredState, TrackSpec, read_state, write_state
from inferops.gitops.repo import GitOpsRepo

if TYPE_CHECKING:
    from inferops.environments import Target


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


@dataclass(frozen=True)
class PlannedStep:
    """One step as the platform runs it: the weight and both tracks' replicas."""

    weight: int
    canary_replicas: int
    stable_replicas: int


def plan(
    weights: Sequence[int],
    stable_replicas: int,
    canary_replicas: int,
    warmup_s: float,
    capacity: CapacitySettings | None,
) -> tuple[PlannedStep, ...]:
    """The release's steps: as configured, or planned on whole replicas and GPUs."""
    if capacity is None:
        return tuple(PlannedStep(w, canary_replicas, stable_replicas) for w in weights)
    held = Capacity(
        stable_replicas=stable_replicas,
        replica_rps=capacity.replica_rps,
        peak_rps=capacity.peak_rps,
        gpus_per_replica=capacity.gpus_per_replica,
        spare_gpus=capacity.spare_gpus,
        headroom=capacity.headroom,
    )
    return tuple(
        PlannedStep(s.weight, s.canary_replicas, s.stable_replicas)
        for s in plan_steps(held, list(weights), warmup_s)
    )


def canary_at(
    state: DesiredState, candidate: Candidate, weight: int, replicas: int | None = None
) -> DesiredState:
    """The canary running ``candidate`` at ``weight`` (replicas default: as many as stable)."""
    canary = TrackSpec(candidate.image, replicas or max(1, state.stable.replicas), candidate.env)
    return replace(state, canary=canary, weight=weight).validate()


def at_step(state: DesiredState, candidate: Candidate, step: Placement) -> DesiredState:
    """The canary at a planned step, the stable scaled to the step's replicas."""
    moved = canary_at(state, candidate, step.weight, step.canary_replicas)
    stable = replace(moved.stable, replicas=step.stable_replicas)
    return replace(moved, stable=stable).validate()


def promoted(state: DesiredState, replicas: int | None = None) -> DesiredState:
    """The canary's image and environment become stable on ``replicas`` (default: as now)."""
    stable = TrackSpec(state.canary.image, replicas or state.stable.replicas, state.canary.env)
    return replace(
        state, stable=stable, canary=replace(state.canary, replicas=0), weight=0
    ).validate()


def rolled_back(state: DesiredState, stable_replicas: int | None = None) -> DesiredState:
    """The stable version takes all traffic again, on ``stable_replicas`` (default: as now)."""
    stable = replace(state.stable, replicas=stable_replicas or state.stable.replicas)
    return replace(
        state, stable=stable, canary=replace(state.canary, replicas=0), weight=0
    ).validate()


def commit_state(repo: GitOpsRepo, state: DesiredState, message: messages.Message) -> str:
    """Commit ``state`` with ``message``; the new head (unchanged head if nothing changed)."""
    files = write_state(repo.files(), state)
    sha = repo.commit(files, message.subject, message.body, message.trailers)
    return sha or repo.head()


def converge(repo: GitOpsRepo, when: str = "before the next release") -> str | None:
    """Roll back an interrupted release; the commit made, or None when none was needed.

    ``when`` completes the reason the rollback commit gives ("rolled back ...").
    """
    log = repo.log()
    interrupted = history.unfinished(log)
    if interrupted is None:
        return None
    last = interrupted.events[-1]
    index, _, total = last.step.partition("/")
    state = current_state(repo)
    reason = (
        f"{interrupted.release_id} was interrupted at step {last.step} ({last.weight}%) "
        f"without a verdict; rolled back {when}."
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


def pod_restarts(pods: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Container restarts per pod name, as the platform's status lists its pods."""
    return {str(p["name"]): int(p.get("restarts") or 0) for p in pods if p.get("name")}


def restarts_since(before: Mapping[str, int], pods: Sequence[Mapping[str, Any]]) -> Restarts:
    """Each track's restarts since ``before`` (``pod_restarts`` when the release began).

    A pod started since then counts all its restarts; one gone since counts no more.
    """
    counts = {"canary": 0, "stable": 0}
    last: str | None = None
    for pod in pods:
        track = pod.get("track")
        if track not in counts or not pod.get("name"):
            continue
        more = max(0, int(pod.get("restarts") or 0) - before.get(str(pod["name"]), 0))
        counts[track] += more
        if track == "canary" and more and pod.get("last"):
            last = str(pod["last"])
    return Restarts(counts["canary"], counts["stable"], last)


class OutageWatch:
    """Says the environment is down once ``probe`` has found it down for ``confirm_s``:
    a router that restarts (the local agent brings it back within a second) is no outage.

    ``probe`` returns what is down, or None (``Target.outage``).
    """

    def __init__(
        self,
        probe: Callable[[], str | None],
        confirm_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.confirm_s = confirm_s
        self.clock = clock
        self.since: float | None = None

    def __call__(self) -> str | None:
        """What is down, once it has been down for ``confirm_s``; else None."""
        found = self.probe()
        if found is None:
            self.since = None
            return None
        now = self.clock()
        if self.since is None:
            self.since = now
        return found if now - self.since >= self.confirm_s else None

    def confirm(self, sleep: Callable[[float], None] = time.sleep) -> str | None:
        """Probe until the outage is confirmed (what is down) or is over (None)."""
        while True:
            found = self()
            if found is not None or self.since is None:
                return found
            sleep(0.25)


def tracks_of(rows: Sequence[Mapping[str, Any]]) -> tuple[SampleSet, SampleSet]:
    """The canary's and the stable's requests among the load generator's samples."""
    tracks = split_tracks(rows)

    def track(name: str) -> SampleSet:
        return tracks.get(name) or SampleSet.concat([], name)

    return track("canary"), track("stable")


@dataclass(frozen=True)
class Traffic:
    """What the plan assumes of the traffic a release will see."""

    rate_rps: float | None
    source: str
    priors: Priors
    total: bool = True
    """False: the real traffic alone, before the load the release adds."""


def expected_traffic(target: Target, warn: Callable[[str], None]) -> Traffic:
    """The total traffic a release's plan expects: configured, else the real traffic seen."""
    configured = target.env.canary.expected_rps
    if configured:
        return Traffic(configured, "configured expected_rps", Priors())
    if not target.on_cluster:
        # Locally the load generator is all the traffic there is, and what the metrics hold
        # of the last minutes is an earlier release's load, not the next one's.
        return Traffic(None, "the load generator's, measured as the release runs", Priors())
    try:
        seen = target.metrics().window_stats(target.track_labels("stable"), 600.0, time.time())
    except Exception as exc:  # the plan can do without it: the budget still holds
        warn(f"could not read the recent traffic ({exc}); planning without it")
        return Traffic(None, "unknown", Priors())
    if seen.requests <= 0:
        return Traffic(None, "unknown (no traffic in the last 10 min)", Priors())
    return Traffic(
        seen.requests / 600.0,
        "real traffic the metrics provider shows over the last 10 min",
        Priors(error_rate=seen.errors / seen.requests),
        total=False,
    )


def plan_for(target: Target, spec: AnalysisSpec, warn: Callable[[str], None]) -> ReleasePlan:
    """The plan of the next release on ``target``, from its GitOps state and traffic."""
    settings = target.env.canary
    stable = current_state(target.repo()).stable
    placed = plan(
        settings.steps,
        stable.replicas,
        target.canary_replicas,
        settings.warmup_s,
        settings.capacity,
    )
    traffic = expected_traffic(target, warn)
    return plan_release(
        spec,
        placed,
        window_s=settings.window_s,
        budget_s=settings.budget_s,
        rate_rps=traffic.rate_rps,
        rate_source=traffic.source,
        priors=traffic.priors,
        rate_is_total=traffic.total,
    )
