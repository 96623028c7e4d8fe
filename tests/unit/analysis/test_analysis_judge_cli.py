"""`inferops judge` offline: files in, the verdict and its exit code out."""

import csv
import json
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from inferops.judge_cli import judge_command, judge_files

ROOT = Path(__file__).resolve().parents[3]
CHECKS = ROOT / "loadtests" / "checks" / "llm-canary.yaml"

app = typer.Typer()
app.command()(judge_command)


def requests(n: int, seed: int, slower: float = 1.0, track: str = "canary") -> list[dict]:
    """Rows shaped like the load generator's samples."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ttft = float(rng.lognormal(np.log(0.1), 0.3)) * slower
        tokens = int(rng.integers(50, 200))
        rows.append(
            {
                "ts": i * 0.1,
                "latency_s": ttft + tokens * 0.02 * slower,
                "ttft_s": ttft,
                "status": 200,
                "track": track,
                "version": "v",
                "output_tokens": tokens,
                "ok": True,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_slow_canary_exits_2_and_says_why(tmp_path: Path) -> None:
    base = write_jsonl(tmp_path / "stable.jsonl", requests(800, 1, track="stable"))
    canary = write_csv(tmp_path / "canary.csv", requests(800, 2, slower=1.4))
    result = CliRunner().invoke(
        app, ["--baseline", str(base), "--canary", str(canary), "--checks", str(CHECKS)]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("ROLLBACK: ")
    assert "ttft_s" in result.output and "evidence:" in result.output


def test_an_unchanged_canary_exits_0_and_json_carries_the_evidence(tmp_path: Path) -> None:
    rows = requests(3000, 3, track="stable") + requests(3000, 4)
    both = write_jsonl(tmp_path / "both.jsonl", rows)
    result = CliRunner().invoke(
        app,
        ["--baseline", str(both), "--canary", str(both), "--checks", str(CHECKS), "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decision"] == "promote"
    assert data["evidence"]["canary_requests"] == data["evidence"]["baseline_requests"] == 3000


def test_too_little_evidence_holds_or_continues(tmp_path: Path) -> None:
    base = write_jsonl(tmp_path / "stable.jsonl", requests(100, 5, track="stable"))
    canary = write_jsonl(tmp_path / "canary.jsonl", requests(100, 6))
    args = ["--baseline", str(base), "--canary", str(canary), "--checks", str(CHECKS)]
    assert CliRunner().invoke(app, args).exit_code == 3
    assert CliRunner().invoke(app, [*args, "--not-final"]).exit_code == 4


def test_interval_rows_use_the_interval_judge(tmp_path: Path) -> None:
    base = write_csv(
        tmp_path / "stable.csv",
        [{"requests": 400, "errors": 0, "latency_p95_s": 0.30, "ttft_p95_s": 0.05}] * 3,
    )
    canary = write_csv(
        tmp_path / "canary.csv",
        [
            {"requests": 100, "errors": 0, "latency_p95_s": 0.50, "ttft_p95_s": 0.05},
            {"requests": 100, "errors": 0, "latency_p95_s": 0.40, "ttft_p95_s": ""},
        ],
    )
    verdict = judge_files(base, canary, ROOT / "loadtests" / "slos.yaml")
    assert verdict.decision.value == "rollback"
    # Quantiles merge as request-weighted means: (0.5 + 0.4) / 2.
    assert verdict.canary.latency_p95_s == 0.45
    assert verdict.canary.requests == 200


def test_bad_input_exits_1_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    good = write_jsonl(tmp_path / "ok.jsonl", requests(10, 7))
    result = CliRunner().invoke(
        app, ["--baseline", str(bad), "--canary", str(good), "--checks", str(CHECKS)]
    )
    assert result.exit_code == 1
    assert "bad.jsonl:1 is not JSON" in result.output
    missing = CliRunner().invoke(
        app, ["--baseline", str(good), "--canary", str(good), "--checks", "nope.yaml"]
    )
    assert missing.exit_code == 1 and "cannot read checks file" in missing.output
