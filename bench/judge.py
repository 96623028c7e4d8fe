"""Benchmark: whole releases through the rollout as shipped, then the bare judges.

First, and what counts: simulated releases (``bench.release``) through the plan
and the ``RolloutMachine`` the rollout flow drives, with an environment's
shipped steps, windows, warm-up, budget and SLO file (``--env``, default
``aws``), on LLM-shaped traffic (Poisson arrivals with bursts, 1% failures on
both versions, heavy-tailed latencies and answers) at 1, 10 and 100 req/s of
total traffic: ``--aa-releases`` unchanged canaries and ``--releases`` per
regression. Reported with 95% intervals: the share promoted, the per-release
rollback rate (false rollbacks for A/A, detection for regressions), and the
median (with its interval) and p90 minutes to the right verdict.

Then, for comparison only, the bare judges on one canary at half the traffic
against an equal baseline over 30 minutes (``bench.rivals``): the sequential
judge alone (``judge_samples``), Flagger-like thresholds (rollback after 5 and
after 1 failed minutes) and a Kayenta-like single analysis.

Run ``python -m bench.judge`` (``--help`` for the knobs). The last line of the
output is one JSON object; each row has ``mode`` (``rollout`` for the shipped
path, ``bare``, ``flagger-like``, ``kayenta-like``), ``judge``, ``scenario``,
``rate_rps`` (total), ``releases``, ``promote_rate``, ``false_rollback_rate`` or
``detection_rate``, and the median and p90 minutes to the verdict.
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

from bench.release import Outcome, Settings, median_interval, release_plan, run_releases, wilson
from bench.rivals import HOLD, PROMOTE, ROLLBACK, FlaggerLike, KayentaLike, Outcomes
from bench.traffic import BASELINE, SCENARIOS, Block, Scenario, draw, minute_aggregates
from inferops.analysis.sample_judge import judge_samples
from inferops.analysis.samples import SampleSet
from inferops.analysis.spec import AnalysisSpec, parse_spec
from inferops.analysis.verdict import Decision, Verdict
from inferops.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "loadtests" / "checks" / "llm-canary.yaml"
JUDGES = ("sequential", "flagger-5", "flagger-1", "kayenta")
_MODES = {
    "sequential": "bare",
    "flagger-5": "flagger-like",
    "flagger-1": "flagger-like",
    "kayenta": "kayenta-like",
}
_COLUMNS = ("ts", "latency_s", "ttft_s", "ok", "output_tokens", "input_tokens")


@dataclass(frozen=True)
class Cell:
    """One rate and scenario, simulated for ``canaries`` canaries."""

    rate: float
    """Canary requests per second (the baseline serves as many)."""
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
    rng = np.random.default_rng([cell.seed, round(cell.rate * 10), cell.scenario])
    spec = load_spec()
    per_minute = round(cell.rate * 60)
    look_s = look_every(cell.rate)
    per_look = round(cell.rate * look_s)
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


def look_every(rate: float) -> int:
    """Seconds between the bare judge's looks at a canary rate (keeps the simulation quick)."""
    return 60 if rate <= 1 else 30 if rate <= 10 else 10


def p99_threshold(rate: float, seed: int, minutes: int = 1000) -> float:
    """The stable's per-minute p99 that an unchanged version exceeds in 5% of minutes."""
    rng = np.random.default_rng([seed, round(rate * 10), 99])
    p99s = [
        minute_aggregates(draw(rng, 100, round(rate * 60), 0.0, 60.0, BASELINE))["latency_p99_s"]
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
        "mode": _MODES[judge],
        "judge": judge,
        "rate_rps": round(2 * result.cell.rate, 3),
        "canary_rps": result.cell.rate,
        "scenario": scenario.name,
        "releases": result.cell.canaries,
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


def bare_table(rows: list[dict[str, Any]]) -> str:
    """Per total rate and scenario, each bare judge's rate and minutes to verdict."""
    head = f"{'rate':>5} {'scenario':<14} {'measure':<10}" + "".join(f" {j:>18}" for j in JUDGES)
    lines = [
        "Bare judges, one canary at half the traffic against an equal baseline, no steps",
        "(not the shipped path; for comparison with Flagger- and Kayenta-like judges):",
        "rollback rate (A/A: false rollbacks; else: detection), median/p90 minutes to the",
        "right verdict",
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
            lines.append(f"{rate:>5g} {scenario.name:<14} {measure:<10}{cells}")
        lines.append("")
    return "\n".join(lines)


def _pct_ci(hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"{hits / n:6.1%} [{low:5.1%},{high:5.1%}]"


def rollout_row(
    rate: float, scenario: Scenario, outcomes: list[Outcome], refused: bool, seconds: float
) -> dict[str, Any]:
    """The figures of the shipped rollout on one rate and scenario, with 95% intervals."""
    n = len(outcomes)
    actions = np.array([o.action for o in outcomes])
    minutes = np.array([o.minutes for o in outcomes])
    promoted = int(np.sum(actions == "promote"))
    rolled = int(np.sum(actions == "rollback"))
    right = minutes[actions == ("rollback" if scenario.regression else "promote")]
    med = median_interval(right)
    low, high = wilson(rolled, n)
    return {
        "mode": "rollout",
        "judge": "inferops",
        "scenario": scenario.name,
        "rate_rps": rate,
        "releases": n,
        "promoted": promoted,
        "rolled_back": rolled,
        "refused_by_plan": refused,
        "promote_rate": round(promoted / n, 4),
        "promote_rate_ci95": [round(x, 4) for x in wilson(promoted, n)],
        "false_rollback_rate": None if scenario.regression else round(rolled / n, 4),
        "detection_rate": round(rolled / n, 4) if scenario.regression else None,
        "rollback_rate_ci95": [round(low, 4), round(high, 4)],
        "minutes_to_verdict_median": round(float(np.median(right)), 2) if len(right) else None,
        "minutes_to_verdict_median_ci95": [round(x, 2) for x in med] if med else None,
        "minutes_to_verdict_p90": round(float(np.quantile(right, 0.9)), 2) if len(right) else None,
        "seconds": round(seconds, 1),
    }


def rollout_table(rows: list[dict[str, Any]]) -> str:
    """The shipped rollout's table: what the issue's targets are measured on."""
    head = (
        f"{'rate':>5} {'scenario':<14} {'releases':>8}  {'promoted [95% CI]':<22} "
        f"{'rolled back [95% CI]':<22} {'minutes: median [95% CI] / p90':<30}"
    )
    lines = [
        "The rollout as shipped (plan, steps, windows, budget, the rollout machine):",
        head,
        "-" * len(head),
    ]
    for r in rows:
        n, promoted, rolled = r["releases"], r["promoted"], r["rolled_back"]
        med = r["minutes_to_verdict_median"]
        ci = r["minutes_to_verdict_median_ci95"]
        when = (
            "-"
            if med is None
            else f"{med:5.2f} [{ci[0]:.2f},{ci[1]:.2f}] / {r['minutes_to_verdict_p90']:.2f}"
            if ci
            else f"{med:5.2f} / {r['minutes_to_verdict_p90']:.2f}"
        )
        note = "  (plan refused it before the start)" if r["refused_by_plan"] else ""
        lines.append(
            f"{r['rate_rps']:>5g} {r['scenario']:<14} {n:>8}  {_pct_ci(promoted, n):<22} "
            f"{_pct_ci(rolled, n):<22} {when:<30}{note}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Job:
    """One rate and scenario of the rollout simulation."""

    rate: float
    scenario: int
    releases: int
    seed: int
    settings: Settings
    spec: AnalysisSpec


def _run_job(job: Job) -> tuple[Job, list[Outcome], float]:
    started = time.perf_counter()
    outcomes = run_releases(
        job.spec, job.settings, job.rate, SCENARIOS[job.scenario], job.releases, job.seed
    )
    return job, outcomes, time.perf_counter() - started


def environment(name: str) -> tuple[Settings, AnalysisSpec, Path]:
    """The canary settings and SLO file an environment of inferops.yaml ships."""
    config = load_config(str(ROOT / "inferops.yaml"))
    env = config.environments[name]
    plan = env.canary
    settings = Settings(
        steps=tuple(plan.steps),
        window_s=plan.window_s,
        warmup_s=plan.warmup_s,
        budget_s=plan.budget_s,
    )
    path = config.path(env.slo_file)
    return settings, load_spec(path), path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--env", default="aws", help="environment whose settings ship (aws)")
    parser.add_argument("--releases", type=int, default=200, help="releases per regression")
    parser.add_argument("--aa-releases", type=int, default=1000, help="A/A releases per rate")
    parser.add_argument("--rates", default="1,10,100", help="total req/s, comma-separated")
    parser.add_argument("--bare", type=int, default=100, help="canaries per bare-judge cell")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    settings, spec, slo_path = environment(args.env)
    rates = [float(r) for r in args.rates.split(",")]
    started = time.perf_counter()
    plans = {rate: release_plan(spec, settings, rate) for rate in rates}
    for rate, plan in plans.items():
        print(f"--- inferops release --plan at {rate:g} req/s ({args.env}):\n{plan.describe()}\n")
    jobs = [
        Job(
            rate,
            i,
            args.releases if s.regression else args.aa_releases,
            args.seed + i,
            settings,
            spec,
        )
        for rate in rates
        for i, s in enumerate(SCENARIOS)
    ]
    jobs.sort(key=lambda j: -j.releases / max(j.rate, 1) ** 0.5)
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        done = list(pool.imap_unordered(_run_job, jobs))
    order = {(j.rate, j.scenario): (j, o, t) for j, o, t in done}
    rows = [
        rollout_row(
            rate, SCENARIOS[i], order[(rate, i)][1], not plans[rate].fits, order[(rate, i)][2]
        )
        for rate in rates
        for i in range(len(SCENARIOS))
    ]
    print(rollout_table(rows))
    print()
    thresholds = {rate: p99_threshold(rate / 2, args.seed) for rate in rates}
    cells = [
        Cell(rate / 2, i, args.bare, args.seed, 30, thresholds[rate])
        for rate in rates
        if rate >= 2
        for i, _ in enumerate(SCENARIOS)
    ]
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        results = list(pool.imap_unordered(run_cell, cells))
    bare = sorted(
        (summarise(r, j) for r in results for j in JUDGES),
        key=lambda r: (r["rate_rps"], r["scenario"], r["judge"]),
    )
    print(bare_table(bare))
    elapsed = time.perf_counter() - started
    print(f"{elapsed:.0f} s with {args.workers} workers")
    print(
        json.dumps(
            {
                "config": {
                    "env": args.env,
                    "slo_file": slo_path.name,
                    "steps": list(settings.steps),
                    "window_s": settings.window_s,
                    "warmup_s": settings.warmup_s,
                    "budget_s": settings.budget_s,
                    "live_s": settings.live_s,
                    "plans": {
                        f"{r:g}": {
                            "fits": p.fits,
                            "expected_min": round(p.expected_s / 60, 2) if p.expected_s else None,
                            "needed_rps": round(p.needed_rps, 2) if p.needed_rps else None,
                            "coarsened": list(p.coarsened),
                        }
                        for r, p in plans.items()
                    },
                    "seed": args.seed,
                    "seconds": round(elapsed, 1),
                },
                "results": rows + bare,
            },
            allow_nan=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
