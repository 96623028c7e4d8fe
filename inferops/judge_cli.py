"""``inferops judge``: judge a canary offline from files of samples.

``inferops judge --baseline FILE --canary FILE [--checks FILE] [--json]``

Each file is CSV or JSON lines (by extension: ``.csv``, else JSON lines), one
row per request (the load generator's samples: ``ts, latency_s, ttft_s,
status, ok, output_tokens``, optionally ``input_tokens, cost_usd, tpot_s``)
or one row per interval (``requests, errors`` and optionally ``window_s,
latency_p50_s, latency_p95_s, latency_p99_s, ttft_p95_s, output_tokens,
cost_usd``). A file holding several tracks is narrowed to ``stable`` (for
the baseline) or ``canary``. Requests are judged by the sequential sample
judge; intervals by the interval judge, as the rollout does.

The files are all the evidence there is, so by default the look is final and
an inconclusive verdict is ``hold``; ``--not-final`` judges them as one look
of a step still running (``continue`` when more evidence is needed).

Exit codes: 0 promote, 2 rollback, 3 hold, 4 continue, 1 error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from inferops.analysis.evidence import combine_intervals
from inferops.analysis.samples import SampleError, SampleSet
from inferops.analysis.spec import AnalysisSpec, SpecError, parse_spec
from inferops.analysis.verdict import Decision, Verdict

EXIT_CODES = {Decision.PROMOTE: 0, Decision.ROLLBACK: 2, Decision.HOLD: 3, Decision.CONTINUE: 4}


class JudgeInputError(ValueError):
    """A samples or checks file cannot be used; the message says which and why."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON-lines file (empty CSV cells are missing values)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JudgeInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".csv":
        return [
            {k: (None if v == "" else v) for k, v in row.items()}
            for row in csv.DictReader(text.splitlines())
        ]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JudgeInputError(
                f"{path}:{number} is not JSON ({exc.msg}); give JSON lines, or CSV with a .csv name"
            ) from None
        if not isinstance(row, dict):
            raise JudgeInputError(f"{path}:{number} is not a JSON object")
        rows.append(row)
    return rows


def _narrow(rows: list[dict[str, Any]], track: str) -> list[dict[str, Any]]:
    tracks = {r.get("track") for r in rows if r.get("track")}
    if len(tracks) > 1:
        return [r for r in rows if r.get("track") == track]
    return rows


def _kind(rows: Sequence[Mapping[str, Any]], path: Path) -> str:
    if not rows:
        return "empty"
    if "latency_s" in rows[0]:
        return "requests"
    if "requests" in rows[0]:
        return "intervals"
    raise JudgeInputError(
        f"{path}: rows need latency_s (one request per row) or requests (one interval per "
        f"row); found columns {sorted(rows[0])}"
    )


def load_spec(path: Path) -> AnalysisSpec:
    """The checks file, validated."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JudgeInputError(f"cannot read checks file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise JudgeInputError(f"checks file {path} is not valid YAML: {exc}") from None
    return parse_spec(data, str(path))


def judge_files(baseline: Path, canary: Path, checks: Path, final: bool = True) -> Verdict:
    """Judge the canary file against the baseline file with the checks file."""
    spec = load_spec(checks)
    base_rows = _narrow(read_rows(baseline), "stable")
    canary_rows = _narrow(read_rows(canary), "canary")
    kinds = {_kind(base_rows, baseline), _kind(canary_rows, canary)} - {"empty"}
    if len(kinds) > 1:
        raise JudgeInputError(
            f"{baseline} and {canary} must both hold requests or both hold intervals"
        )
    if kinds == {"intervals"}:
        try:
            canary_window = combine_intervals(canary_rows, "canary")
            base_window = combine_intervals(base_rows, "stable") if base_rows else None
        except ValueError as exc:
            raise JudgeInputError(f"{canary} or {baseline}: {exc}") from None
        from inferops.analysis.judge import judge  # scipy: imported when a file is judged

        return judge(canary_window, base_window, spec, final)
    try:
        canary_set = SampleSet.from_records(canary_rows, "canary")
        base_set = SampleSet.from_records(base_rows, "stable")
    except SampleError as exc:
        raise JudgeInputError(str(exc)) from None
    from inferops.analysis.sample_judge import judge_samples

    return judge_samples(canary_set, base_set, spec, final=final)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(verdict: Verdict) -> str:
    """The verdict as a person reads it: decision, reason, one line per check."""
    lines = [f"{verdict.decision.value.upper()}: {verdict.reason}", ""]
    lines.append(f"  {'check':<30} {'outcome':<8} {'canary':>10} {'baseline':>10}  detail")
    for c in verdict.checks:
        lines.append(
            f"  {c.label:<30} {c.outcome.value:<8} {_figure(c.canary):>10} "
            f"{_figure(c.baseline):>10}  {c.detail}"
        )
    e = verdict.evidence
    if e is not None:
        lines += [
            "",
            f"  evidence: {e.canary_requests} canary and {e.baseline_requests} baseline requests; "
            f"{e.required_requests} canary requests needed before a promotion; "
            f"false-rollback rate {e.false_rollback_rate:g} over {e.tests} comparisons "
            f"({e.alpha_per_test:.2g} each)",
        ]
    return "\n".join(lines)


def judge_command(
    baseline: Annotated[
        Path, typer.Option(help="Samples of the stable version (CSV or JSON lines).")
    ],
    canary: Annotated[Path, typer.Option(help="Samples of the canary (CSV or JSON lines).")],
    checks: Annotated[Path, typer.Option(help="Checks file (the SLO file's format).")] = Path(
        "loadtests/slos.yaml"
    ),
    final: Annotated[
        bool,
        typer.Option(
            "--final/--not-final",
            help="The files are all the evidence (inconclusive = hold), or one look of a running "
            "step (inconclusive = continue).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Judge a canary from files of samples. Exit 0 promote, 2 rollback, 3 hold, 4 continue."""
    try:
        verdict = judge_files(baseline, canary, checks, final)
    except (JudgeInputError, SpecError) as exc:
        typer.echo(f"inferops: error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(verdict.to_dict(), indent=2) if as_json else render(verdict))
    raise typer.Exit(EXIT_CODES[verdict.decision])
