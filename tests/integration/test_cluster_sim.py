"""The emulated cluster (``tests/cluster_sim.py``) does what a cluster does with an apply.

These check the emulation itself, driven by the Kubernetes platform's direct mode:
the dev overlay rendered, seeded with an image the fake ``docker`` built, applied
through the API server's HTTP answers; then real service processes start, the
Deployments report their rollout, nginx splits traffic by the canary Ingress's
weight and Prometheus scrapes both tracks.
"""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import fake_docker
import httpx
import pytest
from cluster_sim import UPSTREAM_HEADER, ClusterSim
from k8s_api import FakeKubeAPI, Served
from support import needs_binaries

from inferops.builders.docker import DockerBuilder
from inferops.builders.local import Image, source_tar
from inferops.gitops import render
from inferops.gitops.manifests import DesiredState, TrackSpec, read_state, seed, write_state
from inferops.platforms.kubernetes import KubernetesPlatform, KubernetesTarget

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "registry.test/inferops/inferops-service"
CHAT = {"model": "sim-llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSim]:
    needs_binaries("nginx", "prometheus", "redis-server", "kubectl")
    with ClusterSim(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def image(sim: ClusterSim) -> Image:
    """The service at HEAD, built and pushed by the fake docker."""
    return DockerBuilder(REGISTRY, binary=str(sim.docker)).build(ROOT, "HEAD", "service")


@pytest.fixture(scope="module")
def platform(
    sim: ClusterSim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubernetesPlatform]:
    kubeconfig = sim.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
    built = KubernetesPlatform.connect(
        KubernetesTarget(controller="direct", router="nginx"),
        kubeconfig=kubeconfig,
        context="dev",
        poll_s=0.1,
    )
    yield built
    built.api.close()


@pytest.fixture(scope="module")
def overlay() -> dict[str, str]:
    return render.split_objects(render.render_kustomize(ROOT / "gitops/overlays/dev"))


def tracks(sim: ClusterSim, n: int) -> collections.Counter[str]:
    """Which track answered each of ``n`` requests through the ingress."""
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=sim.endpoint, timeout=10) as client:
        for _ in range(n):
            response = client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200, response.text
            counts[response.headers["x-inferops-track"]] += 1
    return counts


def test_the_fake_docker_pushes_only_what_it_built_and_reports_its_digest(
    tmp_path: Path,
) -> None:
    docker = str(fake_docker.install(tmp_path / "bin", tmp_path / "state"))
    tag = "registry.test:5000/team/inferops-service:abc123"

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([docker, *args], input=stdin, capture_output=True, check=False)

    assert b"does not exist locally" in run("push", tag).stderr
    assert run("pull", "--quiet", tag).returncode == 1
    context = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "service/"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    assert b"Dockerfile" in run("build", "-t", tag, "-", stdin=context).stderr  # at the top only
    context = source_tar(ROOT, "HEAD", "service")
    hexdigest = hashlib.sha256(context).hexdigest()
    assert run("build", "--label", "a=b", "-t", tag, "-", stdin=context).returncode == 0
    inspect = ["inspect", "--format", "{{index .RepoDigests 0}}", tag]
    assert run(*inspect).returncode == 1  # built, never pushed: no repository digest yet
    assert run("push", tag).returncode == 0
    out = run(*inspect)
    assert (
        out.stdout.decode().strip()
        == f"registry.test:5000/team/inferops-service@sha256:{hexdigest}"
    )
    assert (tmp_path / "state/images" / f"sha256-{hexdigest}.tar").read_bytes() == context
    assert run("pull", "-q", tag).returncode == 0
    assert fake_docker.calls(tmp_path / "state")[0] == ["push", tag]


def test_the_api_server_tells_a_listener_of_every_write_that_changed_something() -> None:
    heard: list[tuple[str, str, str]] = []
    api = FakeKubeAPI(on_change=lambda m, p, o: heard.append((m, p, o["data"]["k"])))
    served = Served(api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
    path = "/api/v1/namespaces/inferops/configmaps/c"
    apply = {"Content-Type": "application/apply-patch+yaml"}
    try:
        with httpx.Client(base_url=served.url) as client:
            assert client.patch(path, content=json.dumps(body), headers=apply).status_code == 201
            assert client.patch(path, content=json.dumps(body), headers=apply).status_code == 200
            body["data"] = {"k": "2"}
            assert client.patch(path, content=json.dumps(body), headers=apply).status_code == 200
            assert client.get(path).status_code == 200
            assert client.delete(path).status_code == 200
            assert client.delete(path).status_code == 404
    finally:
        served.close()
    assert heard == [("PATCH", path, "1"), ("PATCH", path, "2"), ("DELETE", path, "2")]


def test_an_applied_commit_goes_live_once_the_pods_are_ready_and_serves_stable(
    sim: ClusterSim, image: Image, platform: KubernetesPlatform, overlay: dict[str, str]
) -> None:
    files = seed(overlay, image.ref, 1)
    with sim.kubelet_paused():
        platform.apply("1" * 40, files)
        pending = platform.status()
        assert not pending.live
        assert "inferops-service-stable" in (pending.error or "")
        assert sim.pods() == {}
    state = platform.wait_until_live("1" * 40, 60, weight=0)
    assert state.live and state.weights == {"stable": 100, "canary": 0}
    assert set(sim.pods()) == {"stable"}
    stable = sim.read("Deployment", "inferops-service-stable")
    assert stable is not None
    assert stable["status"]["readyReplicas"] == 1
    assert stable["status"]["observedGeneration"] == stable["metadata"]["generation"]
    canary = sim.read("Deployment", "inferops-service-canary")
    assert canary is not None and canary["status"]["replicas"] == 0
    assert tracks(sim, 20) == {"stable": 20}
    # The pod runs the ConfigMap's settings and the track from the downward API.
    pod = sim.pods()["stable"]
    assert pod.env["INFEROPS_IDENTITY_TRACK"] == "stable"
    assert pod.image == image.ref
    sim.wait_scraped("stable")


def test_a_canary_takes_its_weight_of_the_traffic_then_leaves(
    sim: ClusterSim, image: Image, platform: KubernetesPlatform, overlay: dict[str, str]
) -> None:
    files = seed(overlay, image.ref, 1)
    state = read_state(files)
    canary = DesiredState(
        state.stable, TrackSpec(image.ref, 1, (("INFEROPS_SIMULATOR_TTFT_MS", "5"),)), 25
    )
    platform.apply("2" * 40, write_state(files, canary))
    assert platform.wait_until_live("2" * 40, 60, weight=25).weights == {"stable": 75, "canary": 25}
    pods = sim.pods()
    assert set(pods) == {"stable", "canary"}
    assert pods["canary"].env["INFEROPS_SIMULATOR_TTFT_MS"] == "5"
    seen = tracks(sim, 100)
    assert 15 <= seen["canary"] <= 35, seen
    sim.wait_scraped("canary")
    with httpx.Client(base_url=sim.endpoint) as client:
        answered = client.post("/v1/chat/completions", json=CHAT).headers[UPSTREAM_HEADER]
    assert sim.pod_at(answered) in (pods["stable"], pods["canary"])

    # Back to stable alone: the canary's Deployment scales to 0 and its process stops.
    platform.apply("3" * 40, files)
    platform.wait_until_live("3" * 40, 60, weight=0)
    assert set(sim.pods()) == {"stable"}
    assert sim.pods()["stable"] is pods["stable"]  # its template did not change: not restarted
    status = (sim.read("Deployment", "inferops-service-canary") or {})["status"]
    assert status["replicas"] == status["readyReplicas"] == 0
    assert tracks(sim, 20) == {"stable": 20}
