"""Per-request samples of one track, and the LLM metrics derived from them.

A ``SampleSet`` holds one track's requests as columns (numpy arrays, one
element per request, ``NaN`` where a field is missing). It is built from the
load generator's rows (``ts, latency_s, ttft_s, status, track, version,
output_tokens, ok``, optionally ``input_tokens, cost_usd, tpot_s, prompt_chars``) or
from arrays. Nothing here reads files.

``prompt_chars`` is the size of the request as the client sent it (the
characters of its messages), known before the request is routed: neither
version can change it, so comparisons may adjust for it (a prompt's length
drives its prefill time) without hiding a regression.

Derived per-request metrics, over successful requests only (a failed request's
latency says nothing about the version's speed; failures are judged by the
error rate):

- ``latency_s``, ``ttft_s``;
- ``tpot_s``: time per output token after the first, taken from the sample
  when present, else ``(latency - ttft) / (output_tokens - 1)``;
- ``latency_per_token_s``: latency normalised by output length;
- ``output_tokens``; ``output_tokens_per_s``: a request's output tokens over
  its latency.

Track-level figures: error rate (share of requests not ``ok``), goodput (share
of requests that are ok and within every latency limit given), cost per 1K
requests and per 1M output tokens (from ``cost_usd``, else from a
``CostModel``), output tokens/s over the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from inferops.analysis.evidence import WindowStats
from inferops.analysis.spec import CostModel, PerRequest

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_FLOAT_COLUMNS = (
    "latency_s",
    "ttft_s",
    "output_tokens",
    "input_tokens",
    "cost_usd",
    "tpot_s",
    "prompt_chars",
)


class SampleError(ValueError):
    """Samples are malformed; the message names the row and the field."""


@dataclass(frozen=True)
class Sample:
    """One request as the load generator records it."""

    ts: float
    latency_s: float
    ok: bool
    status: int = 200
    ttft_s: float | None = None
    output_tokens: int | None = None
    input_tokens: int | None = None
    cost_usd: float | None = None
    tpot_s: float | None = None
    track: str | None = None
    prompt_chars: int | None = None


def _floats(values: Iterable[Any]) -> FloatArray:
    return np.array(
        [math.nan if v is None or v == "" else float(v) for v in values], dtype=np.float64
    )


@dataclass(frozen=True, eq=False)
class SampleSet:
    """One track's requests as columns; every array has one element per request."""

    track: str
    ts: FloatArray
    latency_s: FloatArray
    ok: BoolArray
    status: npt.NDArray[np.int64]
    ttft_s: FloatArray
    output_tokens: FloatArray
    input_tokens: FloatArray
    cost_usd: FloatArray
    tpot_s: FloatArray
    prompt_chars: FloatArray
    """The request's size as the client sent it (characters of its messages)."""

    def __post_init__(self) -> None:
        n = len(self.ts)
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.shape != (n,):
                raise SampleError(
                    f"track {self.track}: column {f.name} has shape {value.shape}, expected ({n},)"
                )

    @classmethod
    def from_columns(
        cls,
        track: str,
        *,
        ts: npt.ArrayLike,
        latency_s: npt.ArrayLike,
        ok: npt.ArrayLike,
        status: npt.ArrayLike | None = None,
        ttft_s: npt.ArrayLike | None = None,
        output_tokens: npt.ArrayLike | None = None,
        input_tokens: npt.ArrayLike | None = None,
        cost_usd: npt.ArrayLike | None = None,
        tpot_s: npt.ArrayLike | None = None,
        prompt_chars: npt.ArrayLike | None = None,
    ) -> SampleSet:
        """Build from arrays; a missing column is all ``NaN`` (status: 200 if ok, else 500)."""
        times = np.asarray(ts, dtype=np.float64)
        good = np.asarray(ok, dtype=np.bool_)
        n = len(times)

        def column(values: npt.ArrayLike | None) -> FloatArray:
            if values is None:
                return np.full(n, math.nan)
            return np.asarray(values, dtype=np.float64)

        codes = (
            np.where(good, 200, 500).astype(np.int64)
            if status is None
            else np.asarray(status, dtype=np.int64)
        )
        return cls(
            track,
            times,
            column(latency_s),
            good,
            codes,
            column(ttft_s),
            column(output_tokens),
            column(input_tokens),
            column(cost_usd),
            column(tpot_s),
            column(prompt_chars),
        )

    @classmethod
    def from_records(cls, rows: Sequence[Mapping[str, Any]], track: str) -> SampleSet:
        """Build from the load generator's rows (dicts), checking the required fields."""
        for i, row in enumerate(rows, start=1):
            for key in ("ts", "latency_s", "ok"):
                if row.get(key) is None:
                    raise SampleError(
                        f"sample {i} has no {key!r}: every request needs ts, latency_s and ok"
                    )
        try:
            columns = {name: _floats(r.get(name) for r in rows) for name in _FLOAT_COLUMNS}
            ok = np.array([_truthy(r["ok"]) for r in rows], dtype=np.bool_)
            status = np.array(
                [
                    int(float(r["status"])) if r.get("status") not in (None, "") else -1
                    for r in rows
                ],
                dtype=np.int64,
            )
            ts = _floats(r["ts"] for r in rows)
        except (TypeError, ValueError) as exc:
            raise SampleError(f"track {track}: a sample field is not a number: {exc}") from None
        status = np.where(status < 0, np.where(ok, 200, 500), status)
        return cls(track, ts, ok=ok, status=status, **columns)

    @classmethod
    def from_samples(cls, samples: Iterable[Sample], track: str) -> SampleSet:
        """Build from ``Sample`` objects."""
        rows = [{f.name: getattr(s, f.name) for f in fields(Sample)} for s in samples]
        return cls.from_records(rows, track)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def requests(self) -> int:
        """Requests in the set."""
        return len(self.ts)

    @property
    def errors(self) -> int:
        """Requests that were not ok."""
        return int(np.count_nonzero(~self.ok))

    def select(self, mask: BoolArray) -> SampleSet:
        """The requests where ``mask`` is true."""
        return SampleSet(
            self.track,
            *(getattr(self, f.name)[mask] for f in fields(self) if f.name != "track"),
        )

    @classmethod
    def concat(cls, sets: Sequence[SampleSet], track: str) -> SampleSet:
        """One set holding the requests of ``sets`` in order."""
        if not sets:
            return cls.from_columns(track, ts=[], latency_s=[], ok=[])
        if len(sets) == 1:
            return replace(sets[0], track=track)
        return cls(
            track,
            *(
                np.concatenate([getattr(s, f.name) for s in sets])
                for f in fields(cls)
                if f.name != "track"
            ),
        )

    def head(self, n: int) -> SampleSet:
        """The first ``n`` requests, as views (no copy)."""
        return SampleSet(
            self.track, *(getattr(self, f.name)[:n] for f in fields(self) if f.name != "track")
        )

    def between(self, start: float, end: float = math.inf) -> SampleSet:
        """Requests that started in ``[start, end)``: how warm-up is left out."""
        return self.select((self.ts >= start) & (self.ts < end))

    def window(self) -> tuple[float, float] | None:
        """First start and last end of the requests, or None without requests."""
        if not len(self):
            return None
        return float(self.ts.min()), float(np.nanmax(self.ts + self.latency_s))

    def rate_rps(self) -> float | None:
        """Requests per second over the window, or None when it cannot be told."""
        span = self.window()
        if span is None or span[1] <= span[0]:
            return None
        return len(self) / (span[1] - span[0])

    def per_request(self, metric: str) -> FloatArray:
        """A per-request metric over successful requests where it is defined."""
        values = self._over_ok(metric)
        return values[np.isfinite(values)]

    def per_request_sized(self, metric: str) -> tuple[FloatArray, FloatArray] | None:
        """``per_request(metric)`` with each request's ``prompt_chars``, or None.

        None unless every one of those requests carries its size: a comparison adjusts
        for the size on all its requests or on none.
        """
        values = self._over_ok(metric)
        known = np.isfinite(values)
        sizes = self.prompt_chars[self.ok][known]
        if not len(sizes) or not bool(np.all(np.isfinite(sizes) & (sizes > 0))):
            return None
        return values[known], sizes

    def _over_ok(self, metric: str) -> FloatArray:
        """A per-request metric over successful requests (NaN where it is undefined)."""
        ok = self.ok
        latency = self.latency_s
        tokens = self.output_tokens
        if metric == "latency_s":
            values = latency[ok]
        elif metric == "ttft_s":
            values = self.ttft_s[ok]
        elif metric == "tpot_s":
            values = self.tpot()[ok]
        elif metric == "latency_per_token_s":
            values = np.divide(
                latency[ok], tokens[ok], out=np.full(int(ok.sum()), math.nan), where=tokens[ok] >= 1
            )
        elif metric == "output_tokens":
            values = tokens[ok]
        elif metric == "output_tokens_per_s":
            values = np.divide(
                tokens[ok], latency[ok], out=np.full(int(ok.sum()), math.nan), where=latency[ok] > 0
            )
        else:
            raise KeyError(f"{metric} is not a per-request metric")
        return values

    def tpot(self) -> FloatArray:
        """Time per output token after the first, per request (NaN where unknown)."""
        decode = self.latency_s - self.ttft_s
        steps = self.output_tokens - 1
        derived = np.divide(
            decode,
            steps,
            out=np.full(len(self), math.nan),
            where=(steps >= 1) & np.isfinite(decode),
        )
        return np.where(np.isfinite(self.tpot_s), self.tpot_s, derived)

    def bad_for_goodput(self, within: Mapping[PerRequest, float]) -> BoolArray:
        """Per judged request, whether it is bad: failed, or over one of the limits."""
        judged = np.ones(len(self), dtype=np.bool_)
        over = np.zeros(len(self), dtype=np.bool_)
        for metric, limit in within.items():
            values = self.tpot() if metric == "tpot_s" else getattr(self, metric)
            known = np.isfinite(values)
            # A successful request without the figure cannot be called good or bad.
            judged &= known | ~self.ok
            over |= known & (values > limit)
        bad: BoolArray = (~self.ok | over)[judged]
        return bad

    def costs(self, model: CostModel | None) -> FloatArray:
        """Per-request cost in USD: the sample's, else priced by ``model``, else NaN."""
        if model is None:
            return self.cost_usd
        priced = (
            model.usd_per_request
            + np.nan_to_num(self.input_tokens) * model.usd_per_1m_input_tokens / 1e6
            + np.nan_to_num(self.output_tokens) * model.usd_per_1m_output_tokens / 1e6
        )
        return np.where(np.isfinite(self.cost_usd), self.cost_usd, priced)

    def window_stats(self, window_s: float | None = None) -> WindowStats:
        """The same figures a metrics backend would report for this track."""
        span = self.window()
        latency = np.sort(self.per_request("latency_s"))
        ttft = np.sort(self.per_request("ttft_s"))
        tokens = self.output_tokens[np.isfinite(self.output_tokens)]
        cost = self.cost_usd[np.isfinite(self.cost_usd)]
        return WindowStats(
            track=self.track,
            window_s=window_s if window_s is not None else (span[1] - span[0] if span else 0.0),
            requests=float(len(self)),
            errors=float(self.errors),
            latency_p50_s=quantile(latency, 0.50),
            latency_p95_s=quantile(latency, 0.95),
            latency_p99_s=quantile(latency, 0.99),
            ttft_p95_s=quantile(ttft, 0.95),
            output_tokens=float(tokens.sum()) if len(tokens) else None,
            cost_usd=float(cost.sum()) if len(cost) else None,
        )

    def summary(self, cost: CostModel | None = None) -> dict[str, float | int | None]:
        """Point figures of the track: what a human reads next to the verdict."""
        out: dict[str, float | int | None] = {
            "requests": len(self),
            "error_rate": self.errors / len(self) if len(self) else None,
        }
        for metric in ("latency_s", "ttft_s", "tpot_s"):
            values = np.sort(self.per_request(metric))
            for q in (0.50, 0.95, 0.99):
                out[f"{metric.removesuffix('_s')}_p{round(q * 100)}_s"] = quantile(values, q)
        tokens = self.output_tokens[np.isfinite(self.output_tokens)]
        out["output_tokens_mean"] = float(tokens.mean()) if len(tokens) else None
        span = self.window()
        seconds = span[1] - span[0] if span else 0.0
        out["output_tokens_per_s"] = float(tokens.sum()) / seconds if seconds > 0 else None
        out["cost_per_1k_requests_usd"] = cost_per_1k_requests(self.costs(cost))
        out["cost_per_1m_output_tokens_usd"] = cost_per_1m_tokens(
            self.costs(cost), self.output_tokens
        )
        return out


def cost_per_1k_requests(costs: FloatArray) -> float | None:
    """Mean cost of the requests with a known cost, per 1,000 requests."""
    known = costs[np.isfinite(costs)]
    return float(known.mean() * 1000) if len(known) else None


def cost_per_1m_tokens(costs: FloatArray, tokens: FloatArray) -> float | None:
    """Total cost over total output tokens, per 1M tokens (requests with both known)."""
    both = np.isfinite(costs) & np.isfinite(tokens)
    total = float(tokens[both].sum())
    return float(costs[both].sum()) / total * 1e6 if total > 0 else None


def quantile(ordered: FloatArray, q: float) -> float | None:
    """Linear-interpolated quantile of sorted values (numpy's default), or None without values."""
    if not len(ordered):
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "ok")
    return bool(value)


def split_tracks(rows: Sequence[Mapping[str, Any]]) -> dict[str, SampleSet]:
    """Group mixed rows by their ``track`` field (``unknown`` where absent)."""
    by_track: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_track.setdefault(str(row.get("track") or "unknown"), []).append(row)
    return {track: SampleSet.from_records(group, track) for track, group in by_track.items()}
