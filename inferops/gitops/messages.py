"""The commits a release makes: subjects, bodies and trailers, as pure functions.

Every commit says what changed in its subject and carries the trailers that
``history`` parses: ``Release-Id``, ``Step``, ``Weight``, ``Verdict`` (the
decision that led to this commit) and ``Image``.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferops.gitops.history import IMAGE, RELEASE_ID, STEP, VERDICT, WEIGHT


@dataclass(frozen=True)
class Message:
    """A commit message: subject, body and trailers."""

    subject: str
    body: str
    trailers: dict[str, str]


def _short(image: str) -> str:
    return image.rpartition("@sha256:")[2][:12] or image


def seed(env: str, image: str) -> Message:
    """The first commit of an environment."""
    return Message(
        f"seed {env}: stable {_short(image)}",
        f"Environment {env} created with {image} as the stable version.",
        {RELEASE_ID: "r-0", STEP: "seed", WEIGHT: "0", VERDICT: "seed", IMAGE: image},
    )


def step(
    release_id: str, index: int, total: int, weight: int, image: str, verdict: str, reason: str
) -> Message:
    """A canary step: the canary takes ``weight`` percent."""
    return Message(
        f"{release_id} step {index}/{total}: canary {_short(image)} at {weight}%",
        reason,
        {
            RELEASE_ID: release_id,
            STEP: f"{index}/{total}",
            WEIGHT: str(weight),
            VERDICT: verdict,
            IMAGE: image,
        },
    )


def promote(release_id: str, total: int, image: str, reason: str) -> Message:
    """The canary becomes the stable version."""
    return Message(
        f"{release_id} promote: {_short(image)} is the new stable",
        reason,
        {
            RELEASE_ID: release_id,
            STEP: f"{total}/{total}",
            WEIGHT: "0",
            VERDICT: "promote",
            IMAGE: image,
        },
    )


def rollback(
    release_id: str, index: int, total: int, image: str, stable: str, reason: str
) -> Message:
    """The canary is withdrawn; the stable version takes all traffic."""
    return Message(
        f"{release_id} rollback: canary withdrawn, stable {_short(stable)} takes all traffic",
        reason,
        {
            RELEASE_ID: release_id,
            STEP: f"{index}/{total}",
            WEIGHT: "0",
            VERDICT: "rollback",
            IMAGE: image,
        },
    )
