"""The release: build the service at a revision, then roll it out as a canary."""

from __future__ import annotations

from prefect import flow
from prefect.client.schemas.objects import State

from flows.build import build
from flows.rollout import final_state, rollout, verdict_of


@flow(name="release")
def release(
    env: str = "local",
    version: str = "HEAD",
    service_env: dict[str, str] | None = None,
    config_path: str = "inferops.yaml",
) -> State:
    """Build ``version`` and roll it out on ``env``; ends ``Promoted`` or ``RolledBack``.

    Call it with ``return_state=True`` and read the verdict with ``flows.rollout.verdict_of``.
    """
    image = build(env, version, config_path)
    result = verdict_of(rollout(image["ref"], env, service_env, config_path, return_state=True))
    return final_state({**result, "image": image})
