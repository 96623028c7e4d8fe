"""Service settings: file loading, environment overrides and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from inferops_service.auth import hash_key
from inferops_service.config import (
    ConfigError,
    CostSettings,
    ServiceSettings,
    env_names,
    load_settings,
    to_yaml,
)
from pydantic import BaseModel

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
    assert names["INFEROPS_REDIS_URL"] == ("redis", "url")
    assert names["INFEROPS_REDIS_ON_ERROR_AUTH"] == ("redis", "on_error", "auth")
    assert names["INFEROPS_AUTH_KEYS"] == ("auth", "keys")

    def leaves(model: type[BaseModel]) -> int:
        return sum(
            leaves(f.annotation)
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
            else 1
            for f in model.model_fields.values()
        )

    assert len(names) == leaves(ServiceSettings)


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


HASH = "a" * 64
KEY = {"name": "team-a", "key_sha256": HASH}


def test_security_is_off_by_default() -> None:
    settings = load_settings(None, environ={})
    assert not settings.auth.enabled and not settings.auth.required
    assert settings.pii.mode == "off"
    assert not settings.limits.require_json_content_type
    assert settings.limits.max_body_bytes == 1024 * 1024
    assert settings.redis.url is None and settings.audit.path is None
    assert not settings.rate_limited


def test_listing_keys_switches_on_the_secure_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, f"auth:\n  keys:\n    - name: a\n      key_sha256: {HASH}\n")
    settings = load_settings(path, environ={})
    assert settings.auth.required
    assert settings.pii.mode == "mask"
    assert settings.limits.require_json_content_type
    explicit = write(
        tmp_path,
        f"auth:\n  required: false\n  keys:\n    - name: a\n      key_sha256: {HASH}\n"
        "pii:\n  mode: detect\nlimits:\n  require_json_content_type: false\n",
    )
    settings = load_settings(explicit, environ={})
    assert not settings.auth.required
    assert settings.pii.mode == "detect"
    assert not settings.limits.require_json_content_type


def test_redis_url_and_nested_policies_come_from_the_environment() -> None:
    settings = load_settings(
        None,
        environ={
            "INFEROPS_REDIS_URL": "redis://127.0.0.1:20079/0",
            "INFEROPS_REDIS_ON_ERROR_AUTH": "open",
        },
    )
    assert settings.redis.url == "redis://127.0.0.1:20079/0"
    assert settings.redis.on_error.auth == "open"
    assert settings.redis.on_error.cache == "open"


def test_keys_can_be_given_as_json_in_the_environment() -> None:
    keys = f'[{{"name": "ci", "key_sha256": "{"B" * 64}", "rpm": 5}}]'
    settings = load_settings(
        None, environ={"INFEROPS_AUTH_KEYS": keys, "INFEROPS_REDIS_URL": "redis://r:6379"}
    )
    (key,) = settings.auth.keys
    assert (key.name, key.key_sha256, key.rpm, key.tpm) == ("ci", "b" * 64, 5, None)
    assert settings.auth.required and settings.rate_limited


def test_passwords_in_the_redis_url_are_not_printed() -> None:
    settings = load_settings(None, environ={"INFEROPS_REDIS_URL": "redis://u:s3cret@h:6379/0"})
    assert settings.redis.url == "redis://u:s3cret@h:6379/0"
    text = to_yaml(settings)
    assert "s3cret" not in text
    assert "url: redis://u:***@h:6379/0" in text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INFEROPS_AUTH_KEYS": "[{"}, "INFEROPS_AUTH_KEYS must be JSON"),
        (
            {"INFEROPS_AUTH_KEYS": f'[{{"name": "a b", "key_sha256": "{HASH}"}}]'},
            "auth.keys[0].name (from INFEROPS_AUTH_KEYS): must be 1-64 letters",
        ),
        ({"INFEROPS_REDIS_ON_ERROR_AUTH": "maybe"}, "redis.on_error.auth (from INFEROPS_RE"),
        ({"INFEROPS_REDIS_ON_ERROR_PLAN": "x"}, "unknown environment variable"),
        ({"INFEROPS_REDIS_URL": "http://h"}, "redis.url (from INFEROPS_REDIS_URL): must be a"),
        ({"INFEROPS_LIMITS_MAX_MESSAGES": "0"}, "limits.max_messages (from INFEROPS_LIMITS"),
        ({"INFEROPS_PII_MODE": "scrub"}, "pii.mode (from INFEROPS_PII_MODE)"),
    ],
)
def test_security_settings_errors_name_the_field(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ=environ)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"keys": [{**KEY, "key_sha256": "sk-the-key-itself"}]},
         "auth.keys[0].key_sha256: must be 64 hex digits"),
        ({"keys": [KEY, {**KEY, "key_sha256": "b" * 64}]},
         "auth: keys[1].name repeats an earlier key's name"),
        ({"keys": [KEY, {**KEY, "name": "team-b"}]},
         "auth: keys[1].key_sha256 repeats an earlier key's key_sha256"),
        ({"required": True}, "auth: required is true but no keys are listed"),
        ({"keys": [{**KEY, "rpm": 0}]}, "auth.keys[0].rpm: Input should be greater than or"),
        ({"keys": [{**KEY, "rpm": 10}]},
         "auth.keys[0] (team-a) sets rpm or tpm, which are kept in Redis: set redis.url"),
        ({"keys": [{**KEY, "token": "x"}]}, "auth.keys[0].token: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_auth_errors_name_the_field(tmp_path: Path, auth: dict[str, Any], expected: str) -> None:
    path = write(tmp_path, yaml.safe_dump({"auth": auth}))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert expected in str(err.value)


def test_example_config_documents_a_working_development_key() -> None:
    settings = load_settings(EXAMPLES / "local.yaml", environ={})
    (key,) = settings.auth.keys
    assert key.key_sha256 == hash_key("sk-inferops-dev-local-only")
    assert "sk-inferops-dev-local-only" in (EXAMPLES / "local.yaml").read_text()
    assert settings.auth.required and settings.pii.mode == "mask"
    assert settings.rate_limited and settings.redis.url is not None


def test_the_cache_is_off_by_default_and_set_by_environment() -> None:
    assert not load_settings(None, environ={}).cache.enabled
    settings = load_settings(
        None,
        environ={
            "INFEROPS_REDIS_URL": "redis://127.0.0.1:6390/0",
            "INFEROPS_CACHE_EXACT_ENABLED": "true",
            "INFEROPS_CACHE_SEMANTIC_THRESHOLD": "0.97",
            "INFEROPS_CACHE_TTL_S": "60",
        },
    )
    assert settings.cache.exact.enabled and not settings.cache.semantic.enabled
    assert settings.cache.semantic.threshold == 0.97 and settings.cache.ttl_s == 60


def test_cache_settings_name_the_bad_field() -> None:
    with pytest.raises(ConfigError, match=r"cache\.semantic\.threshold"):
        load_settings(None, environ={"INFEROPS_CACHE_SEMANTIC_THRESHOLD": "1.5"})
    with pytest.raises(ConfigError, match=r"set redis\.url"):
        load_settings(None, environ={"INFEROPS_CACHE_SEMANTIC_ENABLED": "true"})


def test_example_config_caches_exact_answers() -> None:
    settings = load_settings(EXAMPLES / "local.yaml", environ={})
    assert settings.cache.exact.enabled and not settings.cache.semantic.enabled


def test_the_openai_backend_needs_an_upstream_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"backend is openai: set upstream\.url"):
        load_settings(write(tmp_path, "backend: openai\n"), environ={})
    with pytest.raises(ConfigError, match=r"upstream\.url \(from INFEROPS_UPSTREAM_URL\)"):
        load_settings(
            None, environ={"INFEROPS_BACKEND": "openai", "INFEROPS_UPSTREAM_URL": "ftp://x/v1"}
        )
    settings = load_settings(
        None,
        environ={
            "INFEROPS_BACKEND": "openai",
            "INFEROPS_UPSTREAM_URL": "http://127.0.0.1:8000/v1",
            "INFEROPS_UPSTREAM_API_KEY": "sk-up",
        },
    )
    assert settings.upstream.url == "http://127.0.0.1:8000/v1"
    assert "sk-up" not in to_yaml(settings)
