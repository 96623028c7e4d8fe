"""The local environment's Prefect server and worker run prefect.yaml's deployments.

``inferops up`` with ``prefect_server: true`` starts a Prefect server and a
process worker that deploys ``prefect.yaml``. The test checks the deployments,
their schedule and parameters on the real server's REST API, then emits the
``inferops.release.requested`` event and waits for the worker to run the
triggered release to completion.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_base_port, running_env, write_config

from inferops.config import load_config
from inferops.environments import open_target
from inferops.gitops.history import releases

BASE_PORT = free_base_port()
API = f"http://127.0.0.1:{BASE_PORT + 42}/api"


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dir_ = tmp_path_factory.mktemp("prefect-env")
    write_config(dir_, BASE_PORT, steps="[50, 100]", window_s=4, prefect_server=True)
    with running_env(dir_):
        yield dir_


def post(path: str, body: dict[str, Any] | None = None) -> Any:
    resp = httpx.post(f"{API}{path}", json=body or {}, timeout=10)
    resp.raise_for_status()
    return resp.json()


def wait_for(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def deployments() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in post("/deployments/filter")}


def test_the_worker_deploys_prefect_yaml(env_dir: Path) -> None:
    found = wait_for("the six deployments", lambda: len(deployments()) >= 6 and deployments(), 120)
    assert set(found) == {
        "release-local",
        "rollout-local",
        "build-local",
        "provision-local",
        "drift-local",
        "loadtest-local",
    }
    crons = [s["schedule"]["cron"] for s in found["drift-local"]["schedules"]]
    assert crons == ["0 * * * *"]
    nightly = found["loadtest-local"]
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["profile"] == "soak"
    config = str((env_dir / "inferops.yaml").resolve())
    assert found["provision-local"]["parameters"] == {
        "env": "local",
        "config_path": config,
        "auto_approve": True,
    }
    assert found["release-local"]["parameters"] == {"env": "local", "config_path": config}
    automations = post("/automations/filter")
    assert any("inferops.release.requested" in a["trigger"].get("expect", []) for a in automations)


def test_an_event_triggers_a_release_that_the_worker_runs(env_dir: Path) -> None:
    wait_for("the worker's deployments", lambda: "release-local" in deployments(), 120)
    release_id = deployments()["release-local"]["id"]
    emit = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prefect.events import emit_event\n"
            "emit_event(event='inferops.release.requested',"
            " resource={'prefect.resource.id': 'inferops.service'},"
            " payload={'version': 'HEAD'})",
        ],
        env={**os.environ, "PREFECT_API_URL": API},
        capture_output=True,
        text=True,
        check=False,
    )
    assert emit.returncode == 0, emit.stderr

    def finished_run() -> dict[str, Any] | None:
        runs = post("/flow_runs/filter", {"deployments": {"id": {"any_": [release_id]}}})
        done = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
        return done[0] if done else None

    run = wait_for("the triggered release to finish", finished_run, 240)
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["parameters"]["version"] == "HEAD"
    target = open_target(load_config(env_dir / "inferops.yaml"), "local")
    assert releases(target.repo().log())[-1].outcome == "promoted"
