"""A circuit breaker: stop calling an upstream that keeps failing, then try it again.

Contract:

- **Closed** (the start): every call may go ahead. ``failure_threshold`` failures in a row
  open the breaker; any success resets the count.
- **Open**: :meth:`CircuitBreaker.allow` refuses every call until ``reset_s`` seconds have
  passed since it opened; :meth:`CircuitBreaker.retry_after` says how long that is.
- **Half-open**: once ``reset_s`` has passed, ``allow`` lets exactly one trial call through
  and refuses the others. The trial's success closes the breaker; its failure opens it
  again for another ``reset_s``. A trial that never reports (its caller went away) is
  replaced by a new one ``reset_s`` after it was let through, so the breaker cannot stick.
- Any success closes the breaker, whoever reports it: an upstream that answered is up.
  A failure reported while open (by a call let through before it opened) changes nothing,
  so late failures do not extend the wait.
- What counts as a failure is the caller's choice; the breaker only counts. It does no I/O
  and reads time only from the injected ``clock`` (``time.monotonic`` by default).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class State(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of calls to one upstream and refuses calls while open."""

    def __init__(
        self,
        failure_threshold: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if reset_s <= 0:
            raise ValueError(f"reset_s must be positive, got {reset_s}")
        self._threshold = failure_threshold
        self._reset_s = reset_s
        self._clock = clock
        self._failures = 0
        # None while closed; the rest of the state only matters while it is set.
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    @property
    def state(self) -> State:
        """The current state; open turns half-open by itself once ``reset_s`` has passed."""
        opened_at = self._opened_at
        if opened_at is None:
            return State.CLOSED
        if self._trial_at is None and self._clock() < opened_at + self._reset_s:
            return State.OPEN
        return State.HALF_OPEN

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go ahead now; while half-open, only the one trial may."""
        if self._opened_at is None:
            return True
        now = self._clock()
        if now < self._next_trial_at():
            return False
        self._trial_at = now
        return True

    def retry_after(self) -> float:
        """Seconds until :meth:`allow` may let a call through; 0 when it would now."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._next_trial_at() - self._clock())

    def record_success(self) -> None:
        """Report a call the upstream answered: the breaker closes."""
        self._failures = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        """Report a failed call: count it while closed, reopen after a failed trial."""
        if self._opened_at is None:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open()
        elif self._trial_at is not None:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_at = None
        self._failures = 0

    def _next_trial_at(self) -> float:
        assert self._opened_at is not None
        since = self._opened_at if self._trial_at is None else self._trial_at
        return since + self._reset_s
