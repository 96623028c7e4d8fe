"""The release: build the service at a revision, then roll it out as a canary."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.build import build
from flows.rollout import rollout


@flow(name="release")
def release(
    env: str = "local",
    version: str = "HEAD",
    service_env: dict[str, str] | None = None,
    config_path: str = "inferops.yaml",
) -> dict[str, Any]:
    """Build ``version`` and roll it out on ``env``; returns the final verdict."""
    image = build(env, version, config_path)
    result = rollout(image["ref"], env, service_env, config_path)
    return {**result, "image": image}
