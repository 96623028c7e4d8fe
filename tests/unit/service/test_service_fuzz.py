"""Schema-based fuzzing of the API: requests generated from its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation the service's
``/openapi.json`` declares and sends them to the app in-process, with security on (an API
key, PII masking, strict content types). Every answer must be a declared status with a body
matching the document, and none may be a server error.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from inferops_service.app import create_app
from inferops_service.auth import hash_key
from inferops_service.config import ServiceSettings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

KEY = "sk-inferops-fuzz-key"
SETTINGS = ServiceSettings.model_validate(
    {
        "model": "sim-fuzz",
        "simulator": {"ttft_ms": 0, "tpot_ms": 0, "max_output_tokens": 64},
        "auth": {"keys": [{"name": "fuzz", "key_sha256": hash_key(KEY)}]},
        "limits": {"max_body_bytes": 64 * 1024},
    }
)
APP = create_app(SETTINGS)


async def served(scope: Scope, receive: Receive, send: Send) -> None:
    """The app as one long-running process: its start-up ran once, in ``_started``.

    The fuzzer's client would otherwise start and stop the app around every call, and a
    stopped app reports itself draining.
    """
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await APP(scope, receive, send)


schema = schemathesis.openapi.from_asgi("/openapi.json", served)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", Warning)
    from starlette.testclient import TestClient


@pytest.fixture(scope="module", autouse=True)
def _started() -> Iterator[None]:
    """Run the app's start-up, so that it is ready as a served process would be."""
    with TestClient(APP):
        yield


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_gets_a_server_error_or_an_undocumented_answer(
    case: schemathesis.Case,
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
