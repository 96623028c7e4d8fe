"""Prometheus metrics of the service, in a registry owned by one app instance.

Contract with the pipeline (names and labels are relied upon; do not rename):

- ``inferops_requests_total{route,status}`` and
  ``inferops_request_duration_seconds{route,status}``: every HTTP request, ``status`` the
  response code as a string, duration until the last byte (streams included).
- ``inferops_time_to_first_token_seconds{route}`` and
  ``inferops_time_per_output_token_seconds{route}``: successful completions.
- ``inferops_input_tokens_total{route}``, ``inferops_output_tokens_total{route}``,
  ``inferops_cost_usd_total{route}``: completed completions.
- ``inferops_inflight_requests``: HTTP requests being served.
- ``inferops_shed_requests_total``: API requests shed (503) above ``limits.max_inflight``.
- ``inferops_simulator_active_sequences`` and ``inferops_simulator_queued_requests``: the
  simulated batch, read at scrape time.
- ``inferops_auth_failures_total{reason}``: requests refused for their API key, ``reason``
  ``missing`` or ``invalid``.
- ``inferops_rate_limited_total{key}``: requests refused by a rate limit, by key *name*
  (the configured keys bound the label's values).
- ``inferops_pii_detected_total{kind}``: findings in prompts, by kind (``email``,
  ``phone``, ``credit_card``, ``iban``, ``ssn``, ``ip_address``, ``api_key``).
- ``inferops_redis_errors_total{concern}``: Redis calls that failed, by the concern that
  made them (``auth`` for rate limits, ``cache`` for the response cache).
- ``inferops_cache_requests_total{kind,result}``: chat requests by what each enabled cache
  ``kind`` (``exact``, ``semantic``) did for them: ``hit``, ``miss``, ``bypass`` (not
  looked up: ``Cache-Control``, temperature, not eligible, Redis recently down) or
  ``error`` (Redis failed the lookup).
- ``inferops_cache_saved_usd_total{kind}``: what the answers served from the cache cost
  when they were generated, by the kind that found them.
- ``inferops_cache_semantic_entries``: live entries in this replica's semantic index.
- ``inferops_audit_write_errors_total``: audit records that could not be written.
- ``inferops_upstream_requests_total{outcome}`` (``openai`` backend only): calls to the
  upstream by outcome: ``ok``, ``error`` (it answered an error or broke off),
  ``timeout``, ``unavailable`` (unreachable after retries), ``circuit_open`` (refused
  without calling) and ``retried`` (each retry, counted besides the final outcome).
- ``inferops_upstream_circuit_open`` (``openai`` backend only): 1 from the circuit breaker
  opening until a trial call succeeds, read at scrape time.

``route`` is a route template such as ``/v1/chat/completions``, or ``other``. Version and
track are not labels here: the platform attaches them when it scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inferops_service import pii
from inferops_service.auth import REASONS

CHAT_ROUTE = "/v1/chat/completions"
OTHER_ROUTE = "other"
CACHE_KINDS = ("exact", "semantic")
CACHE_RESULTS = ("hit", "miss", "bypass", "error")
UPSTREAM_OUTCOMES = ("ok", "error", "timeout", "unavailable", "circuit_open", "retried")

LATENCY_BUCKETS = (
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8,
    1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
)  # fmt: skip
TOKEN_BUCKETS = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04,
    0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
)  # fmt: skip


class ServiceMetrics:
    """The service's metric families, registered in their own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.requests = Counter(
            "inferops_requests", "HTTP requests answered.", ["route", "status"], registry=r
        )
        self.duration = Histogram(
            "inferops_request_duration_seconds",
            "Time from request to the last byte of the response.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "inferops_time_to_first_token_seconds",
            "Time from request to the first output token, queueing included.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "inferops_time_per_output_token_seconds",
            "Mean time per output token after the first, per request.",
            ["route"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.input_tokens = Counter(
            "inferops_input_tokens", "Prompt tokens processed.", ["route"], registry=r
        )
        self.output_tokens = Counter(
            "inferops_output_tokens", "Output tokens generated.", ["route"], registry=r
        )
        self.cost = Counter(
            "inferops_cost_usd", "Cost of the tokens processed, in USD.", ["route"], registry=r
        )
        self.inflight = Gauge(
            "inferops_inflight_requests", "HTTP requests in progress.", registry=r
        )
        self.shed = Counter(
            "inferops_shed_requests",
            "API requests refused with 503 because too many were in flight.",
            registry=r,
        )
        self.active_sequences = Gauge(
            "inferops_simulator_active_sequences", "Sequences in the simulated batch.", registry=r
        )
        self.queued_requests = Gauge(
            "inferops_simulator_queued_requests", "Requests waiting for a batch slot.", registry=r
        )
        self.auth_failures = Counter(
            "inferops_auth_failures",
            "Requests refused for a missing or invalid API key.",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "inferops_rate_limited",
            "Requests refused by a rate limit, by key name.",
            ["key"],
            registry=r,
        )
        self.pii_detected = Counter(
            "inferops_pii_detected",
            "Personal data and secrets found in prompts, by kind.",
            ["kind"],
            registry=r,
        )
        self.redis_errors = Counter(
            "inferops_redis_errors",
            "Redis calls that failed, by the concern that made them.",
            ["concern"],
            registry=r,
        )
        self.audit_write_errors = Counter(
            "inferops_audit_write_errors", "Audit records that could not be written.", registry=r
        )
        self.cache_requests = Counter(
            "inferops_cache_requests",
            "Chat requests by what each enabled response cache kind did for them.",
            ["kind", "result"],
            registry=r,
        )
        self.cache_saved = Counter(
            "inferops_cache_saved_usd",
            "Generation cost of the answers served from the cache, in USD.",
            ["kind"],
            registry=r,
        )
        self.cache_entries = Gauge(
            "inferops_cache_semantic_entries",
            "Live entries in this replica's semantic cache index.",
            registry=r,
        )
        self._cache_children: dict[tuple[str, str], Counter] = {}
        self._saved_children: dict[str, Counter] = {}
        # Label lookups take a lock and validate names; cache the children on the hot path.
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._completion_children: dict[str, _CompletionSeries] = {}
        # Zero series from the start, so "no errors yet" reads as 0 rather than as no data.
        for status in (200, 500):
            self._request_child(CHAT_ROUTE, status)
        self._completion_child(CHAT_ROUTE)
        self._pii_children = {kind: self.pii_detected.labels(kind) for kind in pii.KINDS}
        self._auth_children = {reason: self.auth_failures.labels(reason) for reason in REASONS}
        self._limited_children: dict[str, Counter] = {}
        # Registered by enable_upstream, so only an openai backend's service exports them.
        self.upstream_requests: Counter | None = None
        self.upstream_circuit_open: Gauge | None = None
        self._upstream_children: dict[str, Counter] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and its duration."""
        count, duration = self._request_child(route, status)
        count.inc()
        duration.observe(seconds)

    def observe_completion(
        self,
        route: str,
        *,
        ttft_seconds: float,
        tpot_seconds: float | None,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
    ) -> None:
        """Record the timing, tokens and cost of one completed generation."""
        series = self._completion_child(route)
        series.ttft.observe(ttft_seconds)
        if tpot_seconds is not None:
            series.tpot.observe(tpot_seconds)
        series.input_tokens.inc(input_tokens)
        series.output_tokens.inc(output_tokens)
        series.cost.inc(cost_usd)

    def count_pii(self, found: Mapping[str, int]) -> None:
        """Count the findings of one prompt, by kind."""
        for kind, count in found.items():
            self._pii_children[kind].inc(count)

    def count_auth_failure(self, reason: str) -> None:
        """Count one request refused for its API key."""
        self._auth_children[reason].inc()

    def count_rate_limited(self, key_name: str) -> None:
        """Count one request refused by a rate limit of the named key."""
        child = self._limited_children.get(key_name)
        if child is None:
            child = self._limited_children[key_name] = self.rate_limited.labels(key_name)
        child.inc()

    def enable_cache(self, kinds: tuple[str, ...]) -> None:
        """Create the cache series of the enabled kinds, at 0."""
        for kind in kinds:
            for result in CACHE_RESULTS:
                self._cache_children[(kind, result)] = self.cache_requests.labels(kind, result)
            self._saved_children[kind] = self.cache_saved.labels(kind)

    def count_cache(self, kind: str, result: str) -> None:
        """Count what one cache kind did for one request."""
        self._cache_children[(kind, result)].inc()

    def count_cache_saved(self, kind: str, usd: float) -> None:
        """Add the generation cost of one answer served from the cache."""
        self._saved_children[kind].inc(usd)

    def track_batch(self, active: Callable[[], float], queued: Callable[[], float]) -> None:
        """Read the simulated batch's occupancy and queue from these callables at scrape time."""
        self.active_sequences.set_function(active)
        self.queued_requests.set_function(queued)

    def enable_upstream(self, circuit_open: Callable[[], float]) -> None:
        """Register the upstream series, at 0, and read the breaker state at scrape time."""
        if self.upstream_requests is None:
            self.upstream_requests = Counter(
                "inferops_upstream_requests",
                "Calls to the upstream model server, by outcome; retried counts each retry.",
                ["outcome"],
                registry=self.registry,
            )
            self.upstream_circuit_open = Gauge(
                "inferops_upstream_circuit_open",
                "1 from the upstream circuit breaker opening until a trial call succeeds.",
                registry=self.registry,
            )
            self._upstream_children = {
                outcome: self.upstream_requests.labels(outcome) for outcome in UPSTREAM_OUTCOMES
            }
        assert self.upstream_circuit_open is not None
        self.upstream_circuit_open.set_function(circuit_open)

    def upstream_counter(self, outcome: str) -> Counter:
        """Return the counter of one upstream outcome, bound once by the caller."""
        return self._upstream_children[outcome]

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def _request_child(self, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (route, status)
        child = self._request_children.get(key)
        if child is None:
            code = str(status)
            child = (self.requests.labels(route, code), self.duration.labels(route, code))
            self._request_children[key] = child
        return child

    def _completion_child(self, route: str) -> _CompletionSeries:
        child = self._completion_children.get(route)
        if child is None:
            child = _CompletionSeries(
                ttft=self.ttft.labels(route),
                tpot=self.tpot.labels(route),
                input_tokens=self.input_tokens.labels(route),
                output_tokens=self.output_tokens.labels(route),
                cost=self.cost.labels(route),
            )
            self._completion_children[route] = child
        return child


@dataclass(frozen=True, slots=True)
class _CompletionSeries:
    ttft: Histogram
    tpot: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter
