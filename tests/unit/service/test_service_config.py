"""Service settings: file loading, environment overrides and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from inferops_service.config import (
    ConfigError,
    CostSettings,
    ServiceSettings,
    env_names,
    load_settings,
    to_yaml,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "service" / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_apply_without_file_or_environment() -> None:
    settings = load_settings(None, environ={})
    assert settings == ServiceSettings()
    assert settings.model == "sim-llama-3-8b"
    assert settings.simulator.ttft_ms == 60.0
    assert settings.simulator.tpot_ms == 4.0
    assert settings.simulator.max_batch == 16
    assert settings.faults.error_rate == 0.0
    assert settings.faults.seed is None
    assert settings.cost.usd_per_1m_output_tokens == 0.20
    assert settings.identity.version == ""


def test_file_values_are_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m1\nsimulator:\n  ttft_ms: 12.5\nfaults:\n  seed: 3\n")
    settings = load_settings(path, environ={})
    assert settings.model == "m1"
    assert settings.simulator.ttft_ms == 12.5
    assert settings.simulator.tpot_ms == 4.0
    assert settings.faults.seed == 3


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), environ={}) == ServiceSettings()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "model: from-file\nsimulator:\n  ttft_ms: 99\n  tpot_ms: 7\n")
    settings = load_settings(
        path,
        environ={
            "INFEROPS_MODEL": "from-env",
            "INFEROPS_SIMULATOR_TTFT_MS": "20",
            "INFEROPS_FAULTS_ERROR_RATE": "0.08",
            "INFEROPS_FAULTS_EXTRA_LATENCY_MS": "150",
            "INFEROPS_IDENTITY_VERSION": "abc",
            "INFEROPS_IDENTITY_TRACK": "canary",
        },
    )
    assert settings.model == "from-env"
    assert settings.simulator.ttft_ms == 20.0
    assert settings.simulator.tpot_ms == 7.0
    assert settings.faults.error_rate == 0.08
    assert settings.faults.extra_latency_ms == 150.0
    assert settings.identity.version == "abc"
    assert settings.identity.track == "canary"


def test_config_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "model: named-by-env\n")
    settings = load_settings(None, environ={"INFEROPS_SERVICE_CONFIG": str(path)})
    assert settings.model == "named-by-env"


def test_unrelated_inferops_variables_are_ignored() -> None:
    settings = load_settings(None, environ={"INFEROPS_ENV": "local", "INFEROPS_HOME": "/x"})
    assert settings == ServiceSettings()


def test_error_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "simulator:\n  ttft_ms: -1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"invalid service config {path}: simulator.ttft_ms: "
        "Input should be greater than or equal to 0"
    )


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "simulator:\n  ttft: 5\n")
    with pytest.raises(ConfigError, match=r"simulator\.ttft: Extra inputs are not permitted"):
        load_settings(path, environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"INFEROPS_FAULTS_ERROR_RATE": "1.5"})
    message = str(err.value)
    assert message.startswith("invalid service config: ")
    assert "faults.error_rate (from INFEROPS_FAULTS_ERROR_RATE)" in message
    assert "less than or equal to 1" in message


def test_unparseable_environment_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="INFEROPS_SIMULATOR_MAX_BATCH"):
        load_settings(None, environ={"INFEROPS_SIMULATOR_MAX_BATCH": "lots"})


def test_misspelt_variable_in_a_known_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown environment variable INFEROPS_FAULTS_ERRORRATE"):
        load_settings(None, environ={"INFEROPS_FAULTS_ERRORRATE": "0.5"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("simulator: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level, got list"),
        ("faults:\n  token_inflation: 0.5\n", "faults.token_inflation"),
        ("faults:\n  error_rate: .nan\n", "faults.error_rate"),
        (
            "simulator:\n  default_max_tokens: 100\n  max_output_tokens: 50\n",
            "default_max_tokens (100) must not exceed max_output_tokens (50)",
        ),
        ("model: ''\n", "model: String should have at least 1 character"),
    ],
)
def test_invalid_files_are_explained(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"invalid service config {path}: .*") as err:
        load_settings(path, environ={})
    assert expected in str(err.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read service config .*missing\.yaml"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_every_field_has_an_environment_variable() -> None:
    names = env_names()
    assert names["INFEROPS_MODEL"] == ("model",)
    assert names["INFEROPS_SIMULATOR_TTFT_MS"] == ("simulator", "ttft_ms")
    assert names["INFEROPS_FAULTS_SEED"] == ("faults", "seed")
    assert names["INFEROPS_COST_USD_PER_1M_OUTPUT_TOKENS"] == ("cost", "usd_per_1m_output_tokens")
    assert names["INFEROPS_IDENTITY_TRACK"] == ("identity", "track")
    sections = ("simulator", "faults", "cost", "identity")
    fields = 1 + sum(len(type(getattr(ServiceSettings(), s)).model_fields) for s in sections)
    assert len(names) == fields


def test_yaml_rendering_round_trips(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"INFEROPS_FAULTS_SEED": "9"})
    path = write(tmp_path, to_yaml(settings))
    assert load_settings(path, environ={}) == settings


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLES / "local.yaml", environ={})
    assert settings.identity.track == "stable"
    assert settings.faults.error_rate == 0.0


def test_cost_of_a_request() -> None:
    cost = CostSettings(usd_per_1m_input_tokens=0.5, usd_per_1m_output_tokens=2.0)
    assert cost.usd_for(1_000_000, 0) == pytest.approx(0.5)
    assert cost.usd_for(100, 50) == pytest.approx((100 * 0.5 + 50 * 2.0) / 1e6)
