"""Whole releases through the ``inferops`` command on a real local environment.

Each command runs as a user would run it (a subprocess, Prefect in its
ephemeral mode). A good version is promoted, a bad one rolled back; the GitOps
history and the live traffic split tell the story. Also: a second release
while one holds the environment is refused, and a release interrupted
mid-rollout is rolled back by the next one before it starts.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    ROOT,
    SteadyClient,
    flow_runs,
    free_base_port,
    needs_binaries,
    run_cli,
    running_env,
    start_cli,
    write_config,
)

from inferops.config import load_config
from inferops.environments import Target, open_target
from inferops.gitops import messages
from inferops.lock import EnvironmentLock
from inferops.rollout import Candidate, canary_at, commit_state, current_state

BASE_PORT = free_base_port()
GOOD = ["--set", "INFEROPS_SIMULATOR_TTFT_MS=30"]
BAD = ["--set", "INFEROPS_FAULTS_EXTRA_LATENCY_MS=150", "--set", "INFEROPS_FAULTS_ERROR_RATE=0.08"]


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dir_ = tmp_path_factory.mktemp("e2e")
    write_config(dir_, BASE_PORT, steps="[50, 100]", window_s=5)
    with running_env(dir_):
        yield dir_
    # The environment is gone; its history is not.
    kept = run_cli(dir_, "history", "--env", "local")
    assert kept.returncode == 0 and "SEEDED" in kept.stdout, kept.stderr


def target_of(dir_: Path) -> Target:
    return open_target(load_config(dir_ / "inferops.yaml"), "local")


def history(dir_: Path) -> list[dict]:
    out = run_cli(dir_, "history", "--env", "local", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def live_tracks(dir_: Path, n: int = 40) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    body = {
        "model": "sim-llama-3-8b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
    }
    with httpx.Client(base_url=target_of(dir_).layout.router_url, timeout=10) as client:
        for _ in range(n):
            counts[client.post("/v1/chat/completions", json=body).headers["x-inferops-track"]] += 1
    return counts


def test_a_good_version_is_promoted(env_dir: Path) -> None:
    result = run_cli(env_dir, "release", "--env", "local", *GOOD, "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(result.stdout)
    assert verdict["decision"] == "promote"
    release = history(env_dir)[-1]
    assert release["outcome"] == "promoted"
    assert [(e["weight"], e["verdict"]) for e in release["events"]] == [
        (50, "start"),
        (100, "continue"),
        (0, "promote"),
    ]
    state = current_state(target_of(env_dir).repo())
    # The overlay's 1% error rate stays: the release changed only what it set.
    assert dict(state.stable.env) == {
        "INFEROPS_FAULTS_ERROR_RATE": "0.01",
        "INFEROPS_SIMULATOR_TTFT_MS": "30",
    }
    assert state.weight == 0 and state.canary.replicas == 0
    assert live_tracks(env_dir) == {"stable": 40}


def test_a_bad_version_is_rolled_back(env_dir: Path) -> None:
    before = current_state(target_of(env_dir).repo())
    result = run_cli(env_dir, "release", "--env", "local", *BAD, "--json")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["decision"] == "rollback"
    # Errors, latency and TTFT all regressed; whichever the evidence shows first decides.
    failed = {c["metric"] for c in verdict["checks"] if c["outcome"] == "fail"}
    assert failed and failed <= {"error_rate", "latency_s", "ttft_s", "latency_p95_s", "ttft_p95_s"}
    release = history(env_dir)[-1]
    assert release["outcome"] == "rolled back"
    assert release["events"][-1]["verdict"] == "rollback"
    assert verdict["reason"] in release["events"][-1]["reason"]
    after = current_state(target_of(env_dir).repo())
    assert after.stable == before.stable and after.weight == 0
    status = target_of(env_dir).platform().status()
    assert status.live and status.weights == {"stable": 100, "canary": 0}
    assert {p["track"] for p in status.pods} == {"stable"}
    assert live_tracks(env_dir) == {"stable": 40}


def test_each_release_run_ends_in_a_state_that_names_its_outcome(env_dir: Path) -> None:
    """Prefect lists a rolled-back release as failed, a promoted one as completed."""
    releases = {r["release_id"]: r["outcome"] for r in history(env_dir)}
    runs = flow_runs("release")
    assert len(runs) >= 2, runs
    by_release = {r["message"].split(":")[0]: r for r in runs}
    seen = {rid: by_release[rid] for rid in releases if rid in by_release}
    assert {(releases[rid], r["type"], r["name"]) for rid, r in seen.items()} == {
        ("promoted", "COMPLETED", "Promoted"),
        ("rolled back", "FAILED", "RolledBack"),
    }
    rolled_back = next(r for rid, r in seen.items() if releases[rid] == "rolled back")
    assert "at step" in rolled_back["message"]  # the reason in plain words


def test_a_second_release_is_refused_while_one_holds_the_environment(env_dir: Path) -> None:
    target = target_of(env_dir)
    with EnvironmentLock(target.lock_path(), "local", "release r-99"):
        result = run_cli(env_dir, "release", "--env", "local", *GOOD)
    assert result.returncode == 1
    assert "held by release r-99" in result.stderr


def test_an_interrupted_release_is_rolled_back_before_the_next(env_dir: Path) -> None:
    target = target_of(env_dir)
    repo = target.repo()
    state = current_state(repo)
    crashed = canary_at(state, Candidate(state.stable.image, (("X_CRASHED", "1"),)), 25)
    rid = f"r-{len(history(env_dir))}"
    sha = commit_state(repo, crashed, messages.step(rid, 1, 2, 25, state.stable.image, "start", ""))
    target.platform().wait_until_live(sha, 60)
    result = run_cli(env_dir, "release", "--env", "local", *BAD)
    assert result.returncode == 2, result.stderr[-3000:]
    releases = {r["release_id"]: r for r in history(env_dir)}
    interrupted = releases[rid]
    assert interrupted["outcome"] == "rolled back"
    assert "interrupted" in interrupted["events"][-1]["reason"]
    assert releases[f"r-{int(rid[2:]) + 1}"]["outcome"] == "rolled back"


def test_bad_input_is_refused_with_a_clear_error(env_dir: Path) -> None:
    unknown = run_cli(env_dir, "release", "--env", "prod")
    assert unknown.returncode == 1
    assert "unknown environment 'prod'" in unknown.stderr
    bad_set = run_cli(env_dir, "release", "--env", "local", "--set", "NOEQUALS")
    assert bad_set.returncode == 1 and "KEY=VALUE" in bad_set.stderr
    (env_dir / "broken.yaml").write_text("environments:\n  local:\n    canary: {steps: [50]}\n")
    broken = run_cli(env_dir, "release", "--env", "local", "--config", "broken.yaml")
    assert broken.returncode == 1
    assert "environments.local.terraform" in broken.stderr


def test_bad_arguments_and_files_are_one_line_before_anything_starts(env_dir: Path) -> None:
    """Checked before Prefect, the build and the lock: one line, exit 1, nothing committed."""
    before = target_of(env_dir).repo().log()
    (env_dir / "slos-broken.yaml").write_text("checks:\n  - metric: error_rate\n    max: 2\n")
    config = (env_dir / "inferops.yaml").read_text()
    (env_dir / "bad-slos.yaml").write_text(
        config.replace(str(ROOT / "loadtests/slos.yaml"), str(env_dir / "slos-broken.yaml"))
    )
    cases = {
        "is not a commit of the project repository": ("--version", "no-such-revision"),
        "not an environment variable name": ("--set", "BAD-NAME=1"),
        "slos-broken.yaml": ("--config", "bad-slos.yaml"),
    }
    for says, args in cases.items():
        result = run_cli(env_dir, "release", "--env", "local", *args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
        assert result.stderr.startswith("inferops: error: ")
    assert target_of(env_dir).repo().log() == before


def test_a_step_that_cannot_go_live_is_withdrawn_and_reported(env_dir: Path) -> None:
    missing = "inferops-service@sha256:" + "0" * 64
    result = run_cli(env_dir, "rollout", missing, "--env", "local")
    assert result.returncode == 1
    assert "could not go live" in result.stderr
    release = history(env_dir)[-1]
    assert release["outcome"] == "rolled back"
    assert "failed" in release["events"][-1]["reason"]
    assert live_tracks(env_dir) == {"stable": 40}


def test_the_agent_killed_mid_release_costs_no_request_and_the_release_ends(
    env_dir: Path,
) -> None:
    """The drill: kill -9 the local agent while a release runs under a steady client."""
    target = target_of(env_dir)
    platform = target.platform()
    with SteadyClient(target.layout.router_url) as client:
        release = start_cli(env_dir, "release", "--env", "local", *GOOD)
        deadline = time.monotonic() + 300
        while platform.status().weights.get("canary", 0) == 0 and release.poll() is None:
            assert time.monotonic() < deadline, "the canary never went live"
            time.sleep(0.2)
        agent = platform.agent_pid()
        assert agent is not None
        os.kill(agent, signal.SIGKILL)
        killed = time.monotonic()
        while platform.agent_pid() in (None, agent) and time.monotonic() < killed + 60:
            time.sleep(0.1)
        back_s = time.monotonic() - killed
        out, err = release.communicate(timeout=600)
    print(
        f"drill mid-release: agent back {back_s:.1f}s after kill -9; the client sent "
        f"{client.sent} requests: {client.refused} refused, {client.gateway_errors} 502-504"
    )
    assert release.returncode in (0, 2), err[-3000:]
    assert out.splitlines()[0].split(": ")[1].split(" ")[0] in ("PROMOTE", "ROLLBACK")
    assert (client.refused, client.gateway_errors) == (0, 0)
    state = platform.status()
    assert state.live and state.revision == target.repo().head()
    assert state.weights == {"stable": 100, "canary": 0}
    assert {p["track"] for p in state.pods} == {"stable"}


def test_up_on_a_taken_port_says_which_and_what_to_do(tmp_path: Path) -> None:
    needs_binaries("redis-server", "nginx", "prometheus")
    base = free_base_port()
    write_config(tmp_path, base)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 79))
        taken.listen()
        result = run_cli(tmp_path, "up", "--env", "local")
    assert result.returncode == 1
    assert f"port {base + 79} for redis is taken" in result.stderr
    assert "base_port" in result.stderr
    assert run_cli(tmp_path, "down", "--env", "local").returncode == 0
