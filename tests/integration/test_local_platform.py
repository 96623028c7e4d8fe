"""The local platform on real parts: Terraform, git, nginx, Prometheus, Redis, service pods.

The environment is brought up by the ``up`` flow under Prefect's test harness;
the tests then change the GitOps repository directly, as a rollout would, and
check what the platform makes live.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.testing.utilities import prefect_test_harness
from support import SteadyClient, free_base_port, needs_binaries, write_config

from inferops.config import load_config
from inferops.environments import Target, open_target
from inferops.gitops import messages
from inferops.platforms.base import NotLive
from inferops.platforms.local_agent import desired_pods
from inferops.platforms.supervisor import read_records
from inferops.rollout import Candidate, canary_at, commit_state, current_state, rolled_back

BASE_PORT = free_base_port()
BODY = {
    "model": "sim-llama-3-8b",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 4,
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    needs_binaries("redis-server", "nginx", "prometheus")
    from flows.environment import down, up

    dir_ = tmp_path_factory.mktemp("platform")
    path = write_config(dir_, BASE_PORT)
    with prefect_test_harness(server_startup_timeout=120):
        up("local", str(path))
        target = open_target(load_config(path), "local")
        try:
            yield target
        finally:
            down("local", str(path))
        # Nothing of the environment outlives `down`, adopted processes included.
        assert read_records(target.layout.state_dir / "run") == {}
        lay = target.layout
        assert not any(
            _pid_listening(port, wait=False)
            for port in (lay.redis_port, lay.prometheus_port, lay.router_port)
        )


def tracks_of(target: Target, n: int) -> collections.Counter[str]:
    """Which track answered each of ``n`` requests.

    The local service fails about 1% of requests on purpose, like a real one: such an
    answer counts for its track too; any other failure fails the test.
    """
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=target.layout.router_url, timeout=10) as client:
        for _ in range(n):
            resp = client.post("/v1/chat/completions", json=BODY)
            injected = resp.status_code == 500 and "simulated fault" in resp.text
            assert resp.status_code == 200 or injected, resp.text
            counts[resp.headers["x-inferops-track"]] += 1
    return counts


def test_up_serves_the_stable_version_through_nginx(target: Target) -> None:
    state = target.platform().status()
    assert state.live and state.revision == target.repo().head()
    assert [p["track"] for p in state.pods] == ["stable", "stable"]
    assert tracks_of(target, 20) == {"stable": 20}


def test_a_committed_weight_becomes_the_live_split(target: Target) -> None:
    repo = target.repo()
    state = current_state(repo)
    candidate = Candidate(state.stable.image, (("INFEROPS_SIMULATOR_TTFT_MS", "5"),))
    sha = commit_state(
        repo,
        canary_at(state, candidate, 25),
        messages.step("r-1", 1, 2, 25, candidate.image, "start", "test"),
    )
    live = target.platform().wait_until_live(sha, 60)
    assert live.weights == {"stable": 75, "canary": 25}
    counts = tracks_of(target, 200)
    # nginx's weighted round robin is deterministic: the share is exact per cycle.
    assert counts["canary"] == pytest.approx(50, abs=8)
    sha = commit_state(
        repo,
        rolled_back(current_state(repo)),
        messages.rollback("r-1", 1, 2, candidate.image, state.stable.image, "test"),
    )
    target.platform().wait_until_live(sha, 60)
    assert tracks_of(target, 20) == {"stable": 20}


def test_prometheus_scrapes_every_pod_with_track_and_version(target: Target) -> None:
    deadline = time.monotonic() + 30
    labels: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        resp = httpx.get(
            f"{target.layout.prometheus_url}/api/v1/query",
            params={"query": 'up{job="inferops-service"} == 1'},
        )
        labels = [r["metric"] for r in resp.json()["data"]["result"]]
        pods = {p["name"] for p in target.platform().status().pods}
        if {m["pod"] for m in labels} == pods:
            break
        time.sleep(1)
    assert {m["track"] for m in labels} == {"stable"}
    image = current_state(target.repo()).stable.image
    assert {m["version"] for m in labels} == {image.rpartition("@sha256:")[2][:12]}


def test_a_crashed_pod_is_restarted(target: Target) -> None:
    pod = target.platform().status().pods[0]
    pid = _pid_listening(pod["port"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = {p["name"]: p for p in target.platform().status().pods}
        if now[pod["name"]]["restarts"] >= 1 and _pid_listening(pod["port"], wait=False):
            break
        time.sleep(0.2)
    assert now[pod["name"]]["restarts"] >= 1
    assert sum(tracks_of(target, 10).values()) == 10


def test_an_undeployable_commit_is_reported_and_the_live_state_kept(target: Target) -> None:
    repo = target.repo()
    before = target.platform().status().revision
    state = current_state(repo)
    missing = "inferops-service@sha256:" + "0" * 64
    bad = canary_at(state, Candidate(missing), 10)
    sha = commit_state(repo, bad, messages.step("r-9", 1, 2, 10, missing, "start", "test"))
    with pytest.raises(NotLive, match="not in"):
        target.platform().wait_until_live(sha, 30)
    assert tracks_of(target, 10) == {"stable": 10}
    restored = commit_state(
        repo,
        rolled_back(current_state(repo)),
        messages.rollback("r-9", 1, 2, missing, state.stable.image, "test"),
    )
    target.platform().wait_until_live(restored, 60)
    assert before != restored


def test_pods_that_exit_at_once_are_reported_at_once(target: Target) -> None:
    """Not after the readiness timeout: a pod that has exited will never be ready."""
    repo = target.repo()
    state = current_state(repo)
    broken = Candidate(state.stable.image, (("INFEROPS_BACKEND", "no-such-backend"),))
    sha = commit_state(
        repo,
        canary_at(state, broken, 10),
        messages.step("r-8", 1, 2, 10, state.stable.image, "start", "test"),
    )
    with pytest.raises(NotLive) as caught:
        target.platform().wait_until_live(sha, 60)
    message = str(caught.value)
    assert "exited before they were ready" in message
    assert "INFEROPS_BACKEND" in message  # the pod's own last words say why
    assert tracks_of(target, 10) == {"stable": 10}
    restored = commit_state(
        repo,
        rolled_back(current_state(repo)),
        messages.rollback("r-8", 1, 2, state.stable.image, state.stable.image, "test"),
    )
    target.platform().wait_until_live(restored, 60)


def _pid_listening(port: int, wait: bool = True) -> int:
    """The pid of the process listening on a local port (from /proc)."""
    deadline = time.monotonic() + (10 if wait else 0)
    while True:
        inode = _socket_inode(port)
        if inode:
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    fds = list((proc / "fd").iterdir())
                except OSError:
                    continue
                for fd in fds:
                    try:
                        if os.readlink(fd) == f"socket:[{inode}]":
                            return int(proc.name)
                    except OSError:
                        continue
        if time.monotonic() >= deadline:
            return 0
        time.sleep(0.2)


def _socket_inode(port: int) -> str | None:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return inode
    return None


def _git_equals_what_runs(target: Target) -> None:
    state = target.platform().status()
    assert state.live and state.revision == target.repo().head()
    wanted = desired_pods(current_state(target.repo()))
    assert {p["name"] for p in state.pods} == set(wanted)


def test_a_killed_agent_comes_back_and_the_data_plane_never_stops(target: Target) -> None:
    """The drill: kill -9 the agent under a steady client."""
    platform = target.platform()
    agent = platform.agent_pid()
    assert agent is not None
    pods = {p["name"]: _pid_listening(p["port"]) for p in platform.status().pods}
    with SteadyClient(target.layout.router_url) as client:
        time.sleep(1)
        os.kill(agent, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 30
        while time.monotonic() < deadline:
            again = platform.agent_pid()
            if again not in (None, agent) and platform.status().live:
                break
            time.sleep(0.1)
        back_s = time.monotonic() - killed
        time.sleep(1)
    print(
        f"drill: agent back and live {back_s:.1f}s after kill -9; the client sent "
        f"{client.sent} requests: {client.refused} refused, {client.gateway_errors} 502-504"
    )
    assert platform.agent_pid() not in (None, agent), f"no new agent after {back_s:.1f}s"
    assert client.sent > 20
    assert (client.refused, client.gateway_errors) == (0, 0)
    # The new agent adopted the pods that were serving instead of starting others.
    assert {p["name"]: _pid_listening(p["port"]) for p in platform.status().pods} == pods
    _git_equals_what_runs(target)


def test_with_no_agent_status_checks_now_and_up_adopts_what_runs(target: Target) -> None:
    platform = target.platform()
    keeper, agent = platform.keeper_pid(), platform.agent_pid()
    assert keeper is not None and agent is not None
    before = platform.status()
    pods = {p["name"]: _pid_listening(p["port"]) for p in before.pods}
    os.kill(keeper, signal.SIGKILL)  # nothing will start the agent again...
    os.kill(agent, signal.SIGKILL)
    while platform.agent_pid() is not None:
        time.sleep(0.1)
    dead = platform.status()
    # ...and status says what it found just now: the data plane still serving.
    assert not dead.live and "checked just now" in (dead.error or "")
    assert dead.components and all(c["running"] for c in dead.components.values())
    assert dead.pods and all(p["answering"] for p in dead.pods)
    assert sum(tracks_of(target, 10).values()) == 10
    after = platform.start(timeout_s=120, progress=lambda _: None)
    assert after.live and after.revision == before.revision
    assert {p["name"]: _pid_listening(p["port"]) for p in after.pods} == pods
    _git_equals_what_runs(target)
