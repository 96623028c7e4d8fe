"""The platform interface: report whether the runtime matches a GitOps commit.

A flow never changes the runtime directly; it commits, then asks the platform
to wait until the runtime reports that commit live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class PlatformError(Exception):
    """The platform failed, or a commit could not go live."""


class NotLive(PlatformError):
    """A commit did not go live in time; the message says why."""


class EnvironmentDown(PlatformError):
    """The environment stopped serving (its router refuses connections); the message says
    what was found down."""


@dataclass(frozen=True)
class LiveState:
    """What the runtime runs now, and which commit that is."""

    revision: str | None
    live: bool
    pods: tuple[dict[str, Any], ...] = ()
    weights: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)


class Platform(Protocol):
    """Runs what the GitOps repository says and reports what is live."""

    def status(self) -> LiveState:
        """The live state now."""
        ...

    def wait_until_live(self, revision: str, timeout_s: float) -> LiveState:
        """Block until ``revision`` is live, or raise NotLive with the reason."""
        ...
