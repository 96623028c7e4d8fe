"""The checks file: new fields, their defaults, and clear refusals."""

import pytest

from inferops.analysis.spec import SpecError, parse_spec


def test_directions_and_defaults() -> None:
    spec = parse_spec(
        {
            "checks": [
                {"metric": "goodput", "min": 0.95, "max_decrease": 0.0, "within": {"ttft_s": 0.5}},
                {"metric": "output_tokens_per_s", "min_ratio": 0.9},
                {"metric": "ttft_s", "max_ratio": 1.0},
                {"metric": "error_rate", "max_increase": 0.0},
                {"metric": "output_tokens", "direction": "decrease", "min_ratio": 0.8},
            ]
        }
    )
    goodput, rate, ttft, errors, tokens = spec.checks
    assert (goodput.bad, goodput.absolute, goodput.allowed_points) == ("decrease", 0.95, 0.0)
    assert rate.bad == "decrease" and rate.allowed_ratio == pytest.approx(1 / 0.9)
    assert (ttft.bad, ttft.worth) == ("increase", 0.10)
    assert errors.worth == 0.01
    assert tokens.bad == "decrease"
    assert (spec.false_rollback_rate, spec.missed_regression_rate, spec.failure_limit) == (
        0.01,
        0.05,
        3,
    )


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"metric": "latency_s", "max": 2.0}, "quantile such as latency_p95_s"),
        ({"metric": "goodput", "min": 0.9}, "goodput needs `within`"),
        ({"metric": "ttft_s", "max_ratio": 1.1, "within": {"ttft_s": 1}}, "only goodput"),
        ({"metric": "goodput", "max": 0.9, "within": {"ttft_s": 1}}, "a decrease is bad"),
        ({"metric": "output_tokens_per_s", "max_ratio": 1.1}, "a decrease is bad"),
        ({"metric": "goodput", "within": {"ttft_s": 1}}, "needs min, min_ratio or max_decrease"),
        ({"metric": "error_rate", "max": 2}, "strictly between 0 and 1"),
        ({"metric": "goodput", "min": 1.0, "within": {"ttft_s": 1}}, "strictly between 0 and 1"),
        ({"metric": "ttft_p95_s", "max_decrease": 0.1, "direction": "decrease"}, "min_ratio"),
        ({"metric": "ttft_s", "max_ratio": 1.0, "worth_detecting": 0}, "worth_detecting"),
    ],
)
def test_invalid_checks_are_refused(check: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({"checks": [check]})


def test_check_names_are_unique() -> None:
    twice = {"metric": "ttft_s", "max_ratio": 1.0}
    with pytest.raises(SpecError, match="unique names"):
        parse_spec({"checks": [twice, twice]})
    named = parse_spec({"checks": [twice, {**twice, "name": "ttft-hard", "max_ratio": 1.5}]})
    assert [c.label for c in named.checks] == ["ttft_s", "ttft-hard"]
