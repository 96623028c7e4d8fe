"""Security in the HTTP API, in-process: keys, limits, PII masking, input limits, audit."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from inferops_service.app import create_app
from inferops_service.auth import Principal, hash_key
from inferops_service.config import ServiceSettings
from inferops_service.metrics import ServiceMetrics
from inferops_service.pii import Screened
from inferops_service.ratelimit import Decision, LimiterUnavailable

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient

MODEL = "sim-test"
CHAT = "/v1/chat/completions"
KEY = "sk-inferops-unit-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EMAIL = "jane.doe@example.com"


def settings(**sections: Any) -> ServiceSettings:
    """Fast simulator settings plus the given sections."""
    data: dict[str, Any] = {"model": MODEL, "simulator": {"ttft_ms": 1, "tpot_ms": 0.1}}
    data.update(sections)
    return ServiceSettings.model_validate(data)


def keyed(rpm: int | None = None, tpm: int | None = None, **sections: Any) -> ServiceSettings:
    """Settings with one key, ``team-a`` of tenant ``acme``, and the given limits."""
    key = {"name": "team-a", "key_sha256": hash_key(KEY), "tenant": "acme", "rpm": rpm, "tpm": tpm}
    sections.setdefault("redis", {"url": "redis://127.0.0.1:1/0"})
    return settings(auth={"keys": [key]}, **sections)


def chat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Hi there"}]}
    body.update(fields)
    return body


class FakeLimiter:
    """Answers with a fixed decision (or failure) and records what it was asked."""

    def __init__(self, decision: Decision | Exception | None = None) -> None:
        self.decision = Decision(True, None, None, 9, 99) if decision is None else decision
        self.asked: list[tuple[str, int]] = []

    async def acquire(self, principal: Principal, tokens: int) -> Decision:
        self.asked.append((principal.name, tokens))
        if isinstance(self.decision, Exception):
            raise self.decision
        return self.decision


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


def client_for(config: ServiceSettings, metrics: ServiceMetrics, **kwargs: Any) -> TestClient:
    return TestClient(create_app(config, metrics=metrics, **kwargs))


@pytest.fixture
def keyed_client(metrics: ServiceMetrics) -> Iterator[TestClient]:
    with client_for(keyed(), metrics) as client:
        yield client


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name, labels)
    return value


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# --- API keys ---------------------------------------------------------------------------


def test_without_keys_no_key_is_needed_and_headers_are_ignored(metrics: ServiceMetrics) -> None:
    with client_for(settings(), metrics) as client:
        assert client.post(CHAT, json=chat(max_tokens=1)).status_code == 200
        bogus = {"Authorization": "Bearer whatever"}
        assert client.post(CHAT, json=chat(max_tokens=1), headers=bogus).status_code == 200
        assert client.get("/v1/models").status_code == 200


def test_missing_key_is_401_in_the_openai_shape(
    keyed_client: TestClient, metrics: ServiceMetrics
) -> None:
    response = keyed_client.post(CHAT, json=chat())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    assert "Authorization: Bearer" in error["message"]
    assert sample(metrics, "inferops_auth_failures_total", reason="missing") == 1
    assert sample(metrics, "inferops_requests_total", route=CHAT, status="401") == 1


@pytest.mark.parametrize("header", ["Bearer sk-wrong", f"Basic {KEY}", KEY])
def test_wrong_key_is_401(keyed_client: TestClient, metrics: ServiceMetrics, header: str) -> None:
    response = keyed_client.post(CHAT, json=chat(), headers={"Authorization": header})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert KEY not in error["message"] and "sk-wrong" not in error["message"]
    assert sample(metrics, "inferops_auth_failures_total", reason="invalid") == 1


def test_the_right_key_is_served(keyed_client: TestClient) -> None:
    response = keyed_client.post(CHAT, json=chat(max_tokens=3), headers=AUTH)
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 3


def test_model_routes_need_a_key_and_probes_do_not(keyed_client: TestClient) -> None:
    assert keyed_client.get("/v1/models").status_code == 401
    assert keyed_client.get(f"/v1/models/{MODEL}").status_code == 401
    assert keyed_client.get("/v1/models", headers=AUTH).status_code == 200
    assert keyed_client.get("/v1/models/other", headers=AUTH).status_code == 404
    assert keyed_client.get("/health").status_code == 200
    assert keyed_client.get("/ready").status_code == 200


def test_optional_keys_admit_anonymous_requests_but_not_bad_keys(
    metrics: ServiceMetrics,
) -> None:
    config = keyed().model_copy(
        update={"auth": keyed().auth.model_copy(update={"required": False})}
    )
    with client_for(config, metrics) as client:
        assert client.post(CHAT, json=chat(max_tokens=1)).status_code == 200
        wrong = client.post(CHAT, json=chat(), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


# --- rate limits ------------------------------------------------------------------------


def test_tokens_are_charged_up_front_from_the_prompt_and_max_tokens(
    metrics: ServiceMetrics,
) -> None:
    limiter = FakeLimiter()
    with client_for(keyed(rpm=10, tpm=1000), metrics, limiter=limiter) as client:
        client.post(CHAT, json=chat(max_tokens=5), headers=AUTH)
        client.post(CHAT, json=chat(), headers=AUTH)
    # "Hi there": ceil(8 / 4) = 2 prompt tokens; then max_tokens, or the default of 64.
    assert limiter.asked == [("team-a", 7), ("team-a", 66)]


def test_admitted_requests_carry_the_rate_limit_headers(metrics: ServiceMetrics) -> None:
    limiter = FakeLimiter(Decision(True, None, None, 9, 990))
    with client_for(keyed(rpm=10, tpm=1000), metrics, limiter=limiter) as client:
        plain = client.post(CHAT, json=chat(max_tokens=1), headers=AUTH)
        stream = client.post(CHAT, json=chat(max_tokens=1, stream=True), headers=AUTH)
    for response in (plain, stream):
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-requests"] == "10"
        assert response.headers["x-ratelimit-remaining-requests"] == "9"
        assert response.headers["x-ratelimit-limit-tokens"] == "1000"
        assert response.headers["x-ratelimit-remaining-tokens"] == "990"


@pytest.mark.parametrize(
    ("wait", "retry_after"), [(0.2, "1"), (1.0, "1"), (1.2, "2"), (59.01, "60")]
)
def test_a_limited_request_is_429_with_retry_after_rounded_up(
    metrics: ServiceMetrics, wait: float, retry_after: str
) -> None:
    limiter = FakeLimiter(Decision(False, wait, "requests", 0, 500))
    with client_for(keyed(rpm=10, tpm=1000), metrics, limiter=limiter) as client:
        response = client.post(CHAT, json=chat(), headers=AUTH)
    assert response.status_code == 429
    assert response.headers["retry-after"] == retry_after == str(max(1, math.ceil(wait)))
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "team-a" in error["message"] and "limit 10" in error["message"]
    assert sample(metrics, "inferops_rate_limited_total", key="team-a") == 1


def test_a_request_larger_than_the_token_limit_is_429_without_retry_after(
    metrics: ServiceMetrics,
) -> None:
    limiter = FakeLimiter(Decision(False, None, "tokens"))
    with client_for(keyed(tpm=50), metrics, limiter=limiter) as client:
        response = client.post(CHAT, json=chat(max_tokens=100), headers=AUTH)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "limit 50, requested 102" in error["message"]


def test_unreachable_limiter_refuses_with_503_by_default(metrics: ServiceMetrics) -> None:
    limiter = FakeLimiter(LimiterUnavailable("Redis at redis://x did not answer"))
    with client_for(keyed(rpm=10), metrics, limiter=limiter) as client:
        response = client.post(CHAT, json=chat(), headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "rate_limiter_unavailable")
    assert sample(metrics, "inferops_redis_errors_total", concern="auth") == 1


def test_unreachable_limiter_admits_when_the_policy_is_open(metrics: ServiceMetrics) -> None:
    limiter = FakeLimiter(LimiterUnavailable("down"))
    config = keyed(rpm=10, redis={"url": "redis://127.0.0.1:1/0", "on_error": {"auth": "open"}})
    with client_for(config, metrics, limiter=limiter) as client:
        assert client.post(CHAT, json=chat(max_tokens=1), headers=AUTH).status_code == 200
    assert sample(metrics, "inferops_redis_errors_total", concern="auth") == 1


def test_keys_without_limits_never_ask_the_limiter(metrics: ServiceMetrics) -> None:
    limiter = FakeLimiter(LimiterUnavailable("down"))
    with client_for(keyed(), metrics, limiter=limiter) as client:
        assert client.post(CHAT, json=chat(max_tokens=1), headers=AUTH).status_code == 200
    assert limiter.asked == []


# --- PII --------------------------------------------------------------------------------


def prompt_tokens(response: Any) -> int:
    tokens: int = response.json()["usage"]["prompt_tokens"]
    return tokens


def test_masking_is_on_by_default_with_keys_and_the_model_sees_the_masked_prompt(
    metrics: ServiceMetrics,
) -> None:
    prompt = f"Write to {EMAIL} please"
    masked = "Write to [EMAIL] please"
    with client_for(keyed(), metrics) as client:
        messages = [{"role": "user", "content": prompt}]
        response = client.post(CHAT, json=chat(messages=messages, max_tokens=1), headers=AUTH)
    assert response.status_code == 200
    assert prompt_tokens(response) == math.ceil(len(masked) / 4) != math.ceil(len(prompt) / 4)
    assert sample(metrics, "inferops_pii_detected_total", kind="email") == 1


def test_detect_mode_counts_but_forwards_the_prompt_unchanged(metrics: ServiceMetrics) -> None:
    prompt = f"Write to {EMAIL} please"
    with client_for(keyed(pii={"mode": "detect"}), metrics) as client:
        messages = [{"role": "user", "content": prompt}]
        response = client.post(CHAT, json=chat(messages=messages, max_tokens=1), headers=AUTH)
    assert prompt_tokens(response) == math.ceil(len(prompt) / 4)
    assert sample(metrics, "inferops_pii_detected_total", kind="email") == 1


def test_without_keys_prompts_are_not_screened(metrics: ServiceMetrics) -> None:
    prompt = f"Write to {EMAIL} please"
    with client_for(settings(), metrics) as client:
        messages = [{"role": "user", "content": prompt}]
        response = client.post(CHAT, json=chat(messages=messages, max_tokens=1))
    assert prompt_tokens(response) == math.ceil(len(prompt) / 4)
    assert sample(metrics, "inferops_pii_detected_total", kind="email") == 0


def test_screening_fails_closed(
    metrics: ServiceMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(text: str) -> Screened:
        raise RuntimeError(f"cannot screen {text!r}")

    path = tmp_path / "audit.log"
    config = keyed(audit={"path": str(path)})
    with client_for(config, metrics, screen=broken) as client:
        messages = [{"role": "user", "content": f"my address is {EMAIL}"}]
        response = client.post(CHAT, json=chat(messages=messages), headers=AUTH)
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "pii_screening_failed")
    assert EMAIL not in response.text
    # Nothing reached the model, and the prompt is in neither the logs nor the audit log.
    assert sample(metrics, "inferops_input_tokens_total", route=CHAT) == 0
    assert "PII screening failed (RuntimeError)" in caplog.text
    assert EMAIL not in caplog.text
    assert EMAIL.encode() not in path.read_bytes()
    (record,) = audit_records(path)
    assert (record["event"], record["status"], record["prompt_sha256"]) == ("pii_error", 500, None)


# --- input limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_non_json_bodies_are_415_when_json_is_required(
    keyed_client: TestClient, content_type: str | None
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["content-type"] = content_type
    response = keyed_client.post(CHAT, content=orjson.dumps(chat()), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_json_with_parameters_is_accepted(keyed_client: TestClient) -> None:
    headers = {**AUTH, "content-type": "Application/JSON; charset=utf-8"}
    body = orjson.dumps(chat(max_tokens=1))
    assert keyed_client.post(CHAT, content=body, headers=headers).status_code == 200


def test_without_keys_the_content_type_is_not_checked(metrics: ServiceMetrics) -> None:
    with client_for(settings(), metrics) as client:
        body = orjson.dumps(chat(max_tokens=1))
        response = client.post(CHAT, content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 200


def test_a_key_is_checked_before_the_body_is_read(keyed_client: TestClient) -> None:
    response = keyed_client.post(CHAT, content=b"x" * 2_000_000, headers={"content-type": "text"})
    assert response.status_code == 401


def test_the_body_limit_is_configurable(metrics: ServiceMetrics) -> None:
    with client_for(settings(limits={"max_body_bytes": 100}), metrics) as client:
        assert client.post(CHAT, json=chat(max_tokens=1)).status_code == 200
        long = chat(messages=[{"role": "user", "content": "x" * 100}])
        response = client.post(CHAT, json=long)
    assert response.status_code == 413
    assert "100 bytes" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("limits", "messages", "param", "code"),
    [
        ({"max_messages": 2}, ["a", "b", "c"], "messages", "array_above_max_length"),
        ({"max_message_chars": 5}, ["abcde", "abcdef"], "messages[1].content",
         "string_above_max_length"),
        ({"max_prompt_chars": 8}, ["abcde", "abcd"], "messages", "context_length_exceeded"),
    ],
)  # fmt: skip
def test_message_limits_are_400(
    metrics: ServiceMetrics, limits: dict[str, int], messages: list[str], param: str, code: str
) -> None:
    with client_for(settings(limits=limits), metrics) as client:
        body = chat(messages=[{"role": "user", "content": m} for m in messages])
        response = client.post(CHAT, json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, code)
        fits = chat(messages=[{"role": "user", "content": "abcd"}], max_tokens=1)
        assert client.post(CHAT, json=fits).status_code == 200


# --- audit ------------------------------------------------------------------------------


def test_every_request_and_refusal_is_audited(metrics: ServiceMetrics, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    limiter = FakeLimiter()
    config = keyed(rpm=10, audit={"path": str(path)})
    with client_for(config, metrics, limiter=limiter) as client:
        messages = [{"role": "user", "content": f"mail {EMAIL}"}]
        ok = client.post(CHAT, json=chat(messages=messages, max_tokens=4), headers=AUTH)
        client.post(CHAT, json=chat(max_tokens=2, stream=True), headers=AUTH)
        client.post(CHAT, json=chat())
        client.post(CHAT, json=chat(model="nope"), headers=AUTH)
        limiter.decision = Decision(False, 3.0, "requests", 0, None)
        client.post(CHAT, json=chat(), headers=AUTH)
        client.get("/v1/models", headers=AUTH)
    records = audit_records(path)
    assert [(r["event"], r["route"], r["status"]) for r in records] == [
        ("request", CHAT, 200),
        ("request", CHAT, 200),
        ("auth_failed", CHAT, 401),
        ("request", CHAT, 404),
        ("rate_limited", CHAT, 429),
        ("request", "/v1/models", 200),
    ]
    first = records[0]
    assert (first["key"], first["tenant"]) == ("team-a", "acme")
    assert first["id"] == ok.json()["id"]
    assert first["prompt_tokens"] == ok.json()["usage"]["prompt_tokens"]
    assert first["completion_tokens"] == 4
    assert first["cost_usd"] == pytest.approx(config.cost.usd_for(first["prompt_tokens"], 4))
    assert first["pii"] == {"email": 1}
    assert first["prompt_sha256"] == hashlib.sha256(b"mail [EMAIL]").hexdigest()
    assert records[1]["completion_tokens"] == 2
    assert records[2]["key"] is None and records[2]["detail"] == "invalid_api_key"
    assert records[3]["detail"] == "model_not_found"
    assert EMAIL.encode() not in path.read_bytes()
