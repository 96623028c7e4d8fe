"""CloudWatch: the PutMetricData entries and the embedded metric format lines.

The API itself is exercised against moto in tests/integration/service/test_service_exporters.py.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from inferops_service.metrics import CHAT_ROUTE, ServiceMetrics
from inferops_service.telemetry.exporters.base import Identity
from inferops_service.telemetry.exporters.cloudwatch import EmfExporter, metric_data
from inferops_service.telemetry.readings import Batch, read, summarise

IDENTITY = Identity("sim-llama", "1.2.3", "canary")
NAMESPACE = "Inferops/Test"
START, END = 1_800_000_000.0, 1_800_000_060.0
DIMENSIONS = ["Model", "Version", "Track", "Route"]


def filled_batch() -> Batch:
    metrics = ServiceMetrics()
    metrics.enable_cache(("exact",))
    start = read(metrics.registry, START)
    for seconds, status in ((0.1, 200), (0.12, 200), (0.7, 500)):
        metrics.observe_request(CHAT_ROUTE, status, seconds)
    metrics.observe_completion(
        CHAT_ROUTE,
        ttft_seconds=0.05,
        tpot_seconds=None,
        input_tokens=10,
        output_tokens=20,
        cost_usd=0.25,
    )
    metrics.count_cache("exact", "hit")
    return summarise(start, start, read(metrics.registry, END))


def datum(data: list[dict[str, Any]], name: str, **dims: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in data
        if d["MetricName"] == name
        and all({"Name": k, "Value": v} in d["Dimensions"] for k, v in dims.items())
    ]
    return found


def test_counts_are_single_values_with_the_four_dimensions() -> None:
    data = metric_data(filled_batch(), IDENTITY)
    requests = datum(data, "Requests", Route=CHAT_ROUTE)
    assert requests == {
        "MetricName": "Requests",
        "Dimensions": [
            {"Name": "Model", "Value": "sim-llama"},
            {"Name": "Version", "Value": "1.2.3"},
            {"Name": "Track", "Value": "canary"},
            {"Name": "Route", "Value": CHAT_ROUTE},
        ],
        "Timestamp": datetime.fromtimestamp(END, UTC),
        "Unit": "Count",
        "Value": 3.0,
    }
    assert datum(data, "Errors", Route=CHAT_ROUTE)["Value"] == 1
    assert datum(data, "CostUsd", Route=CHAT_ROUTE)["Unit"] == "None"
    assert datum(data, "CacheHits", CacheKind="exact")["Value"] == 1
    inflight = datum(data, "InflightRequests")
    assert [d["Name"] for d in inflight["Dimensions"]] == ["Model", "Version", "Track"]


def test_latency_is_sent_as_values_and_counts_so_cloudwatch_computes_percentiles() -> None:
    data = metric_data(filled_batch(), IDENTITY)
    latency = datum(data, "RequestDurationSeconds", Route=CHAT_ROUTE)
    assert latency["Unit"] == "Seconds"
    assert "Value" not in latency
    assert latency["Values"] == [pytest.approx(0.0875), pytest.approx(0.125), pytest.approx(0.725)]
    assert latency["Counts"] == [1, 1, 1]


def test_an_empty_distribution_is_left_out() -> None:
    metrics = ServiceMetrics()
    reading = read(metrics.registry, START)
    data = metric_data(summarise(reading, reading, reading), IDENTITY)
    assert not [d for d in data if d["MetricName"] == "RequestDurationSeconds"]
    assert datum(data, "Requests", Route=CHAT_ROUTE)["Value"] == 0


def test_emf_lines_declare_every_metric_they_carry() -> None:
    stream = io.StringIO()
    asyncio.run(EmfExporter(NAMESPACE, IDENTITY, stream).export(filled_batch()))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    (chat,) = [r for r in records if r.get("Route") == CHAT_ROUTE and "CacheKind" not in r]

    (directive,) = chat["_aws"]["CloudWatchMetrics"]
    assert chat["_aws"]["Timestamp"] == 1_800_000_060_000
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [DIMENSIONS]
    declared = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert declared["Requests"] == "Count"
    assert declared["RequestDurationSecondsP95"] == "Seconds"
    for name in declared:
        assert isinstance(chat[name], int | float), name
    assert (chat["Model"], chat["Version"], chat["Track"]) == ("sim-llama", "1.2.3", "canary")
    assert chat["Requests"] == 3
    assert chat["Errors"] == 1
    assert chat["OutputTokens"] == 20
    assert chat["RequestDurationSecondsP50"] == pytest.approx(0.125)
    assert 0.65 < chat["RequestDurationSecondsP99"] <= 0.8

    (cache,) = [r for r in records if "CacheKind" in r]
    (dimensions,) = cache["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions) == sorted([*DIMENSIONS, "CacheKind"])
    assert cache["CacheHits"] == 1
    (process,) = [r for r in records if "Route" not in r]
    assert process["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [DIMENSIONS[:3]]
    assert process["InflightRequests"] == 0
