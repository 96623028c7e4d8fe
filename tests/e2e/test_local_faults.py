"""Fault drills on a local environment that runs its own Prefect server, as ``make demo``'s
does: the environment dies under a release, and a release is killed.

A release whose environment dies (every process of it killed with -9, the Prefect server
it reports to included) notices within seconds, commits a rollback that names the outage
and exits 1 with one line; ``inferops up`` brings the environment back at what Git says
and marks the dead release's Prefect runs crashed. A release killed with -9 leaves no load
behind; ``status`` shows its canary orphaned, and the next release marks its runs crashed
and rolls its canary back before it starts.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_base_port, run_cli, running_env, start_cli, write_config

from inferops import runs
from inferops.config import load_config
from inferops.environments import Target, open_target
from inferops.gitops.history import releases
from inferops.platforms.local import LocalPlatform
from inferops.platforms.supervisor import process_start, read_records

BASE_PORT = free_base_port()
GOOD = ["--set", "INFEROPS_SIMULATOR_TTFT_MS=30"]


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dir_ = tmp_path_factory.mktemp("faults")
    write_config(dir_, BASE_PORT, steps="[50, 100]", window_s=5, prefect_server=True)
    with running_env(dir_):
        yield dir_


def target_of(dir_: Path) -> Target:
    return open_target(load_config(dir_ / "inferops.yaml"), "local")


def run_states(target: Target, ids: list[str]) -> dict[str, str]:
    """The state of each flow run, as the environment's Prefect server lists it."""
    resp = httpx.post(
        f"{target.local.prefect_api_url}/flow_runs/filter",
        json={"flow_runs": {"id": {"any_": ids}}},
        timeout=10,
    )
    resp.raise_for_status()
    return {run["id"]: run["state_type"] for run in resp.json()}


def wait_for_canary_under_load(target: Target, release: Any) -> dict[str, Any]:
    """Wait until the release's canary takes traffic and its load runs; its record."""
    platform = target.platform()
    deadline = time.monotonic() + 300
    while True:
        assert release.poll() is None, release.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the canary never took load"
        live = runs.live(target.state_dir)
        if live and live[0]["loads"] and platform.status().weights.get("canary", 0) > 0:
            return live[0]
        time.sleep(0.2)


def kill_environment(platform: LocalPlatform) -> None:
    """kill -9 the keeper, the agent and every process they recorded (nginx's workers
    survive their master, as they do when it is killed)."""
    for pid in (platform.keeper_pid(), platform.agent_pid()):
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    for record in read_records(platform.run_dir).values():
        os.kill(int(record["pid"]), signal.SIGKILL)


def test_a_release_whose_environment_dies_rolls_back_in_one_line_and_up_restores_it(
    env_dir: Path,
) -> None:
    target = target_of(env_dir)
    platform = LocalPlatform(target.local)
    release = start_cli(env_dir, "release", "--env", "local", *GOOD)
    record = wait_for_canary_under_load(target, release)
    kill_environment(platform)
    killed = time.monotonic()
    out, err = release.communicate(timeout=300)
    exited_s = time.monotonic() - killed

    assert release.returncode == 1, err[-3000:]
    last = err.splitlines()[-1]
    assert last.startswith(f"inferops: error: {record['release_id']} rolled back at step 1")
    assert "the environment went down" in last and "(inferops up --env local)" in last
    # The compact console: the pipeline's lines, no engine chatter, no traceback.
    assert "Traceback" not in err and "Finished in state" not in err, err[-3000:]
    assert out == ""
    rolled = releases(target.repo().log())[-1]
    assert rolled.release_id == record["release_id"] and rolled.outcome == "rolled back"
    reason = rolled.events[-1].reason
    assert "the environment went down" in reason and "no stable pod answers" in reason
    assert "Prefect server" in reason

    started = time.monotonic()
    up = run_cli(env_dir, "up", "--env", "local")
    up_s = time.monotonic() - started
    assert up.returncode == 0, up.stderr[-3000:]
    state = platform.status()
    assert state.live and state.revision == target.repo().head()
    assert state.weights == {"stable": 100, "canary": 0}
    assert {p["track"] for p in state.pods} == {"stable"}
    assert set(run_states(target, list(record["flow_runs"])).values()) == {"CRASHED"}
    assert f"{record['release_id']} (pid {record['pid']}" in up.stderr
    assert runs.live(target.state_dir) == [] and not list(
        runs.records_dir(target.state_dir).glob("*.json")
    )
    print(
        f"drill environment down: the release exited {exited_s:.1f}s after kill -9 of "
        f"the whole environment; `inferops up` restored it at Git's head in {up_s:.1f}s"
    )


def test_a_killed_release_leaves_no_load_and_the_next_release_cleans_up(env_dir: Path) -> None:
    target = target_of(env_dir)
    release = start_cli(env_dir, "release", "--env", "local", *GOOD)
    record = wait_for_canary_under_load(target, release)
    [(load, load_started)] = [(int(p), s) for p, s in record["loads"].items()]
    release.kill()
    killed = time.monotonic()
    release.communicate()
    while process_start(load) == load_started and time.monotonic() < killed + 30:
        time.sleep(0.05)
    load_s = time.monotonic() - killed
    assert process_start(load) != load_started, "the load outlived its release"

    status = run_cli(env_dir, "status", "--env", "local", "--json")
    assert status.returncode == 0, status.stderr
    orphaned = json.loads(status.stdout)["release"]
    assert orphaned["state"] == "orphaned" and orphaned["release_id"] == record["release_id"]
    assert set(run_states(target, list(record["flow_runs"])).values()) == {"RUNNING"}

    after = run_cli(env_dir, "release", "--env", "local", *GOOD)
    assert after.returncode == 0, after.stderr[-3000:]
    assert f"{record['release_id']} (pid {record['pid']}" in after.stderr
    assert set(run_states(target, list(record["flow_runs"])).values()) == {"CRASHED"}
    found = {r.release_id: r for r in releases(target.repo().log())}
    assert found[record["release_id"]].outcome == "rolled back"
    assert "interrupted" in found[record["release_id"]].events[-1].reason
    state = target.platform().status()
    assert state.live and state.revision == target.repo().head()
    print(f"drill killed release: its load stopped {load_s:.1f}s after kill -9")
