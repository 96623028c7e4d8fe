"""Per-request samples: the load generator's rows, derived LLM metrics, track figures."""

import math

import numpy as np
import pytest

from inferops.analysis.samples import Sample, SampleError, SampleSet, split_tracks
from inferops.analysis.spec import CostModel

ROWS = [
    # The load generator's shape: ttft_s is null for non-streaming requests.
    {"ts": 0.0, "latency_s": 2.0, "ttft_s": 0.2, "status": 200, "track": "canary",
     "version": "abc", "output_tokens": 10, "ok": True},
    {"ts": 1.0, "latency_s": 4.0, "ttft_s": None, "status": 200, "track": "canary",
     "version": "abc", "output_tokens": 20, "ok": True},
    {"ts": 2.0, "latency_s": 0.1, "ttft_s": None, "status": 503, "track": "canary",
     "version": "abc", "output_tokens": None, "ok": False},
    {"ts": 3.0, "latency_s": 1.0, "ttft_s": 0.5, "status": 200, "track": "canary",
     "version": "abc", "output_tokens": 6, "ok": True, "tpot_s": 0.05,
     "input_tokens": 100, "cost_usd": 0.002},
]  # fmt: skip


def test_rows_of_the_load_generator_become_columns() -> None:
    s = SampleSet.from_records(ROWS, "canary")
    assert (s.requests, s.errors) == (4, 1)
    # From the first start to the last end (the second request ends at 1 + 4 s).
    assert s.window() == (0.0, 5.0)
    assert s.rate_rps() == 0.8
    assert math.isnan(s.ttft_s[1]) and math.isnan(s.output_tokens[2])


def test_per_request_metrics_use_successful_requests_only() -> None:
    s = SampleSet.from_records(ROWS, "canary")
    assert list(s.per_request("latency_s")) == [2.0, 4.0, 1.0]
    assert list(s.per_request("ttft_s")) == [0.2, 0.5]
    # (2.0 - 0.2) / (10 - 1) derived; the fourth row brings its own tpot_s.
    assert list(s.per_request("tpot_s")) == pytest.approx([0.2, 0.05])
    assert list(s.per_request("latency_per_token_s")) == pytest.approx([0.2, 0.2, 1 / 6])
    assert list(s.per_request("output_tokens_per_s")) == pytest.approx([5.0, 5.0, 6.0])
    with pytest.raises(KeyError, match="not a per-request metric"):
        s.per_request("error_rate")


def test_goodput_counts_failures_and_requests_over_a_limit() -> None:
    s = SampleSet.from_records(ROWS, "canary")
    # Row 2 has no TTFT: it can be neither good nor bad on a TTFT limit.
    bad = s.bad_for_goodput({"ttft_s": 0.3})
    assert list(bad) == [False, True, True]
    assert list(s.bad_for_goodput({"latency_s": 3.0})) == [False, True, True, False]


def test_costs_come_from_samples_or_the_price_list() -> None:
    s = SampleSet.from_records(ROWS, "canary")
    model = CostModel(usd_per_1m_output_tokens=1000.0, usd_per_request=0.001)
    costs = s.costs(model)
    assert costs == pytest.approx([0.011, 0.021, 0.001, 0.002])
    summary = s.summary(model)
    assert summary["cost_per_1k_requests_usd"] == pytest.approx(1000 * 0.035 / 4)
    assert summary["cost_per_1m_output_tokens_usd"] == pytest.approx(0.034 / 36 * 1e6)
    assert math.isnan(s.costs(None)[0])


def test_window_stats_are_what_a_metrics_backend_reports() -> None:
    stats = SampleSet.from_records(ROWS, "canary").window_stats()
    assert (stats.requests, stats.errors, stats.error_rate) == (4.0, 1.0, 0.25)
    assert stats.latency_p50_s == 2.0
    assert stats.output_tokens == 36.0
    assert stats.cost_usd == pytest.approx(0.002)


def test_csv_strings_and_sample_objects_are_accepted() -> None:
    text_rows = [
        {"ts": "0", "latency_s": "1.5", "ok": "true", "status": "", "ttft_s": ""},
        {"ts": "1", "latency_s": "0.5", "ok": "False", "status": "500", "ttft_s": "0.1"},
    ]
    s = SampleSet.from_records(text_rows, "stable")
    assert list(s.ok) == [True, False]
    assert list(s.status) == [200, 500]
    objects = SampleSet.from_samples([Sample(ts=0.0, latency_s=1.0, ok=True)], "canary")
    assert objects.requests == 1


def test_malformed_rows_say_which_and_what() -> None:
    with pytest.raises(SampleError, match="sample 2 has no 'latency_s'"):
        SampleSet.from_records([{"ts": 0, "latency_s": 1, "ok": True}, {"ts": 1, "ok": True}], "x")
    with pytest.raises(SampleError, match="not a number"):
        SampleSet.from_records([{"ts": "soon", "latency_s": 1, "ok": True}], "x")
    with pytest.raises(SampleError, match="column latency_s"):
        SampleSet.from_columns("x", ts=[0, 1], latency_s=[1.0], ok=[True, True])


def test_warm_up_is_left_out_by_time() -> None:
    s = SampleSet.from_records(ROWS, "canary")
    assert s.between(1.5).requests == 2
    assert s.head(2).requests == 2


def test_mixed_rows_split_by_track() -> None:
    rows = [*ROWS, {"ts": 0.5, "latency_s": 1.0, "ok": True, "track": "stable"}]
    tracks = split_tracks(rows)
    assert {k: v.requests for k, v in tracks.items()} == {"canary": 4, "stable": 1}


def test_an_empty_set_has_no_figures() -> None:
    empty = SampleSet.from_columns("canary", ts=np.zeros(0), latency_s=np.zeros(0), ok=[])
    assert empty.window() is None and empty.rate_rps() is None
    assert empty.window_stats().latency_p95_s is None
    assert empty.summary()["error_rate"] is None


def test_prompt_sizes_come_with_their_requests_or_not_at_all() -> None:
    rows = [{**r, "prompt_chars": 40 + i} for i, r in enumerate(ROWS)]
    values, sizes = SampleSet.from_records(rows, "canary").per_request_sized("ttft_s") or ((), ())
    assert list(values) == [0.2, 0.5] and list(sizes) == [40, 43]
    # One successful request without its size: no sizes at all, never a biased subset.
    rows[1] = {**rows[1], "prompt_chars": None}
    assert SampleSet.from_records(rows, "canary").per_request_sized("latency_s") is None
    assert SampleSet.from_records(ROWS, "canary").per_request_sized("ttft_s") is None
