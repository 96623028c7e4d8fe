"""The inferops-service command line, without starting a server."""

from __future__ import annotations

import hashlib
import io
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


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve", "--help"],
        ["check-config", "--help"],
        ["keys", "hash", "--help"],
        ["audit", "verify", "--help"],
    ],
)
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
        assert "INFEROPS_REDIS_ON_ERROR_AUTH" in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_keys_hash_reads_the_key_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-inferops-dev-local-only\n"))
    assert main(["keys", "hash"]) == 0
    assert capsys.readouterr().out == (
        "0a122efe3a618bf7332e068d84ceebb4eee510603b665e32a7fdf54eae98828f\n"
    )


def test_keys_hash_refuses_an_empty_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["keys", "hash"]) == 1
    assert "no key on stdin" in capsys.readouterr().err


def test_keys_new_prints_a_key_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new"]) == 0
    key, digest = capsys.readouterr().out.splitlines()
    assert key.startswith("sk-inferops-")
    assert digest == hashlib.sha256(key.encode()).hexdigest()


def test_serve_exits_1_when_the_audit_log_cannot_be_continued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "audit.log"
    log.write_text('{"half a rec')
    path = tmp_path / "service.yaml"
    path.write_text(f"audit:\n  path: {log}\n", encoding="utf-8")
    assert main(["serve", "--config", str(path), "--port", "1", "--metrics-port", "1"]) == 1
    assert "ends in an incomplete record" in caplog.text
