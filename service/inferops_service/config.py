"""Service settings: an optional YAML file, then ``INFEROPS_*`` environment overrides.

Contract:

- Every section rejects unknown keys, so a typo fails at start-up instead of being ignored.
- The file comes from the ``--config`` argument or ``INFEROPS_SERVICE_CONFIG``; without
  either, the defaults apply.
- A top-level field ``x`` is overridden by ``INFEROPS_X`` and a field ``x`` of section
  ``s`` by ``INFEROPS_S_X`` (e.g. ``INFEROPS_SIMULATOR_TTFT_MS=20``). Values are parsed by
  the same pydantic models as the file, so a bad value is reported with its variable name.
- An ``INFEROPS_<SECTION>_*`` variable that names no field of a known section is an error;
  other ``INFEROPS_*`` variables are left alone, since the pipeline shares the prefix.
- Every failure is a :class:`ConfigError` whose message names the source and the field.

This is the only module that reads the process environment, and only when asked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "INFEROPS_"
CONFIG_FILE_ENV = "INFEROPS_SERVICE_CONFIG"


class ConfigError(Exception):
    """The service configuration is unreadable or invalid; the message says where and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SimulatorSettings(_Section):
    """How the simulated GPU model behaves when it is healthy."""

    ttft_ms: float = Field(default=60.0, ge=0, description="Time to first token at batch size 1.")
    tpot_ms: float = Field(default=4.0, ge=0, description="Time per output token at batch size 1.")
    max_batch: int = Field(
        default=16, ge=1, description="Sequences decoded together; others queue."
    )
    batch_slowdown: float = Field(
        default=0.04,
        ge=0,
        description="Fractional slowdown per extra sequence in the running batch.",
    )
    default_max_tokens: int = Field(
        default=64, ge=1, description="Output limit when a request sets none."
    )
    max_output_tokens: int = Field(
        default=4096, ge=1, description="Largest max_tokens a request may ask."
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> SimulatorSettings:
        if self.default_max_tokens > self.max_output_tokens:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) must not exceed "
                f"max_output_tokens ({self.max_output_tokens})"
            )
        return self


class FaultSettings(_Section):
    """Faults injected on purpose, so a release pipeline can be shown to catch them."""

    extra_latency_ms: float = Field(default=0.0, ge=0, description="Added before the first token.")
    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of requests answered 500."
    )
    token_inflation: float = Field(
        default=1.0, ge=1, description="Multiplier on output tokens generated."
    )
    seed: int | None = Field(
        default=None, description="Seed for error injection; None draws from the OS."
    )


class CostSettings(_Section):
    """Token prices used to account the cost of each request."""

    usd_per_1m_input_tokens: float = Field(default=0.05, ge=0)
    usd_per_1m_output_tokens: float = Field(default=0.20, ge=0)

    def usd_for(self, input_tokens: int, output_tokens: int) -> float:
        """Return the price in USD of a request with these token counts."""
        return (
            input_tokens * self.usd_per_1m_input_tokens
            + output_tokens * self.usd_per_1m_output_tokens
        ) / 1_000_000


class IdentitySettings(_Section):
    """Which build and track this is, echoed on responses (never used as metric labels)."""

    version: str = ""
    track: str = ""


class ServiceSettings(_Section):
    """The whole service configuration."""

    model: str = Field(default="sim-llama-3-8b", min_length=1, description="Model id served.")
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)


def env_names() -> dict[str, tuple[str, ...]]:
    """Return every supported override variable mapped to the field path it sets."""
    names: dict[str, tuple[str, ...]] = {}
    for name, field in ServiceSettings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for sub in section.model_fields:
                names[f"{ENV_PREFIX}{name}_{sub}".upper()] = (name, sub)
        else:
            names[f"{ENV_PREFIX}{name}".upper()] = (name,)
    return names


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """Load settings from ``path`` (or the file named by the environment) plus env overrides."""
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_FILE_ENV):
        path = env[CONFIG_FILE_ENV]
    # Errors read "invalid service config service.yaml: ..." or "invalid service config: ...".
    where = f" {path}" if path is not None else ""
    data = _read_yaml(Path(path)) if path is not None else {}
    from_env = _apply_env(data, env, where)
    try:
        return ServiceSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid service config{where}: {_describe(exc, from_env)}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read service config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid service config {path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid service config {path}: expected a mapping at the top level, "
            f"got {type(data).__name__}"
        )
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str], where: str) -> dict[str, str]:
    """Write env overrides into ``data``; return the dotted field paths set, with their vars."""
    known = env_names()
    sections = {path[0].upper() for path in known.values() if len(path) == 2}
    applied: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        path = known.get(var)
        if path is None:
            # Only a variable inside one of our sections is surely meant for us.
            rest = var[len(ENV_PREFIX) :]
            if any(rest.startswith(f"{s}_") for s in sections):
                raise ConfigError(
                    f"invalid service config{where}: unknown environment variable {var}; "
                    f"known: {', '.join(sorted(known))}"
                )
            continue
        target = data
        for key in path[:-1]:
            node = target.get(key)
            if not isinstance(node, dict):
                # A non-mapping section in the file is replaced; pydantic would reject it anyway.
                node = {}
                target[key] = node
            target = node
        target[path[-1]] = env[var]
        applied[".".join(path)] = var
    return applied


def _describe(exc: ValidationError, from_env: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(p) for p in error["loc"]) or "(top level)"
        var = from_env.get(field)
        where = f"{field} (from {var})" if var else field
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def to_yaml(settings: ServiceSettings) -> str:
    """Render the effective settings as YAML, in the same shape the file takes."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
