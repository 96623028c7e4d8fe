"""The release: build the service at a revision, then roll it out as a canary."""

from __future__ import annotations

from prefect import flow
from prefect.client.schemas.objects import State

from flows.build import build
from flows.rollout import final_state, rollout, verdict_of
from flows.runs import recorded
from inferops.config import load_config
from inferops.environments import open_target


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
    # Recorded from the start, so that a release killed while it builds leaves no run behind.
    with recorded(open_target(load_config(config_path), env).state_dir):
        image = build(env, version, config_path)
        state = rollout(image["ref"], env, service_env, config_path, return_state=True)
        result = verdict_of(state)
    return final_state({**result, "image": image})
