"""Readings of the service's Prometheus registry, and what changed between two of them.

Contract:

- :func:`read` takes every counter, gauge and histogram sample of a registry at one moment;
  ``_created`` samples are left out.
- :func:`summarise` turns three readings (the first one, the last one pushed, this one) into
  a :class:`Batch` of the metrics the exporters push, the same for every backend:

  ============================  ============  =====================================
  metric                        kind          labels
  ============================  ============  =====================================
  requests                      count         route (all statuses)
  errors                        count         route (status 5xx only; 0 when none)
  request_duration_seconds      distribution  route (all statuses merged)
  time_to_first_token_seconds   distribution  route
  input_tokens, output_tokens   count         route
  cost_usd                      count         route
  cache_hits, cache_saved_usd   count         route (the chat route), kind
  inflight_requests             gauge         none
  ============================  ============  =====================================

  A count carries its increase since the last push (``delta``) and since the first reading
  (``total``); a distribution likewise as histograms; a gauge its current value in both.
  A counter that went down was reset, and counts from zero again.
- Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from prometheus_client import CollectorRegistry

from inferops_service.metrics import CHAT_ROUTE

Labels = tuple[tuple[str, str], ...]
Key = tuple[str, Labels]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Bucketed observations: ``counts[i]`` fell at or under ``bounds[i]``, above the one before.

    ``counts`` has one more entry than ``bounds``: the observations above the last bound.
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    sum: float

    @property
    def count(self) -> float:
        """How many observations there are."""
        return math.fsum(self.counts)

    @property
    def mean(self) -> float:
        """The exact mean of the observations, 0 when there are none."""
        count = self.count
        return self.sum / count if count else 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        """Return the observations made since ``earlier``; all of them after a reset."""
        if earlier is None or earlier.bounds != self.bounds:
            return self
        counts = tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True))
        if any(c < 0 for c in counts):
            return self
        return Histogram(self.bounds, counts, self.sum - earlier.sum)

    def plus(self, other: Histogram) -> Histogram:
        """Return the observations of both histograms, which share their bounds."""
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.sum + other.sum)

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q`` quantile as Prometheus' ``histogram_quantile`` does; None if empty."""
        total = self.count
        if not total:
            return None
        rank = q * total
        seen = 0.0
        for i, count in enumerate(self.counts):
            if seen + count >= rank and count > 0:
                if i == len(self.bounds):
                    # Above the last bound nothing is known but that bound.
                    return self.bounds[-1]
                lower = self.bounds[i - 1] if i > 0 else min(0.0, self.bounds[0])
                return lower + (self.bounds[i] - lower) * (rank - seen) / count
            seen += count
        return self.bounds[-1]

    def representatives(self) -> list[tuple[float, float]]:
        """Return (value, count) for each non-empty bucket, the value being its midpoint.

        The bucket above the last bound is represented by that bound.
        """
        pairs = []
        for i, count in enumerate(self.counts):
            if count <= 0:
                continue
            if i == len(self.bounds):
                value = self.bounds[-1]
            else:
                lower = self.bounds[i - 1] if i > 0 else min(0.0, self.bounds[0])
                value = (lower + self.bounds[i]) / 2
            pairs.append((value, count))
        return pairs

    def squared_deviation(self) -> float:
        """Estimate the sum of squared deviations from the mean, from the bucket midpoints."""
        mean = self.mean
        return math.fsum(count * (value - mean) ** 2 for value, count in self.representatives())


@dataclass(frozen=True, slots=True)
class Reading:
    """Every sample of a registry at one moment (Unix seconds)."""

    at: float
    counters: Mapping[Key, float]
    gauges: Mapping[Key, float]
    histograms: Mapping[Key, Histogram]


class Kind(Enum):
    """How a pushed metric is to be read."""

    COUNT = "count"
    GAUGE = "gauge"
    DISTRIBUTION = "distribution"


@dataclass(frozen=True, slots=True)
class Point:
    """One pushed series: a metric, its labels and its values over the batch's windows."""

    metric: str
    kind: Kind
    unit: str
    labels: Labels
    delta: float = 0.0
    total: float = 0.0
    distribution: Histogram | None = None
    distribution_total: Histogram | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """What one push carries: ``start`` first reading, ``previous`` last push, ``end`` now."""

    start: float
    previous: float
    end: float
    points: tuple[Point, ...]


def read(registry: CollectorRegistry, at: float) -> Reading:
    """Take one reading of every counter, gauge and histogram in ``registry``."""
    counters: dict[Key, float] = {}
    gauges: dict[Key, float] = {}
    buckets: dict[Key, list[tuple[float, float]]] = {}
    sums: dict[Key, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if family.type == "counter" and sample.name == f"{family.name}_total":
                counters[(family.name, _labels(sample.labels))] = sample.value
            elif family.type == "gauge" and sample.name == family.name:
                gauges[(family.name, _labels(sample.labels))] = sample.value
            elif family.type == "histogram" and sample.name == f"{family.name}_bucket":
                labels = {k: v for k, v in sample.labels.items() if k != "le"}
                key = (family.name, _labels(labels))
                buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
            elif family.type == "histogram" and sample.name == f"{family.name}_sum":
                sums[(family.name, _labels(sample.labels))] = sample.value
    histograms = {
        key: _histogram(cumulative, sums.get(key, 0.0)) for key, cumulative in buckets.items()
    }
    return Reading(at, counters, gauges, histograms)


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _histogram(cumulative: list[tuple[float, float]], total: float) -> Histogram:
    cumulative.sort()
    bounds = tuple(bound for bound, _ in cumulative if not math.isinf(bound))
    counts = []
    below = 0.0
    for _, running in cumulative:
        counts.append(running - below)
        below = running
    if len(counts) == len(bounds):  # no +Inf bucket: nothing above the last bound
        counts.append(0.0)
    return Histogram(bounds, tuple(counts), total)


@dataclass(frozen=True, slots=True)
class _Spec:
    metric: str
    family: str
    unit: str
    by: tuple[str, ...]
    keep: Callable[[Mapping[str, str]], bool] | None = None
    fixed: Labels = ()


def _is_5xx(labels: Mapping[str, str]) -> bool:
    return labels.get("status", "").startswith("5")


def _is_hit(labels: Mapping[str, str]) -> bool:
    return labels.get("result") == "hit"


_CHAT = (("route", CHAT_ROUTE),)
COUNTS = (
    _Spec("requests", "inferops_requests", "count", ("route",)),
    _Spec("errors", "inferops_requests", "count", ("route",), keep=_is_5xx),
    _Spec("input_tokens", "inferops_input_tokens", "count", ("route",)),
    _Spec("output_tokens", "inferops_output_tokens", "count", ("route",)),
    _Spec("cost_usd", "inferops_cost_usd", "usd", ("route",)),
    _Spec("cache_hits", "inferops_cache_requests", "count", ("kind",), keep=_is_hit, fixed=_CHAT),
    _Spec("cache_saved_usd", "inferops_cache_saved_usd", "usd", ("kind",), fixed=_CHAT),
)
DISTRIBUTIONS = (
    _Spec("request_duration_seconds", "inferops_request_duration_seconds", "seconds", ("route",)),
    _Spec(
        "time_to_first_token_seconds", "inferops_time_to_first_token_seconds", "seconds", ("route",)
    ),
)
GAUGES = (_Spec("inflight_requests", "inferops_inflight_requests", "count", ()),)


def summarise(start: Reading, previous: Reading, current: Reading) -> Batch:
    """Return the pushed metrics: changes since ``previous`` and since ``start``."""
    points = [
        *_counts(start, previous, current),
        *_distributions(start, previous, current),
        *_gauges(current),
    ]
    return Batch(start.at, previous.at, current.at, tuple(points))


def _counts(start: Reading, previous: Reading, current: Reading) -> list[Point]:
    points: list[Point] = []
    for spec in COUNTS:
        sums: dict[Labels, tuple[float, float]] = {}
        for key, value in current.counters.items():
            family, labels = key
            if family != spec.family:
                continue
            raw = dict(labels)
            group = _group(spec, raw)
            delta, total = sums.get(group, (0.0, 0.0))
            if spec.keep is None or spec.keep(raw):
                delta += _increase(value, previous.counters.get(key))
                total += _increase(value, start.counters.get(key))
            sums[group] = (delta, total)
        points.extend(
            Point(spec.metric, Kind.COUNT, spec.unit, labels, delta=delta, total=total)
            for labels, (delta, total) in sorted(sums.items())
        )
    return points


def _distributions(start: Reading, previous: Reading, current: Reading) -> list[Point]:
    points: list[Point] = []
    for spec in DISTRIBUTIONS:
        merged: dict[Labels, tuple[Histogram, Histogram]] = {}
        for key, histogram in current.histograms.items():
            family, labels = key
            if family != spec.family:
                continue
            delta = histogram.minus(previous.histograms.get(key))
            total = histogram.minus(start.histograms.get(key))
            group = _group(spec, dict(labels))
            if group in merged:
                # Statuses merged: the latency of a route is that of all its answers.
                earlier_delta, earlier_total = merged[group]
                delta, total = earlier_delta.plus(delta), earlier_total.plus(total)
            merged[group] = (delta, total)
        points.extend(
            Point(
                spec.metric,
                Kind.DISTRIBUTION,
                spec.unit,
                labels,
                delta=delta.count,
                total=total.count,
                distribution=delta,
                distribution_total=total,
            )
            for labels, (delta, total) in sorted(merged.items())
        )
    return points


def _gauges(current: Reading) -> list[Point]:
    points: list[Point] = []
    for spec in GAUGES:
        for (family, labels), value in sorted(current.gauges.items()):
            if family == spec.family:
                group = _group(spec, dict(labels))
                points.append(Point(spec.metric, Kind.GAUGE, spec.unit, group, value, value))
    return points


def _group(spec: _Spec, labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((*spec.fixed, *((name, labels.get(name, "")) for name in spec.by))))


def _increase(value: float, earlier: float | None) -> float:
    if earlier is None or value < earlier:
        return value
    return value - earlier
