"""PromQL for the service's metrics, kept apart from the backends that run it.

Contract:

- A ``QueryTemplate`` holds PromQL with ``$name`` placeholders (PromQL itself
  never uses ``$``). ``render`` is strict: a placeholder without a value raises
  ``QueryTemplateError`` naming every missing key; values are inserted
  verbatim, and keys nobody asked for are ignored.
- Values are built by the helpers here, never by string formatting at call
  sites: ``label_matchers`` validates label names and quotes label values as
  PromQL string literals, ``range_duration`` renders a window as whole seconds
  (rounded up, at least ``1s``), ``quantile_literal`` checks ``0 <= q <= 1``.
- ``window_queries`` renders everything ``WindowStats`` needs. Counts use
  ``increase``; quantiles use ``histogram_quantile`` over the increase of the
  buckets summed by ``le``. Latency counts only requests that did not fail with
  a 5xx, so a canary that fails fast cannot look faster.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from string import Template

from inferops.metrics.base import CHAT_ROUTE

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class QueryTemplateError(ValueError):
    """A template is malformed or was rendered without all of its values."""


@dataclass(frozen=True)
class QueryTemplate:
    """A named PromQL query with ``$key`` placeholders."""

    name: str
    text: str

    def __post_init__(self) -> None:
        if not Template(self.text).is_valid():
            raise QueryTemplateError(
                f"query template {self.name!r} has a malformed placeholder: {self.text!r}; "
                "placeholders are $key or ${key}, write a literal dollar as $$"
            )

    @property
    def keys(self) -> frozenset[str]:
        """The placeholder names this template needs."""
        return frozenset(Template(self.text).get_identifiers())

    def render(self, values: Mapping[str, str]) -> str:
        """Fill every placeholder from ``values``; raise listing any that are missing."""
        missing = sorted(self.keys - values.keys())
        if missing:
            raise QueryTemplateError(
                f"query template {self.name!r} is missing values for {', '.join(missing)}; "
                f"it needs {', '.join(sorted(self.keys))}"
            )
        return Template(self.text).substitute(values)


def promql_string(value: str) -> str:
    """Quote ``value`` as a PromQL double-quoted string literal."""
    # PromQL strings take Go's escapes; JSON's escapes (\" \\ \n \uXXXX ...) are a
    # subset of them, and ensure_ascii=False keeps non-ASCII text as it is.
    return json.dumps(value, ensure_ascii=False)


def label_matchers(labels: Mapping[str, str]) -> str:
    """Render ``labels`` as equality matchers: ``a="x",b="y"`` (no braces)."""
    parts = []
    for name, value in labels.items():
        if not _LABEL_NAME.fullmatch(name):
            raise QueryTemplateError(
                f"{name!r} is not a valid Prometheus label name; "
                "use letters, digits and underscores, not starting with a digit"
            )
        parts.append(f"{name}={promql_string(value)}")
    return ",".join(parts)


def range_duration(seconds: float) -> str:
    """Render a window as a PromQL range in whole seconds, rounded up, at least ``1s``."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise QueryTemplateError(
            f"a query window must be a positive number of seconds, not {seconds}"
        )
    return f"{max(1, math.ceil(seconds))}s"


def quantile_literal(q: float) -> str:
    """Render a quantile for ``histogram_quantile``; it must lie in [0, 1]."""
    if not 0.0 <= q <= 1.0:
        raise QueryTemplateError(f"a quantile must lie between 0 and 1, not {q}")
    return repr(float(q))


REQUESTS = QueryTemplate(
    "requests",
    "sum(increase(inferops_requests_total{$matchers}[$window]))",
)
ERRORS = QueryTemplate(
    "errors",
    'sum(increase(inferops_requests_total{$matchers,status=~"5.."}[$window]))',
)
LATENCY_QUANTILE = QueryTemplate(
    "latency_quantile",
    "histogram_quantile($quantile, sum by (le) (increase("
    'inferops_request_duration_seconds_bucket{$matchers,status!~"5.."}[$window])))',
)
TTFT_QUANTILE = QueryTemplate(
    "ttft_quantile",
    "histogram_quantile($quantile, sum by (le) (increase("
    "inferops_time_to_first_token_seconds_bucket{$matchers}[$window])))",
)
OUTPUT_TOKENS = QueryTemplate(
    "output_tokens",
    "sum(increase(inferops_output_tokens_total{$matchers}[$window]))",
)
COST_USD = QueryTemplate(
    "cost_usd",
    "sum(increase(inferops_cost_usd_total{$matchers}[$window]))",
)

COUNT_FIELDS = frozenset({"requests", "errors"})
"""``window_queries`` keys whose missing series mean zero rather than "no data"."""


def window_queries(selector: Mapping[str, str], window_s: float) -> dict[str, str]:
    """Render one query per ``WindowStats`` figure, keyed by the field it fills."""
    values = {
        "matchers": label_matchers({"route": CHAT_ROUTE, **selector}),
        "window": range_duration(window_s),
    }

    def quantile(template: QueryTemplate, q: float) -> str:
        return template.render({**values, "quantile": quantile_literal(q)})

    return {
        "requests": REQUESTS.render(values),
        "errors": ERRORS.render(values),
        "latency_p50_s": quantile(LATENCY_QUANTILE, 0.50),
        "latency_p95_s": quantile(LATENCY_QUANTILE, 0.95),
        "latency_p99_s": quantile(LATENCY_QUANTILE, 0.99),
        "ttft_p95_s": quantile(TTFT_QUANTILE, 0.95),
        "output_tokens": OUTPUT_TOKENS.render(values),
        "cost_usd": COST_USD.render(values),
    }
