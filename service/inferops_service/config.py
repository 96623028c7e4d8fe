"""Service settings: an optional YAML file, then ``INFEROPS_*`` environment overrides.

Contract:

- Every section rejects unknown keys, so a typo fails at start-up instead of being ignored.
- The file comes from the ``--config`` argument or ``INFEROPS_SERVICE_CONFIG``; without
  either, the defaults apply.
- A top-level field ``x`` is overridden by ``INFEROPS_X``, a field ``x`` of section ``s`` by
  ``INFEROPS_S_X`` (e.g. ``INFEROPS_SIMULATOR_TTFT_MS=20``) and a field of a nested section
  likewise (``INFEROPS_REDIS_ON_ERROR_AUTH``). Values are parsed by the same pydantic models
  as the file, so a bad value is reported with its variable name; a list (``auth.keys``)
  is given as JSON.
- Security is off unless ``auth.keys`` lists a key. Listing one switches on the secure
  defaults: ``auth.required``, ``pii.mode: mask`` and ``limits.require_json_content_type``
  (each can still be set explicitly). Without keys the service behaves as it always has.
- The response cache is off unless ``cache.exact.enabled`` or ``cache.semantic.enabled``;
  either needs ``redis.url``.
- Telemetry is off unless ``telemetry.otlp_endpoint`` (traces) or an exporter's
  ``enabled`` (``telemetry.cloudwatch``, ``gcp``, ``datadog``) is set; its secrets
  (``telemetry.datadog.api_key``, ``telemetry.otlp_headers``) come from the environment
  and print as ``***``.
- An ``INFEROPS_<SECTION>_*`` variable that names no field of a known section is an error;
  other ``INFEROPS_*`` variables are left alone, since the pipeline shares the prefix.
- Every failure is a :class:`ConfigError` whose message names the source and the field.

This is the only module that reads the process environment, and only when asked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

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


KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ApiKey(_Section):
    """One API key: stored only as the SHA-256 of the key, with its own limits."""

    name: str = Field(description="Names the key in metrics and the audit log; never secret.")
    key_sha256: str = Field(description="Hex SHA-256 of the key ('inferops-service keys hash').")
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute; none: no limit.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute; none: no limit.")
    tenant: str | None = Field(default=None, min_length=1, description="Defaults to the name.")

    @field_validator("name")
    @classmethod
    def _name_is_a_label(cls, value: str) -> str:
        if not KEY_NAME.fullmatch(value):
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("key_sha256")
    @classmethod
    def _is_a_sha256(cls, value: str) -> str:
        value = value.strip().lower()
        if not SHA256_HEX.fullmatch(value):
            raise ValueError(
                "must be 64 hex digits: the SHA-256 of the key, as printed by "
                "'inferops-service keys hash' (never the key itself)"
            )
        return value

    @property
    def limited(self) -> bool:
        """Whether requests with this key go through the rate limiter."""
        return self.rpm is not None or self.tpm is not None


class AuthSettings(_Section):
    """API keys. With none listed, requests need no key (the default)."""

    required: bool = Field(
        default=False,
        description="Refuse requests without a key; defaults to true when keys are listed.",
    )
    keys: list[ApiKey] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _required_when_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "required" not in data and data.get("keys"):
            return {**data, "required": True}
        return data

    @model_validator(mode="after")
    def _keys_are_distinct(self) -> AuthSettings:
        if self.required and not self.keys:
            raise ValueError(
                "required is true but no keys are listed: add one under auth.keys "
                "(make a key with 'inferops-service keys new')"
            )
        for attr in ("name", "key_sha256"):
            seen: set[str] = set()
            for i, key in enumerate(self.keys):
                value = getattr(key, attr)
                if value in seen:
                    raise ValueError(f"keys[{i}].{attr} repeats an earlier key's {attr}")
                seen.add(value)
        return self

    @property
    def enabled(self) -> bool:
        """Whether API keys are configured at all."""
        return bool(self.keys)


FailurePolicy = Literal["open", "closed"]


class RedisFailurePolicy(_Section):
    """What each concern does while Redis cannot be reached."""

    auth: FailurePolicy = Field(
        default="closed", description="Rate limits: closed refuses with 503, open admits."
    )
    cache: FailurePolicy = Field(
        default="open", description="Response cache: open serves without it."
    )


class RedisSettings(_Section):
    """The Redis shared by the rate limiter and the response cache; used only when needed."""

    url: str | None = Field(default=None, description="redis://, rediss:// or unix:// URL.")
    key_prefix: str = Field(default="inferops:", description="Prefix of every key written.")
    max_connections: int = Field(default=64, ge=1, description="Size of the connection pool.")
    timeout_ms: float = Field(
        default=250, gt=0, description="Connect, read and pool-wait timeout per command."
    )
    on_error: RedisFailurePolicy = Field(default_factory=RedisFailurePolicy)

    @field_validator("url")
    @classmethod
    def _is_a_redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_serializer("url")
    def _hide_password(self, value: str | None) -> str | None:
        return redact_url(value)


def redact_url(url: str | None) -> str | None:
    """Return ``url`` with any password replaced by ``***``, for printing and logs."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class PiiSettings(_Section):
    """Screening of prompts for personal data and secrets."""

    mode: Literal["mask", "detect", "off"] = Field(
        default="off",
        description="mask: replace findings before use; detect: count only; off: skip. "
        "Defaults to mask when API keys are listed.",
    )


class LimitSettings(_Section):
    """Input limits, checked before any other work is done for a request."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest request body.")
    max_messages: int = Field(default=2048, ge=1, description="Most messages in one request.")
    max_message_chars: int | None = Field(
        default=None, ge=1, description="Longest text of one message; none: no limit."
    )
    max_prompt_chars: int | None = Field(
        default=None, ge=1, description="Longest text of all messages together; none: no limit."
    )
    require_json_content_type: bool = Field(
        default=False,
        description="Answer 415 unless Content-Type is application/json; defaults to true "
        "when API keys are listed.",
    )
    max_inflight: int | None = Field(
        default=256,
        ge=1,
        description="API requests served at once by this process; beyond it, new ones are "
        "shed with 503 and Retry-After instead of queueing without bound. none: no limit.",
    )
    shed_retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After of a shed request, in seconds."
    )


class AuditSettings(_Section):
    """The hash-chained audit log."""

    path: str | None = Field(
        default=None, min_length=1, description="Append-only JSON lines file; none: no log."
    )


class ExactCacheSettings(_Section):
    """The exact response cache: the same request, from the same tenant, answered again."""

    enabled: bool = Field(default=False, description="Look up and store answers by request hash.")


class SemanticCacheSettings(_Section):
    """The semantic cache: a last user message close to a stored one answered from the cache."""

    enabled: bool = Field(
        default=False, description="Look up answers by similarity of the last user message."
    )
    embedder: Literal["hashing", "minilm"] = Field(
        default="hashing",
        description="hashing: lexical, no model (near-duplicates); minilm: all-MiniLM-L6-v2 "
        "(the embeddings extra), the model of /v1/embeddings, loaded once, run off the loop.",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Least cosine similarity that counts as a hit; none: the embedder's "
        "default, set for precision (hashing 0.95, minilm 0.999).",
    )
    single_turn_only: bool = Field(
        default=True,
        description="Only requests whose one user message follows nothing but system or "
        "developer messages; false: any conversation, the earlier turns matched exactly.",
    )
    max_entries: int = Field(
        default=100_000, ge=1, description="Entries each replica's index holds; oldest go first."
    )
    sync_interval_ms: float = Field(
        default=250, gt=0, description="How often a replica reads other replicas' new entries."
    )

    @property
    def needs_model(self) -> bool:
        """Whether the semantic cache embeds with the sentence model."""
        return self.enabled and self.embedder == "minilm"


class CacheSettings(_Section):
    """The response cache in Redis, shared by every replica; off unless a kind is enabled."""

    ttl_s: int = Field(
        default=3600, ge=1, description="Lifetime of a stored answer; a hit does not extend it."
    )
    max_temperature: float | None = Field(
        default=None,
        ge=0,
        description="Requests with a higher temperature bypass the cache; none: cache any.",
    )
    max_entry_bytes: int = Field(
        default=256 * 1024, ge=1, description="Larger answers are served but not stored."
    )
    exact: ExactCacheSettings = Field(default_factory=ExactCacheSettings)
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)

    @property
    def enabled(self) -> bool:
        """Whether any kind of cache is on."""
        return self.exact.enabled or self.semantic.enabled


class EmbeddingsSettings(_Section):
    """``POST /v1/embeddings``, answered by a local sentence-embedding model (all-MiniLM-L6-v2).

    Needs the service's ``embeddings`` extra (torch, transformers and the packaged model).
    """

    enabled: bool = Field(
        default=False, description="Serve the endpoint; the model loads at start (seconds)."
    )
    model: str = Field(
        default="all-minilm-l6-v2", min_length=1, description="Model id requests must name."
    )
    max_inputs: int = Field(default=2048, ge=1, description="Most inputs in one request.")
    max_input_chars: int = Field(
        default=8192, ge=1, description="Longest input, in characters, checked before tokenizing."
    )
    max_batch: int = Field(
        default=32, ge=1, description="Most inputs in one forward pass, across requests."
    )
    threads: int = Field(
        default=1,
        ge=1,
        description="CPU threads of one forward pass; the rest stay free for serving.",
    )


class BreakerSettings(_Section):
    """The upstream circuit breaker: stop calling an upstream that keeps failing."""

    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failed calls that open the breaker."
    )
    reset_s: float = Field(
        default=10, gt=0, description="Seconds the breaker stays open before one trial call."
    )


class UpstreamSettings(_Section):
    """The OpenAI-compatible server the ``openai`` backend forwards to (vLLM, TGI, an API)."""

    url: str | None = Field(
        default=None, description="Base URL including /v1, e.g. http://127.0.0.1:8000/v1."
    )
    api_key: str | None = Field(
        default=None,
        description="Bearer token for the upstream; set it with INFEROPS_UPSTREAM_API_KEY.",
    )
    model: str | None = Field(
        default=None, description="Model id the upstream serves; defaults to ``model``."
    )
    connect_timeout_s: float = Field(default=2, gt=0, description="Time to open a connection.")
    first_byte_timeout_s: float = Field(
        default=60, gt=0, description="Time from sending a request to the first byte back."
    )
    read_timeout_s: float = Field(
        default=30, gt=0, description="Longest silence between two pieces of an answer."
    )
    max_connections: int = Field(default=256, ge=1, description="Size of the connection pool.")
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a call that failed before the upstream saw it (connect "
        "errors, 502/503 answers); a call the upstream may have acted on is never retried.",
    )
    retry_backoff_s: float = Field(
        default=0.05, ge=0, description="First retry delay; doubles on each retry."
    )
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)

    @field_validator("url")
    @classmethod
    def _is_an_http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_serializer("api_key")
    def _hide_key(self, value: str | None) -> str | None:
        return None if value is None else "***"


class CloudWatchSettings(_Section):
    """Amazon CloudWatch: PutMetricData calls, or embedded metric format lines on stdout."""

    enabled: bool = Field(default=False, description="Push the service's metrics to CloudWatch.")
    mode: Literal["api", "emf"] = Field(
        default="api",
        description="api: PutMetricData through boto3 (the aws extra); emf: embedded metric "
        "format JSON lines on stdout, for the CloudWatch agent or Lambda to ingest.",
    )
    namespace: str = Field(
        default="Inferops/Service", min_length=1, max_length=255, description="Metric namespace."
    )
    region: str | None = Field(
        default=None, min_length=1, description="AWS region; none: boto3's default chain."
    )
    endpoint_url: str | None = Field(
        default=None, description="Another CloudWatch endpoint (a VPC endpoint); none: default."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _is_an_http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value


class GcpSettings(_Section):
    """Google Cloud Monitoring: custom metrics written with ``projects.timeSeries.create``."""

    enabled: bool = Field(default=False, description="Push the service's metrics to GCP.")
    project_id: str | None = Field(
        default=None, min_length=1, description="Project written to; required when enabled."
    )
    location: str = Field(
        default="global", min_length=1, description="Region or zone of the generic_task resource."
    )
    namespace: str = Field(
        default="inferops", min_length=1, description="Namespace of the generic_task resource."
    )
    task_id: str | None = Field(
        default=None, min_length=1, description="Names this replica; none: the host name."
    )
    endpoint: str = Field(
        default="https://monitoring.googleapis.com", description="Cloud Monitoring API root."
    )

    @field_validator("endpoint")
    @classmethod
    def _is_an_http_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _project_when_enabled(self) -> GcpSettings:
        if self.enabled and self.project_id is None:
            raise ValueError(
                "enabled needs project_id (or INFEROPS_TELEMETRY_GCP_PROJECT_ID): the project "
                "whose Cloud Monitoring receives the metrics"
            )
        return self


class DatadogSettings(_Section):
    """Datadog: the metrics API v2, or DogStatsD datagrams to a local agent."""

    enabled: bool = Field(default=False, description="Push the service's metrics to Datadog.")
    transport: Literal["api", "dogstatsd"] = Field(
        default="api", description="api: POST /api/v2/series; dogstatsd: UDP to the agent."
    )
    site: str = Field(
        default="datadoghq.com",
        pattern=r"^[a-z0-9.-]+$",
        description="Datadog site: datadoghq.com, datadoghq.eu, us5.datadoghq.com, ...",
    )
    api_key: str | None = Field(
        default=None,
        min_length=1,
        description="API key for the api transport; set it with "
        "INFEROPS_TELEMETRY_DATADOG_API_KEY, never in a file in Git.",
    )
    dogstatsd_host: str = Field(default="127.0.0.1", min_length=1, description="Agent address.")
    dogstatsd_port: int = Field(default=8125, ge=1, le=65535, description="Agent UDP port.")
    host: str | None = Field(
        default=None, min_length=1, description="Host resource of each series; none: host name."
    )

    @field_serializer("api_key")
    def _hide_key(self, value: str | None) -> str | None:
        return None if value is None else "***"

    @model_validator(mode="after")
    def _key_for_the_api(self) -> DatadogSettings:
        if self.enabled and self.transport == "api" and self.api_key is None:
            raise ValueError(
                "enabled with transport api needs api_key: set INFEROPS_TELEMETRY_DATADOG_API_KEY"
            )
        return self


class TelemetrySettings(_Section):
    """Logs, traces and the push of metrics to cloud monitoring; all off by default."""

    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people; json: one object per line, for clusters."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level logged."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="Base URL of an OTLP/HTTP collector, e.g. http://otel-collector:4318; "
        "spans go to its /v1/traces. none: no tracing.",
    )
    otlp_headers: dict[str, str] = Field(
        default_factory=dict, description="Headers of every OTLP request (e.g. an auth token)."
    )
    otlp_timeout_s: float = Field(default=10, gt=0, description="Timeout of one OTLP export.")
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fraction of new traces recorded; a request with a parent follows it.",
    )
    xray: bool = Field(
        default=False,
        description="AWS X-Ray compatible trace ids, and the X-Amzn-Trace-Id header read "
        "beside W3C traceparent (the telemetry extra brings both).",
    )
    export_interval_s: float = Field(
        default=60, ge=1, description="Seconds between two pushes of metrics."
    )
    cloudwatch: CloudWatchSettings = Field(default_factory=CloudWatchSettings)
    gcp: GcpSettings = Field(default_factory=GcpSettings)
    datadog: DatadogSettings = Field(default_factory=DatadogSettings)

    @field_validator("otlp_endpoint")
    @classmethod
    def _is_an_http_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_serializer("otlp_headers")
    def _hide_headers(self, value: dict[str, str]) -> dict[str, str]:
        return dict.fromkeys(value, "***")


class ServiceSettings(_Section):
    """The whole service configuration."""

    model: str = Field(default="sim-llama-3-8b", min_length=1, description="Model id served.")
    backend: Literal["simulator", "openai"] = Field(
        default="simulator",
        description="Where answers come from: the simulated model, or an OpenAI-compatible "
        "upstream (``upstream``).",
    )
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    pii: PiiSettings = Field(default_factory=PiiSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @model_validator(mode="before")
    @classmethod
    def _secure_defaults(cls, data: Any) -> Any:
        """With API keys listed, default PII masking and strict content types on."""
        if not isinstance(data, dict) or not _lists_keys(data.get("auth")):
            return data
        data = dict(data)
        for section, field, value in (
            ("pii", "mode", "mask"),
            ("limits", "require_json_content_type", True),
        ):
            current = data.get(section)
            if current is None:
                data[section] = {field: value}
            elif isinstance(current, dict) and field not in current:
                data[section] = {**current, field: value}
        return data

    @model_validator(mode="after")
    def _openai_needs_upstream(self) -> ServiceSettings:
        if self.backend == "openai" and self.upstream.url is None:
            raise ValueError(
                "backend is openai: set upstream.url (or INFEROPS_UPSTREAM_URL) to the "
                "upstream's base URL, e.g. http://127.0.0.1:8000/v1"
            )
        return self

    @model_validator(mode="after")
    def _limits_need_redis(self) -> ServiceSettings:
        if self.redis.url is None:
            for i, key in enumerate(self.auth.keys):
                if key.limited:
                    raise ValueError(
                        f"auth.keys[{i}] ({key.name}) sets rpm or tpm, which are kept in "
                        "Redis: set redis.url (or INFEROPS_REDIS_URL)"
                    )
            if self.cache.enabled:
                raise ValueError(
                    "cache.exact or cache.semantic is enabled, and the cache is kept in "
                    "Redis: set redis.url (or INFEROPS_REDIS_URL)"
                )
        return self

    @property
    def rate_limited(self) -> bool:
        """Whether any key has limits, so requests go through Redis."""
        return any(key.limited for key in self.auth.keys)


def _lists_keys(auth: Any) -> bool:
    if isinstance(auth, AuthSettings):
        return auth.enabled
    return isinstance(auth, dict) and bool(auth.get("keys"))


def env_names() -> dict[str, tuple[str, ...]]:
    """Return every supported override variable mapped to the field path it sets."""
    return {var: path for var, path, _ in _fields(ServiceSettings, ())}


def _fields(
    model: type[BaseModel], path: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...], bool]]:
    """Return (variable, field path, value is JSON) for every leaf field of ``model``."""
    found = []
    for name, field in model.model_fields.items():
        here = (*path, name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(_fields(annotation, here))
        else:
            structured = get_origin(annotation) in (list, dict)
            found.append((ENV_PREFIX + "_".join(here).upper(), here, structured))
    return found


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
    fields = _fields(ServiceSettings, ())
    known = {var: path for var, path, _ in fields}
    structured = {path for _, path, is_json in fields if is_json}
    sections = {path[0].upper() for path in known.values() if len(path) >= 2}
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
        target[path[-1]] = _env_value(var, env[var], path in structured, where)
        applied[".".join(path)] = var
    return applied


def _env_value(var: str, value: str, structured: bool, where: str) -> Any:
    if not structured:
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"invalid service config{where}: {var} must be JSON: {exc}") from None


def _describe(exc: ValidationError, from_env: Mapping[str, str]) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]
        ).removeprefix(".")
        # Find the variable that set this field or the section holding it.
        var = next(
            (v for f, v in from_env.items() if field == f or field.startswith((f"{f}.", f"{f}["))),
            None,
        )
        message = error["msg"].removeprefix("Value error, ")
        where = f"{field} (from {var})" if var else field
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def to_yaml(settings: ServiceSettings) -> str:
    """Render the effective settings as YAML, in the same shape the file takes."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
