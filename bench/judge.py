"""Benchmark: the sequential canary judge against Flagger-like and Kayenta-like judges.

Many simulated canaries (``bench.traffic``: heavy-tailed LLM latency that grows
with the answer's length, TTFT, tokens, errors) at 1, 10 and 100 req/s, for an
unchanged canary (A/A) and for injected regressions. Every judge sees the same
samples:

- ``sequential``: ``inferops.analysis.sample_judge.judge_samples`` with
  ``loadtests/checks/llm-canary.yaml``, looking at all samples so far every
  60/30/10 s at 1/10/100 req/s (it may look as often as one likes; these
  intervals keep the simulation quick), with the last look at the horizon
  marked final;
- ``flagger-5`` and ``flagger-1``: 1-minute intervals, success rate >= 99% and
  p99 latency below a threshold, rollback after 5 (and after 1) failed checks,
  promotion after 10 passing intervals. The p99 threshold is set as an SRE
  would from the stable's history at that traffic: the per-minute p99 that
  an unchanged version exceeds in 5% of minutes;
- ``kayenta``: one analysis after a 30-minute lifetime of per-minute error
  rate, mean latency and p99 latency (it cannot see TTFT or tokens).

Every canary runs until its judge decides or the 30-minute horizon ends
(``hold``). Reported per judge, rate and scenario: the false-rollback rate
(A/A), the detection rate (share of regressed canaries rolled back), and the
median and p90 minutes and canary requests to the right verdict (promotion
for A/A, rollback for regressions) among the canaries that reached it.

Run ``python -m bench.judge`` (``--help`` for the knobs). The last line of the
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from bench.rivals import HOLD, PROMOTE, ROLLBACK, FlaggerLike, KayentaLike, Outcomes
from bench.traffic import BASELINE, SCENARIOS, Block, Scenario, draw, minute_aggregates
from inferops.analysis.sample_judge import judge_samples
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import AnalysisSpec, parse_spec
from inferops.analysis.verdict import Decision, Verdict

CHECKS = Path(__file__).resolve().parent.parent / "loadtests" / "checks" / "llm-canary.yaml"
LOOK_S = {1: 60, 10: 30, 100: 10}
JUDGES = ("sequential", "flagger-5", "flagger-1", "kayenta")
_COLUMNS = ("ts", "latency_s", "ttft_s", "ok", "output_tokens", "input_tokens")


@dataclass(frozen=True)
class Cell:
    """One rate and scenario, simulated for ``canaries`` canaries."""

    rate: int
    scenario: int
    canaries: int
    seed: int
    horizon_min: int
    p99_threshold_s: float


@dataclass(frozen=True)
class Result:
    """Each judge's outcomes on one cell, with the canary requests at each verdict."""

    cell: Cell
    outcomes: dict[str, Outcomes]
    requests: dict[str, npt.NDArray[np.float64]]
    seconds: float


def load_spec(path: Path = CHECKS) -> AnalysisSpec:
    """The checks the sequential judge runs."""
    return parse_spec(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


class Sequential:
    """The sequential judge over many simulated canaries, each stopped at its verdict."""

    def __init__(self, canaries: int, spec: AnalysisSpec) -> None:
        self.spec = spec
        self.open = list(range(canaries))
        self.seen: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.previous: dict[int, Verdict] = {}
        self.decisions = np.full(canaries, HOLD, dtype=object)
        self.minutes = np.full(canaries, np.nan)
        self.requests = np.full(canaries, np.nan)

    def look(self, canary: Block, baseline: Block, cols: slice, minute: float, final: bool) -> None:
        """Add each open canary's new requests and judge all it has so far."""
        for i in list(self.open):
            mine, theirs = self.seen.get(i, ({}, {}))
            mine, theirs = _grow(mine, canary, i, cols), _grow(theirs, baseline, i, cols)
            self.seen[i] = (mine, theirs)
            verdict = judge_samples(
                SampleSet.from_columns("canary", **mine),
                SampleSet.from_columns("stable", **theirs),
                self.spec,
                final=final,
                previous=self.previous.get(i),
                # The same decisions without the effect intervals no decision reads.
                describe=False,
            )
            if verdict.decision is Decision.CONTINUE:
                self.previous[i] = verdict
                continue
            self.decisions[i] = verdict.decision.value
            if verdict.decision in (Decision.PROMOTE, Decision.ROLLBACK):
                self.minutes[i] = minute
                self.requests[i] = len(mine["ts"])
            self.open.remove(i)
            del self.seen[i]

    def outcomes(self) -> Outcomes:
        """Decisions and the minute each was taken."""
        return Outcomes(self.decisions.astype(str), self.minutes)


def _grow(have: dict[str, Any], block: Block, row: int, cols: slice) -> dict[str, Any]:
    new = {name: getattr(block, name)[row, cols] for name in _COLUMNS}
    if not have:
        return new
    return {name: np.concatenate((have[name], new[name])) for name in _COLUMNS}


def run_cell(cell: Cell) -> Result:
    """Simulate one cell minute by minute and let every judge decide on the same requests."""
    started = time.perf_counter()
    scenario = SCENARIOS[cell.scenario]
    rng = np.random.default_rng([cell.seed, cell.rate, cell.scenario])
    spec = load_spec()
    per_minute = cell.rate * 60
    look_s = LOOK_S.get(cell.rate, 30)
    per_look = cell.rate * look_s
    ours = Sequential(cell.canaries, spec)
    minutes_c: dict[str, list[npt.NDArray[np.float64]]] = {}
    minutes_b: dict[str, list[npt.NDArray[np.float64]]] = {}
    for minute in range(cell.horizon_min):
        canary = draw(rng, cell.canaries, per_minute, minute * 60.0, 60.0, scenario)
        baseline = draw(rng, cell.canaries, per_minute, minute * 60.0, 60.0, BASELINE)
        for name, values in minute_aggregates(canary).items():
            minutes_c.setdefault(name, []).append(values)
        for name, values in minute_aggregates(baseline).items():
            minutes_b.setdefault(name, []).append(values)
        for j in range(60 // look_s):
            if not ours.open:
                break
            final = minute == cell.horizon_min - 1 and j == 60 // look_s - 1
            cols = slice(j * per_look, (j + 1) * per_look)
            ours.look(canary, baseline, cols, minute + (j + 1) * look_s / 60, final)
    series_c = {k: np.stack(v, axis=1) for k, v in minutes_c.items()}
    series_b = {k: np.stack(v, axis=1) for k, v in minutes_b.items()}
    outcomes = {
        "sequential": ours.outcomes(),
        "flagger-5": FlaggerLike(5, cell.p99_threshold_s).run(series_c),
        "flagger-1": FlaggerLike(1, cell.p99_threshold_s).run(series_c),
        "kayenta": KayentaLike(lifetime_min=cell.horizon_min).run(series_c, series_b),
    }
    requests = {
        name: o.minutes * per_minute for name, o in outcomes.items() if name != "sequential"
    }
    requests["sequential"] = ours.requests
    return Result(cell, outcomes, requests, time.perf_counter() - started)


def p99_threshold(rate: int, seed: int, minutes: int = 1000) -> float:
    """The stable's per-minute p99 that an unchanged version exceeds in 5% of minutes."""
    rng = np.random.default_rng([seed, rate, 99])
    p99s = [
        minute_aggregates(draw(rng, 100, rate * 60, 0.0, 60.0, BASELINE))["latency_p99_s"]
        for _ in range(max(1, minutes // 100))
    ]
    return float(np.quantile(np.concatenate(p99s), 0.95))


def _stat(values: npt.NDArray[np.float64], q: float) -> float | None:
    return None if not len(values) else round(float(np.quantile(values, q)), 2)


def summarise(result: Result, judge: str) -> dict[str, Any]:
    """The figures of one judge on one cell."""
    scenario: Scenario = SCENARIOS[result.cell.scenario]
    o = result.outcomes[judge]
    right = ROLLBACK if scenario.regression else PROMOTE
    hit = o.decisions == right
    rolled = float(np.mean(o.decisions == ROLLBACK))
    return {
        "judge": judge,
        "rate_rps": result.cell.rate,
        "scenario": scenario.name,
        "canaries": result.cell.canaries,
        "false_rollback_rate": None if scenario.regression else round(rolled, 4),
        "detection_rate": round(rolled, 4) if scenario.regression else None,
        "promote_rate": round(float(np.mean(o.decisions == PROMOTE)), 4),
        "hold_rate": round(float(np.mean(o.decisions == HOLD)), 4),
        "minutes_to_verdict_median": _stat(o.minutes[hit], 0.5),
        "minutes_to_verdict_p90": _stat(o.minutes[hit], 0.9),
        "requests_to_verdict_median": _stat(result.requests[judge][hit], 0.5),
        "requests_to_verdict_p90": _stat(result.requests[judge][hit], 0.9),
    }


def _fmt(row: dict[str, Any]) -> str:
    share = row["false_rollback_rate"] if row["detection_rate"] is None else row["detection_rate"]
    median, p90 = row["minutes_to_verdict_median"], row["minutes_to_verdict_p90"]
    when = "-" if median is None else f"{median:g}/{p90:g}m"
    return f"{share:6.1%} {when:>11}"


def table(rows: list[dict[str, Any]]) -> str:
    """A readable table: per rate and scenario, each judge's rate and minutes to verdict."""
    head = f"{'rate':>5} {'scenario':<14} {'measure':<10}" + "".join(f" {j:>18}" for j in JUDGES)
    lines = [
        "rollback rate (A/A: false rollbacks; else: detection) and median/p90 minutes to the",
        "right verdict (A/A: promotion; else: rollback)",
        head,
        "-" * len(head),
    ]
    index = {(r["rate_rps"], r["scenario"], r["judge"]): r for r in rows}
    for rate in sorted({r["rate_rps"] for r in rows}):
        for scenario in SCENARIOS:
            if (rate, scenario.name, JUDGES[0]) not in index:
                continue
            measure = "detected" if scenario.regression else "false rb"
            cells = "".join(f" {_fmt(index[(rate, scenario.name, j)]):>18}" for j in JUDGES)
            lines.append(f"{rate:>5} {scenario.name:<14} {measure:<10}{cells}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--canaries", type=int, default=200, help="canaries per regression cell")
    parser.add_argument("--aa-canaries", type=int, default=500, help="canaries per A/A cell")
    parser.add_argument("--rates", default="1,10,100", help="canary req/s, comma-separated")
    parser.add_argument("--horizon", type=int, default=30, help="minutes before a hold")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    started = time.perf_counter()
    thresholds = {rate: p99_threshold(rate, args.seed) for rate in rates}
    cells = [
        Cell(
            rate,
            i,
            args.canaries if s.regression else args.aa_canaries,
            args.seed,
            args.horizon,
            thresholds[rate],
        )
        for rate in rates
        for i, s in enumerate(SCENARIOS)
    ]
    # The slowest cells first, so the workers finish together.
    cells.sort(key=lambda c: (c.rate != 10, c.rate != 1, -c.canaries))
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        results = list(pool.imap_unordered(run_cell, cells))
    rows = sorted(
        (summarise(r, j) for r in results for j in JUDGES),
        key=lambda r: (r["rate_rps"], r["scenario"], r["judge"]),
    )
    elapsed = time.perf_counter() - started
    print(table(rows))
    print(
        f"{len(cells)} cells, {sum(c.canaries for c in cells)} canaries per judge, "
        f"{elapsed:.0f} s with {args.workers} workers; Flagger p99 thresholds: "
        + ", ".join(f"{r} req/s {t:.1f} s" for r, t in thresholds.items())
    )
    print(
        json.dumps(
            {
                "config": {
                    "checks": str(CHECKS.name),
                    "horizon_min": args.horizon,
                    "look_s": {str(r): LOOK_S.get(r, 30) for r in rates},
                    "flagger_p99_threshold_s": {str(r): round(t, 3) for r, t in thresholds.items()},
                    "canaries_aa": args.aa_canaries,
                    "canaries_regression": args.canaries,
                    "seed": args.seed,
                    "seconds": round(elapsed, 1),
                },
                "results": rows,
            },
            allow_nan=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
