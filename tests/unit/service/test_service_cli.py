"""The inferops-service command line, without starting a server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from inferops_service.cli import EXIT_BAD_CONFIG, main


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("INFEROPS_SERVICE_CONFIG", "INFEROPS_MODEL", "INFEROPS_SIMULATOR_TTFT_MS"):
        monkeypatch.delenv(var, raising=False)


def test_check_config_prints_the_effective_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("model: m2\nsimulator:\n  ttft_ms: 10\n", encoding="utf-8")
    monkeypatch.setenv("INFEROPS_SIMULATOR_TTFT_MS", "25")
    assert main(["check-config", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == "m2"
    assert printed["simulator"]["ttft_ms"] == 25.0
    assert printed["simulator"]["tpot_ms"] == 4.0


def test_check_config_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("simulator:\n  ttft_ms: -5\n", encoding="utf-8")
    assert main(["check-config", str(path)]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert f"invalid service config {path}: simulator.ttft_ms:" in err


def test_serve_exits_2_on_bad_config_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("faults:\n  error_rate: 2\n", encoding="utf-8")
    assert main(["serve", "--config", str(path), "--port", "1", "--metrics-port", "1"]) == 2
    assert "faults.error_rate" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["check-config", "--help"]])
def test_help_explains_the_commands(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "inferops-service" in out
    if argv[0] == "serve":
        assert "--metrics-port" in out and "--drain-seconds" in out
    if argv[0] == "check-config":
        assert "INFEROPS_FAULTS_ERROR_RATE" in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
