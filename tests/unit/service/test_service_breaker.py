"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest
from inferops_service.backends.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, threshold: int = 3, reset_s: float = 10) -> CircuitBreaker:
    return CircuitBreaker(threshold, reset_s, clock)


def open_breaker(clock: Clock) -> CircuitBreaker:
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    assert b.state is State.OPEN
    return b


def test_starts_closed_and_allows_calls(clock: Clock) -> None:
    b = breaker(clock)
    assert b.state is State.CLOSED
    assert all(b.allow() for _ in range(100))
    assert b.retry_after() == 0


def test_opens_after_threshold_consecutive_failures(clock: Clock) -> None:
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state is State.CLOSED and b.failures == 2 and b.allow()
    b.record_failure()
    assert b.state is State.OPEN
    assert not b.allow()
    assert b.retry_after() == 10


def test_a_success_resets_the_count(clock: Clock) -> None:
    b = breaker(clock)
    for _ in range(5):
        b.record_failure()
        b.record_failure()
        b.record_success()
    assert b.state is State.CLOSED and b.failures == 0


def test_a_threshold_of_one_opens_on_the_first_failure(clock: Clock) -> None:
    b = breaker(clock, threshold=1)
    b.record_failure()
    assert b.state is State.OPEN


def test_stays_open_until_reset_s_then_lets_exactly_one_trial_through(clock: Clock) -> None:
    b = open_breaker(clock)
    clock.now += 9.5
    assert not b.allow()
    assert b.retry_after() == pytest.approx(0.5)
    clock.now += 0.5
    assert b.state is State.HALF_OPEN
    assert b.retry_after() == 0
    assert b.allow()
    assert not b.allow()
    assert not b.allow()
    assert b.state is State.HALF_OPEN


def test_a_successful_trial_closes_the_breaker(clock: Clock) -> None:
    b = open_breaker(clock)
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert b.state is State.CLOSED
    assert all(b.allow() for _ in range(10))
    # Closed again means counting from zero.
    b.record_failure()
    b.record_failure()
    assert b.state is State.CLOSED


def test_a_failed_trial_opens_it_again_for_reset_s(clock: Clock) -> None:
    b = open_breaker(clock)
    clock.now += 12
    assert b.allow()
    clock.now += 1
    b.record_failure()
    assert b.state is State.OPEN
    assert not b.allow()
    assert b.retry_after() == 10
    clock.now += 10
    assert b.allow()


def test_a_trial_that_never_reports_is_replaced_after_reset_s(clock: Clock) -> None:
    b = open_breaker(clock)
    clock.now += 10
    assert b.allow()
    clock.now += 9
    assert not b.allow()
    assert b.retry_after() == pytest.approx(1)
    clock.now += 1
    assert b.allow()
    assert not b.allow()


def test_late_failures_while_open_do_not_extend_the_wait(clock: Clock) -> None:
    b = open_breaker(clock)
    clock.now += 5
    b.record_failure()
    b.record_failure()
    assert b.retry_after() == 5
    clock.now += 5
    assert b.allow()


def test_any_success_closes_it(clock: Clock) -> None:
    b = open_breaker(clock)
    b.record_success()
    assert b.state is State.CLOSED and b.allow()


@pytest.mark.parametrize(("threshold", "reset_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_nonsense_settings_are_refused(threshold: int, reset_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, reset_s)


def test_uses_the_monotonic_clock_by_default() -> None:
    b = CircuitBreaker(1, 3600)
    b.record_failure()
    assert not b.allow()
    assert 3599 < b.retry_after() <= 3600
