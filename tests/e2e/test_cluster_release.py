"""Whole releases through the ``inferops`` command on a cluster environment.

No cluster is reachable from the test machines: the environment's kubeconfig
points at the emulated cluster of ``tests/cluster_sim.py`` (the API server's HTTP
answers on loopback; real service processes, nginx, Prometheus and Redis doing
what the cluster's controllers would do), and ``docker`` is the fake of
``tests/fake_docker.py``. Everything else is real and runs as a user runs it:
the CLI in its own process, Prefect in its ephemeral mode, a GitOps repository
on a Git host (a bare repository by ``file://`` URL), the manifests rendered
from the dev overlay, applied in direct mode and waited on through the API,
Locust sending each step's load to the ingress, the judge reading Prometheus.

``up`` seeds the environment; a good version is promoted and then serves all
traffic; a bad one is rolled back, the canary withdrawn to 0 replicas and 0%.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fake_docker
import httpx
import pytest
from cluster_sim import UPSTREAM_HEADER, ClusterSim, SimPod
from support import needs_binaries, run_cli

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["--set", "INFEROPS_SIMULATOR_TTFT_MS=30"]
BAD = ["--set", "INFEROPS_FAULTS_EXTRA_LATENCY_MS=150", "--set", "INFEROPS_FAULTS_ERROR_RATE=0.08"]
CHAT = {"model": "sim-llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
REGISTRY = "registry.test/inferops"


@dataclass(frozen=True)
class Env:
    """The user's folder (inferops.yaml, kubeconfig) and the cluster it points at."""

    dir: Path
    sim: ClusterSim
    gitops: Path


def write_config(dir_: Path, sim: ClusterSim, gitops: Path) -> None:
    """The user's inferops.yaml: the dev overlay on the cluster, applied in direct mode.

    The load generator asks for short answers (``max_tokens: 8``): on this machine that
    doubles the requests a window brings, and so the evidence the judge gets from each of
    its 5-second looks under the repository's SLOs.
    """
    (dir_ / "inferops.yaml").write_text(
        f"""
state_dir: {dir_ / "state"}
service_source: {ROOT / "service"}
environments:
  dev:
    platform: kubernetes
    router: nginx
    terraform: {{module: {ROOT / "terraform/environments/aws"}, cloud: aws}}
    cluster:
      kubeconfig: kubeconfig
      context: dev
      controller: direct
      namespace: inferops
      gitops_url: file://{gitops}
      gitops_path: environments/dev
      registry: {REGISTRY}
      endpoint: {sim.endpoint}
      prometheus_url: {sim.prometheus_url}
      scrape_interval_s: 1
      canary_replicas: 1
    canary:
      steps: [50, 100]
      window_s: 5
      warmup_s: 1
      budget_s: 240
      live_timeout_s: 60
      max_tokens: 8
      load_profile: {ROOT / "loadtests/profiles/step.yaml"}
    slo_file: {ROOT / "loadtests/slos.yaml"}
    manifests: {{source: {ROOT / "gitops/overlays/dev"}, renderer: kustomize, policies: false}}
"""
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    needs_binaries("nginx", "prometheus", "redis-server", "kubectl")
    dir_ = tmp_path_factory.mktemp("cluster-e2e")
    gitops = dir_ / "host" / "gitops.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(gitops)], check=True)
    with ClusterSim(dir_ / "cluster") as sim, pytest.MonkeyPatch.context() as mp:
        # The pipeline's builds meet the fake docker, first on the CLI's PATH.
        mp.setenv("PATH", f"{sim.bin_dir}{os.pathsep}{os.environ['PATH']}")
        sim.write_kubeconfig(dir_ / "kubeconfig", context="dev")
        write_config(dir_, sim, gitops)
        yield Env(dir_, sim, gitops)


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = run_cli(env.dir, *args)
    if result.returncode not in (0, 2):
        print("cluster events:\n" + "\n".join(env.sim.events))
    return result


def history(env: Env) -> list[dict[str, Any]]:
    out = cli(env, "history", "--env", "dev", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    releases: list[dict[str, Any]] = json.loads(out.stdout)
    return releases


def answered_by(env: Env, n: int = 40) -> collections.Counter[tuple[str, str]]:
    """(track header, process) of ``n`` requests sent to the ingress as a client sends them."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    with httpx.Client(base_url=env.sim.endpoint, timeout=10) as client:
        for _ in range(n):
            response = client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200, response.text
            pod = env.sim.pod_at(response.headers[UPSTREAM_HEADER])
            counts[(response.headers["x-inferops-track"], pod.name if pod else "?")] += 1
    return counts


def deployment(env: Env, track: str) -> dict[str, Any]:
    obj: dict[str, Any] | None = env.sim.read("Deployment", f"inferops-service-{track}")
    assert obj is not None, f"no {track} Deployment in the cluster"
    return obj


def container_env(dep: dict[str, Any]) -> dict[str, str]:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def serving(env: Env, track: str) -> SimPod:
    pod = env.sim.pods().get(track)
    assert pod is not None, f"no {track} process runs: {env.sim.events[-5:]}"
    return pod


def test_up_builds_seeds_and_waits_until_the_cluster_runs_it(env: Env) -> None:
    result = cli(env, "up", "--env", "dev")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # Built from HEAD with docker and pushed to the environment's registry.
    pushed = [c for c in fake_docker.calls(env.sim.registry_dir) if c[0] == "push"]
    assert [c[1].rpartition(":")[0] for c in pushed] == [f"{REGISTRY}/inferops-service"]
    # The GitOps repository holds the seed, and the cluster runs that commit.
    head = subprocess.run(
        ["git", "--git-dir", str(env.gitops), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    record = env.sim.read("ConfigMap", "inferops-applied")
    assert record is not None and record["data"]["revision"] == head
    stable = serving(env, "stable")
    assert stable.image.startswith(f"{REGISTRY}/inferops-service@sha256:")
    assert set(env.sim.pods()) == {"stable"}
    assert answered_by(env) == {("stable", stable.name): 40}


def test_a_good_version_is_promoted_and_then_serves_all_traffic(env: Env) -> None:
    result = cli(env, "release", "--env", "dev", *GOOD, "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads(result.stdout)["decision"] == "promote"
    release = history(env)[-1]
    assert release["outcome"] == "promoted"
    assert [(e["weight"], e["verdict"]) for e in release["events"]] == [
        (50, "start"),
        (100, "continue"),
        (0, "promote"),
    ]
    # The cluster runs the new version as stable, with no canary.
    assert container_env(deployment(env, "stable")) == {"INFEROPS_SIMULATOR_TTFT_MS": "30"}
    assert deployment(env, "canary")["spec"]["replicas"] == 0
    stable = serving(env, "stable")
    assert stable.env["INFEROPS_SIMULATOR_TTFT_MS"] == "30"
    assert set(env.sim.pods()) == {"stable"}
    assert answered_by(env) == {("stable", stable.name): 40}


def test_a_bad_version_is_rolled_back_and_the_canary_withdrawn(env: Env) -> None:
    before = serving(env, "stable")
    result = cli(env, "release", "--env", "dev", *BAD, "--json")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(result.stdout)["verdict"]
    assert verdict["decision"] == "rollback"
    failed = {c["metric"] for c in verdict["checks"] if c["outcome"] == "fail"}
    assert failed and failed <= {"error_rate", "latency_s", "ttft_s", "latency_p95_s", "ttft_p95_s"}
    release = history(env)[-1]
    assert release["outcome"] == "rolled back"
    assert release["events"][-1]["verdict"] == "rollback"
    # The live objects: no canary traffic, no canary replicas, stable untouched.
    ingress = env.sim.read("Ingress", "inferops-service-canary")
    assert ingress is not None
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] == "0"
    canary = deployment(env, "canary")
    assert canary["spec"]["replicas"] == 0
    assert canary["status"]["replicas"] == canary["status"].get("readyReplicas", 0) == 0
    assert container_env(deployment(env, "stable")) == {"INFEROPS_SIMULATOR_TTFT_MS": "30"}
    assert env.sim.pods() == {"stable": before}
    status = cli(env, "status", "--env", "dev", "--json")
    assert status.returncode == 0, status.stderr[-3000:]
    live = json.loads(status.stdout)
    assert live["live"] is True, live
    assert live["weights"] == {"stable": 100, "canary": 0}
    assert answered_by(env) == {("stable", before.name): 40}
