"""The release: build the service at a revision, then roll it out as a canary."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.build import build
from flows.rollout import rollout
from inferops.config import Config


@flow(name="release")
def release(config: Config, env: str, version: str = "HEAD",
            service_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build ``version`` and roll it out on ``env``; returns the final verdict."""
    image = build(config, env, version)
    result = rollout(config, env, image["ref"], service_env)
    return {**result, "image": image}
