"""The metrics-provider interface the canary analysis reads evidence through.

Contract:

- ``run_query(query)`` runs one instant query in the backend's language and
  returns its single value; no sample raises ``NoValuesFound``, more than one
  raises ``MultipleValuesReturned``. A "not a number" answer comes back as
  ``float("nan")``.
- ``is_online()`` says whether the backend answers a trivial query; it never
  raises.
- ``window_stats(selector, window_s, at)`` aggregates the service's chat route
  for the series matching ``selector`` over the ``window_s`` seconds ending at
  ``at`` (unix time, default now). Missing data is ``None`` in the result (no
  traffic gives ``requests == 0`` and ``None`` quantiles), never an exception
  and never a zero latency.

Errors split by whether a retry can help: ``ProviderUnavailable`` is transient
(connection refused, timeouts, 5xx); ``QueryError`` is permanent (bad query,
4xx, a URL that is not the backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from inferops.analysis.evidence import WindowStats

CHAT_ROUTE = "/v1/chat/completions"
"""The route whose traffic ``window_stats`` aggregates unless the selector names another."""


class MetricsError(Exception):
    """Base of every error a metrics provider raises."""

    transient: bool = False
    """True when retrying the same call later may succeed."""

    def __init__(self, message: str, *, query: str | None = None) -> None:
        super().__init__(message)
        self.query = query


class NoValuesFound(MetricsError):
    """The query matched no series."""


class MultipleValuesReturned(MetricsError):
    """The query matched more than one series where exactly one was expected."""


class ProviderUnavailable(MetricsError):
    """The backend could not be reached or failed on its side; retry later."""

    transient = True


class QueryError(MetricsError):
    """The backend rejected the query or the request; retrying will not help."""


@runtime_checkable
class MetricsProvider(Protocol):
    """A metrics backend the pipeline can query for canary evidence."""

    def run_query(self, query: str) -> float:
        """Run an instant query that must return exactly one sample."""
        ...

    def is_online(self) -> bool:
        """Say whether the backend answers queries."""
        ...

    def window_stats(
        self,
        selector: Mapping[str, str],
        window_s: float,
        at: float | None = None,
    ) -> WindowStats:
        """Aggregate the chat route's traffic matching ``selector`` over one window."""
        ...
