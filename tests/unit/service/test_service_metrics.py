"""The metric families, names and buckets that the pipeline's queries rely on."""

from __future__ import annotations

from inferops_service.metrics import ServiceMetrics
from prometheus_client.parser import text_string_to_metric_families

CHAT = "/v1/chat/completions"
SPEC_LATENCY_BUCKETS = [
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8,
    1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 60,
]  # fmt: skip


def families(metrics: ServiceMetrics) -> dict[str, str]:
    text = metrics.exposition().decode()
    # The client also exports a "_created" timestamp per counter and histogram; not ours.
    parsed = text_string_to_metric_families(text)
    return {f.name: f.type for f in parsed if not f.name.endswith("_created")}


def bucket_bounds(metrics: ServiceMetrics, name: str, **labels: str) -> list[float]:
    text = metrics.exposition().decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    return [
        float(s.labels["le"])
        for s in family.samples
        if s.name.endswith("_bucket") and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_families_have_the_contract_names_and_types() -> None:
    assert families(ServiceMetrics()) == {
        "inferops_requests": "counter",
        "inferops_request_duration_seconds": "histogram",
        "inferops_time_to_first_token_seconds": "histogram",
        "inferops_time_per_output_token_seconds": "histogram",
        "inferops_input_tokens": "counter",
        "inferops_output_tokens": "counter",
        "inferops_cost_usd": "counter",
        "inferops_inflight_requests": "gauge",
        "inferops_shed_requests": "counter",
        "inferops_simulator_active_sequences": "gauge",
        "inferops_simulator_queued_requests": "gauge",
        "inferops_auth_failures": "counter",
        "inferops_rate_limited": "counter",
        "inferops_pii_detected": "counter",
        "inferops_redis_errors": "counter",
        "inferops_audit_write_errors": "counter",
        "inferops_cache_requests": "counter",
        "inferops_cache_saved_usd": "counter",
        "inferops_cache_semantic_entries": "gauge",
    }


def test_latency_histograms_use_the_agreed_buckets() -> None:
    metrics = ServiceMetrics()
    expected = [*SPEC_LATENCY_BUCKETS, float("inf")]
    route = {"route": CHAT}
    assert bucket_bounds(metrics, "inferops_request_duration_seconds", status="200", **route) == (
        expected
    )
    assert bucket_bounds(metrics, "inferops_time_to_first_token_seconds", **route) == expected
    token_bounds = bucket_bounds(metrics, "inferops_time_per_output_token_seconds", **route)
    assert token_bounds[0] == 0.001 and token_bounds[-2] == 0.5


def test_error_series_exist_at_zero_before_any_error() -> None:
    registry = ServiceMetrics().registry
    labels = {"route": CHAT, "status": "500"}
    assert registry.get_sample_value("inferops_requests_total", labels) == 0


def test_metrics_are_per_instance() -> None:
    a, b = ServiceMetrics(), ServiceMetrics()
    a.observe_request("/health", 200, 0.001)
    labels = {"route": "/health", "status": "200"}
    assert a.registry.get_sample_value("inferops_requests_total", labels) == 1
    assert b.registry.get_sample_value("inferops_requests_total", labels) is None


def test_batch_gauges_read_the_simulator_at_scrape_time() -> None:
    metrics = ServiceMetrics()
    state = {"active": 3.0}
    metrics.track_batch(lambda: state["active"], lambda: 7.0)
    assert metrics.registry.get_sample_value("inferops_simulator_active_sequences") == 3
    state["active"] = 5.0
    assert metrics.registry.get_sample_value("inferops_simulator_active_sequences") == 5
    assert metrics.registry.get_sample_value("inferops_simulator_queued_requests") == 7


def test_security_series_exist_at_zero_for_every_bounded_label() -> None:
    registry = ServiceMetrics().registry
    for kind in ("email", "phone", "credit_card", "iban", "ssn", "ip_address", "api_key"):
        assert registry.get_sample_value("inferops_pii_detected_total", {"kind": kind}) == 0
    for reason in ("missing", "invalid"):
        assert registry.get_sample_value("inferops_auth_failures_total", {"reason": reason}) == 0


def test_security_counters_count_by_label() -> None:
    metrics = ServiceMetrics()
    metrics.count_pii({"email": 2, "iban": 1})
    metrics.count_rate_limited("team-a")
    metrics.count_rate_limited("team-a")
    metrics.count_auth_failure("invalid")
    value = metrics.registry.get_sample_value
    assert value("inferops_pii_detected_total", {"kind": "email"}) == 2
    assert value("inferops_pii_detected_total", {"kind": "iban"}) == 1
    assert value("inferops_rate_limited_total", {"key": "team-a"}) == 2
    assert value("inferops_auth_failures_total", {"reason": "invalid"}) == 1
