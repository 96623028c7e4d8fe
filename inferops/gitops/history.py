"""Releases as the GitOps log tells them: pure parsing of commits and trailers.

Every commit a release makes carries ``Release-Id``, ``Step``, ``Weight`` and
``Verdict`` trailers; ``Verdict`` is the decision that led to the commit
(``start`` for the first step). A release whose newest commit is a step is
still running, or was interrupted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from inferops.gitops.repo import Commit

RELEASE_ID = "Release-Id"
STEP = "Step"
WEIGHT = "Weight"
VERDICT = "Verdict"
IMAGE = "Image"
FINAL_VERDICTS = frozenset({"promote", "rollback", "seed"})
_RELEASE = re.compile(r"^r-(\d+)$")


@dataclass(frozen=True)
class Event:
    """One commit of a release."""

    sha: str
    date: str
    step: str
    weight: int
    verdict: str
    subject: str
    reason: str


@dataclass(frozen=True)
class Release:
    """One release: its image, its commits in order, and how it ended."""

    release_id: str
    image: str
    events: tuple[Event, ...] = field(default_factory=tuple)

    @property
    def outcome(self) -> str:
        """promoted, rolled back, seeded, or in progress (the last commit is a step)."""
        last = self.events[-1].verdict if self.events else ""
        outcomes = {"promote": "promoted", "rollback": "rolled back", "seed": "seeded"}
        return outcomes.get(last, "in progress")

    @property
    def finished(self) -> bool:
        """True when the release ended in a promotion or a rollback."""
        return bool(self.events) and self.events[-1].verdict in FINAL_VERDICTS


def releases(log: Sequence[Commit]) -> list[Release]:
    """Releases from a log (newest first, as git prints it), oldest release first."""
    grouped: dict[str, list[Commit]] = {}
    for commit in reversed(log):
        rid = commit.trailers.get(RELEASE_ID)
        if rid:
            grouped.setdefault(rid, []).append(commit)
    out = []
    for rid, commits in grouped.items():
        events = tuple(
            Event(
                sha=c.sha,
                date=c.date,
                step=c.trailers.get(STEP, ""),
                weight=_int(c.trailers.get(WEIGHT, "0")),
                verdict=c.trailers.get(VERDICT, ""),
                subject=c.subject,
                reason=c.body,
            )
            for c in commits
        )
        image = next((c.trailers[IMAGE] for c in commits if IMAGE in c.trailers), "")
        out.append(Release(rid, image, events))
    return out


def next_release_id(log: Sequence[Commit]) -> str:
    """The id the next release takes: one past the highest in the log."""
    numbers = [
        int(m.group(1)) for c in log if (m := _RELEASE.match(c.trailers.get(RELEASE_ID, "")))
    ]
    return f"r-{max(numbers, default=0) + 1}"


def unfinished(log: Sequence[Commit]) -> Release | None:
    """The newest release if it never reached a promotion or rollback."""
    found = releases(log)
    if found and not found[-1].finished:
        return found[-1]
    return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
