"""`inferops status` on a cluster environment, through its kubeconfig.

No cluster is reachable from these machines: the command meets a loopback server that
answers the Kubernetes API's paths with objects recorded as the API returns them
(``tests/k8s_api.py``). The command runs as a user would run it, in its own process.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from k8s_api import FakeKubeAPI, Served, fixture
from support import run_cli

from inferops.config import load_config
from inferops.environments import cluster_repo, manifest_files
from inferops.gitops import messages
from inferops.gitops.manifests import DesiredState, TrackSpec, read_state, seed, write_state
from inferops.platforms.kubernetes_lease import LEASE_NAME

ROOT = Path(__file__).resolve().parents[2]
SYNCED = "8c2f4e1a9b3d7f60c5e2a4b18d9f3c7e6a1b2d40"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI()
    served = Served(api)
    (tmp_path / "kubeconfig").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "prod", "cluster": {"server": served.url}}],
                "users": [{"name": "ci", "user": {"token": "k8s-test-token"}}],
                "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "ci"}}],
            }
        )
    )
    (tmp_path / "inferops.yaml").write_text(
        f"""
state_dir: {tmp_path / "state"}
environments:
  prod:
    platform: kubernetes
    router: gateway
    terraform: {{module: {ROOT / "terraform/environments/aws"}, cloud: aws}}
    cluster: {{kubeconfig: kubeconfig, context: prod, controller: argocd, app: inferops-prod}}
    manifests: {{source: {ROOT / "gitops/overlays/prod"}, renderer: kustomize}}
"""
    )
    yield api
    served.close()


def test_status_reports_what_argo_cd_applied_and_the_live_split(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    cluster.put(
        fixture("argocd-application-synced.json"),
        fixture("deployment-stable.json"),
        fixture("deployment-canary.json"),
        fixture("httproute.json"),
    )
    result = run_cli(tmp_path, "status", "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout)
    assert state["revision"] == SYNCED
    assert state["live"] is True
    assert state["weights"] == {"stable": 75, "canary": 25}
    assert "deployment/inferops-service-canary" in state["components"]
    assert state["held_by"] is None
    # Read-only: status changes nothing in the cluster.
    assert cluster.seen("PATCH") == [] and cluster.seen("DELETE") == []


def test_status_says_what_blocks_a_cluster_that_is_not_in_sync(
    cluster: FakeKubeAPI, tmp_path: Path
) -> None:
    cluster.put(
        fixture("argocd-application-outofsync.json"),
        fixture("deployment-stable.json"),
        fixture("deployment-canary-rolling.json"),
        fixture("httproute.json"),
    )
    # A release holds the environment (its Lease renewed a moment ago).
    now = datetime.now(UTC)
    cluster.objects[f"/apis/coordination.k8s.io/v1/namespaces/inferops/leases/{LEASE_NAME}"] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": "inferops", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": "release r-4 (pid 4242 on ci-runner-7)",
            "leaseDurationSeconds": 120,
            "acquireTime": (now - timedelta(minutes=3)).isoformat(),
            "renewTime": now.isoformat(),
        },
    }
    result = run_cli(tmp_path, "status", "--env", "prod")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prod: NOT live" in result.stdout
    assert "waiting on:" in result.stdout
    assert "release: held by release r-4 (pid 4242 on ci-runner-7), since" in result.stdout


def test_history_of_a_cluster_environment_is_read_from_its_git_host(tmp_path: Path) -> None:
    bare = tmp_path / "host" / "gitops.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    (tmp_path / "inferops.yaml").write_text(
        f"""
state_dir: {tmp_path / "state"}
environments:
  prod:
    platform: kubernetes
    router: gateway
    terraform: {{module: {ROOT / "terraform/environments/aws"}, cloud: aws}}
    cluster: {{context: prod, gitops_url: "file://{bare}", gitops_path: envs/prod}}
    manifests: {{source: {ROOT / "gitops/overlays/prod"}, renderer: kustomize}}
"""
    )
    config = load_config(tmp_path / "inferops.yaml")
    repo = cluster_repo(config, "prod")
    stable = "registry.example.com/inferops-service@sha256:" + "a" * 64
    candidate = "registry.example.com/inferops-service@sha256:" + "b" * 64
    files = seed(manifest_files(config, "prod"), stable, 5)
    message = messages.seed("prod", stable)
    repo.create(files, message.subject, message.trailers)
    state = read_state(repo.files())
    step = messages.step("r-1", 1, 2, 10, candidate, "continue", "canary at 10%")
    canary = DesiredState(state.stable, TrackSpec(candidate, 2), 10)
    repo.commit(write_state(repo.files(), canary), step.subject, step.body, step.trailers)

    result = run_cli(tmp_path, "history", "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    (release,) = [r for r in json.loads(result.stdout) if r["release_id"] == "r-1"]
    assert release["image"] == candidate
    assert [e["weight"] for e in release["events"]] == [10]
    text = run_cli(tmp_path, "history", "--env", "prod")
    assert f"file://{bare} (envs/prod on main)" in text.stdout
