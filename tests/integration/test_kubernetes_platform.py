"""The Kubernetes platform against a Kubernetes API's HTTP answers.

No cluster is reachable from these machines, so this tests at the HTTP boundary: the
official client, configured from a kubeconfig, talks to a loopback server
(``tests/k8s_api.py``) that serves objects recorded as the API returns them
(``tests/fixtures/k8s/``) and records the requests it receives.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_api import FIXTURES, FakeKubeAPI, Served, fixture
from kubernetes.client import ApiClient, Configuration

from inferops.gitops.manifests import read_state, write_state
from inferops.gitops.repo import GitOpsRepo
from inferops.platforms.base import NotLive, PlatformError
from inferops.platforms.kubernetes import (
    RECORD_NAME,
    GitOpsCluster,
    KubernetesPlatform,
    KubernetesTarget,
    api_client,
)

NEW = "8c2f4e1a9b3d7f60c5e2a4b18d9f3c7e6a1b2d40"
OLD = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c4"
TOKEN = "k8s-test-token"
Build = Callable[..., KubernetesPlatform]


@pytest.fixture
def cluster() -> Iterator[tuple[FakeKubeAPI, str]]:
    api = FakeKubeAPI()
    served = Served(api)
    yield api, served.url
    served.close()


@pytest.fixture
def platform(cluster: tuple[FakeKubeAPI, str], tmp_path: Path) -> Iterator[Build]:
    """Build a platform for a target, its client configured from a kubeconfig file."""
    _, url = cluster
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "prod", "cluster": {"server": url}}],
                "users": [{"name": "inferops", "user": {"token": TOKEN}}],
                "contexts": [
                    {"name": "prod", "context": {"cluster": "prod", "user": "inferops"}},
                    {"name": "other", "context": {"cluster": "missing", "user": "inferops"}},
                ],
                "current-context": "other",
            }
        )
    )
    made: list[KubernetesPlatform] = []

    def build(**target: Any) -> KubernetesPlatform:
        built = KubernetesPlatform.connect(
            KubernetesTarget(**{"app": "inferops-prod", **target}),
            kubeconfig=kubeconfig,
            context="prod",
            poll_s=0.01,
        )
        made.append(built)
        return built

    yield build
    for built in made:
        built.api.close()


def running(api: FakeKubeAPI, *controller: str, router: str = "ingress-canary.json") -> None:
    """The cluster with the controller's objects, both Deployments rolled out, and the router."""
    api.put(
        *(fixture(name) for name in controller),
        fixture("deployment-stable.json"),
        fixture("deployment-canary.json"),
        fixture(router),
    )


def not_live(build: Build, revision: str = NEW, weight: int | None = 25, **target: Any) -> str:
    """The NotLive message of a short wait."""
    with pytest.raises(NotLive) as caught:
        build(**target).wait_until_live(revision, 0.05, weight=weight)
    return str(caught.value)


# --- Argo CD ---------------------------------------------------------------------------


def test_an_argo_application_synced_and_healthy_at_the_commit_is_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, url = cluster
    running(api, "argocd-application-synced.json")
    seen: list[str] = []
    state = platform().wait_until_live(NEW, 1.0, weight=25, progress=seen.append)
    assert state.live and state.revision == NEW and state.error is None
    assert state.weights == {"stable": 75, "canary": 25}
    assert state.components["deployment/inferops-service-canary"]["available"] == 2
    assert state.endpoints == {"kubernetes": url}
    assert seen == []
    reads = [r.path for r in api.seen("GET")]
    assert "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/inferops-prod" in reads
    assert "/apis/apps/v1/namespaces/inferops/deployments/inferops-service-canary" in reads
    assert {r.authorization for r in api.requests} == {f"Bearer {TOKEN}"}
    assert api.seen("PATCH") == []  # nothing to ask of Argo CD: it is at the commit


@pytest.mark.parametrize(
    ("recorded", "want", "reason"),
    [
        (
            "argocd-application-outofsync.json",
            NEW,
            "Argo CD Application inferops-prod is OutOfSync at 8c2f4e1a9b3d",
        ),
        (
            "argocd-application-progressing.json",
            NEW,
            "Argo CD Application inferops-prod is Progressing at 8c2f4e1a9b3d: "
            "Waiting for rollout to finish: 1 of 2 updated replicas are available...",
        ),
        (
            "argocd-application-synced.json",
            OLD,
            "Argo CD Application inferops-prod is Synced at 8c2f4e1a9b3d (want 3a7bd3e2360a)",
        ),
    ],
    ids=["out-of-sync", "progressing", "another-commit"],
)
def test_an_argo_application_not_synced_healthy_at_the_commit_is_not_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build, recorded: str, want: str, reason: str
) -> None:
    api, _ = cluster
    running(api, recorded)
    message = not_live(platform, want)
    assert message.startswith(f"commit {want[:12]} not live after 0.05s: ")
    assert message.endswith(reason)


def test_a_wait_for_a_commit_argo_has_not_seen_asks_it_to_refresh_once(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    progress: list[str] = []
    with pytest.raises(NotLive):
        platform().wait_until_live(OLD, 0.05, weight=25, progress=progress.append)
    [patch] = api.seen("PATCH")
    assert patch.path == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/inferops-prod"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
    assert progress == [
        "waiting for 3a7bd3e2360a: Argo CD Application inferops-prod is Synced at "
        "8c2f4e1a9b3d (want 3a7bd3e2360a)"
    ]


def test_no_nudge_means_the_wait_only_reads(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    built = platform()
    built.nudge = False
    with pytest.raises(NotLive):
        built.wait_until_live(OLD, 0.05)
    assert {r.method for r in api.requests} == {"GET"}


def test_a_missing_application_is_named(cluster: tuple[FakeKubeAPI, str], platform: Build) -> None:
    api, _ = cluster
    running(api)
    assert not_live(platform).endswith("Application argocd/inferops-prod not found")


def test_refused_credentials_fail_at_once_rather_than_wait(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    api.refuse = True
    with pytest.raises(PlatformError) as caught:
        platform().wait_until_live(NEW, 60.0, weight=25)
    assert not isinstance(caught.value, NotLive)
    assert "refused the credentials (403 access denied for inferops)" in str(caught.value)


# --- Flux ------------------------------------------------------------------------------


def test_a_flux_kustomization_ready_at_the_commit_is_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "flux-kustomization-ready.json", "flux-gitrepository.json")
    state = platform(controller="flux").wait_until_live(NEW, 1.0, weight=25)
    assert state.live and state.revision == NEW
    reads = {r.path for r in api.seen("GET")}
    assert (
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/inferops-prod"
        in reads
    )


def test_a_flux_kustomization_not_ready_is_not_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "flux-kustomization-not-ready.json", "flux-gitrepository.json")
    assert not_live(platform, controller="flux").endswith(
        "Flux Kustomization inferops-prod is not Ready at 8c2f4e1a9b3d: HealthCheckFailed: "
        "health check failed after 5m0.01s: timeout waiting for: "
        "[Deployment/inferops/inferops-service-canary status: 'InProgress']"
    )


def test_a_wait_for_a_commit_flux_has_not_applied_asks_source_and_kustomization_to_reconcile(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "flux-kustomization-ready.json", "flux-gitrepository.json")
    message = not_live(platform, OLD, controller="flux")
    assert message.endswith(
        "Flux Kustomization inferops-prod has applied 8c2f4e1a9b3d (want 3a7bd3e2360a)"
    )
    patches = api.seen("PATCH")
    assert [p.path for p in patches] == [
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/inferops-gitops",
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/inferops-prod",
    ]
    for p in patches:
        assert p.content_type == "application/merge-patch+json"
        assert set(p.body["metadata"]["annotations"]) == {"reconcile.fluxcd.io/requestedAt"}


# --- Deployments and routers -----------------------------------------------------------


def test_a_deployment_mid_rollout_is_not_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    api.put(fixture("deployment-canary-rolling.json"))
    assert not_live(platform).endswith(
        "Deployment inferops-service-canary: 1 of 2 replicas available"
    )


def test_an_ingress_weight_other_than_asked_is_not_live(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    assert not_live(platform, weight=50).endswith(
        "Ingress inferops-service-canary sends 25% to the canary (want 50%)"
    )


def test_an_httproute_weight_is_the_canary_share_of_its_backends(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json", router="httproute.json")
    state = platform(router="gateway").wait_until_live(NEW, 1.0, weight=25)
    assert state.live and state.weights == {"stable": 75, "canary": 25}
    assert not_live(platform, weight=5, router="gateway").endswith(
        "HTTPRoute inferops-service sends 25% to the canary (want 5%)"
    )


def test_status_reports_what_runs_without_a_commit_to_compare(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    api.put(fixture("deployment-canary-rolling.json"), fixture("pod-canary-imagepull.json"))
    state = platform().status()
    assert state.revision == NEW and not state.live
    assert state.error.startswith("Deployment inferops-service-canary: 1 of 2 replicas available")
    assert state.components["controller"]["revision"] == NEW
    assert state.weights == {"stable": 75, "canary": 25}
    # Each track's pods with their restarts, which the rollout counts against the canary.
    assert [(p["name"], p["track"], p["restarts"]) for p in state.pods] == [
        ("inferops-service-canary-58c7d9f6b4-x7k2p", "canary", 0)
    ]


# --- Direct mode -----------------------------------------------------------------------


def commit_files() -> dict[str, str]:
    """A rendered commit, as the GitOps repository's environment folder holds it."""
    return {p.name: p.read_text() for p in sorted((FIXTURES / "commit").iterdir())}


def test_direct_mode_applies_every_object_server_side_and_prunes_the_one_that_left(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    api.put(
        fixture("configmap-applied.json"),
        fixture("configmap-legacy.json"),
        fixture("configmap-kube-root-ca.json"),
    )
    applied = platform(controller="direct").apply(NEW, commit_files())

    patches = api.seen("PATCH")
    assert [p.path for p in patches] == [
        "/api/v1/namespaces/inferops/configmaps/inferops-service-config",
        "/apis/apps/v1/namespaces/inferops/deployments/inferops-service-stable",
        "/apis/apps/v1/namespaces/inferops/deployments/inferops-service-canary",
        "/api/v1/namespaces/inferops/services/inferops-service-stable",
        "/api/v1/namespaces/inferops/services/inferops-service-canary",
        "/apis/networking.k8s.io/v1/namespaces/inferops/ingresses/inferops-service-canary",
        f"/api/v1/namespaces/inferops/configmaps/{RECORD_NAME}",
    ]
    for p in patches:
        assert p.content_type == "application/apply-patch+yaml"
        assert p.query["fieldManager"] == "inferops"
        assert p.query["force"].lower() == "true"
    for p in patches[:-1]:
        assert p.body["metadata"]["labels"]["inferops.io/managed-by"] == "inferops"
        assert p.body["metadata"]["namespace"] == "inferops"
    service = api.get("v1", "Service", "inferops", "inferops-service-stable")
    assert service["spec"]["selector"]["inferops.io/track"] == "stable"

    [delete] = api.seen("DELETE")
    assert delete.path == "/api/v1/namespaces/inferops/configmaps/inferops-service-legacy"
    assert delete.body["preconditions"] == {"uid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}
    assert api.get("v1", "ConfigMap", "inferops", "inferops-service-legacy") is None
    assert api.get("v1", "ConfigMap", "inferops", "kube-root-ca.crt") is not None
    assert applied.pruned == ("ConfigMap inferops/inferops-service-legacy",)
    assert len(applied.applied) == 6

    record = api.get("v1", "ConfigMap", "inferops", RECORD_NAME)
    assert record["data"]["revision"] == NEW
    assert "inferops.io/managed-by" not in (record["metadata"].get("labels") or {})


def test_direct_mode_prunes_a_kind_that_left_the_commit(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    api.put(fixture("configmap-applied.json"), fixture("httproute.json"))
    applied = platform(controller="direct").apply(NEW, commit_files())
    [delete] = api.seen("DELETE")
    assert delete.path == (
        "/apis/gateway.networking.k8s.io/v1/namespaces/inferops/httproutes/inferops-service"
    )
    assert applied.pruned == ("HTTPRoute.gateway.networking.k8s.io inferops/inferops-service",)
    record = api.get("v1", "ConfigMap", "inferops", RECORD_NAME)
    assert "HTTPRoute" not in record["data"]["kinds"]


def test_direct_mode_is_live_once_applied_and_rolled_out(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "configmap-applied.json")
    assert not_live(platform, controller="direct").endswith(
        "namespace inferops has 3a7bd3e2360a applied (want 8c2f4e1a9b3d)"
    )
    built = platform(controller="direct")
    built.apply(NEW, commit_files())
    # The apply changed both Deployments' specs; no controller has observed them yet.
    assert not_live(platform, controller="direct").endswith(
        "Deployment inferops-service-stable: generation 15 not yet observed by its controller"
    )
    for track in ("stable", "canary"):
        dep = api.get("apps/v1", "Deployment", "inferops", f"inferops-service-{track}")
        dep["status"]["observedGeneration"] = dep["metadata"]["generation"]
    assert built.wait_until_live(NEW, 1.0, weight=25).live


def test_direct_mode_rejects_a_kind_the_cluster_does_not_serve(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    files = {
        "monitor.yaml": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
        "metadata: {name: inferops-service}\nspec: {}\n"
    }
    with pytest.raises(PlatformError, match=r"does not serve ServiceMonitor .*CRD installed"):
        platform(controller="direct").apply(NEW, files)


def test_a_kubeconfig_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="cannot configure the Kubernetes client"):
        api_client(tmp_path / "missing", context="prod")


def test_an_api_server_that_does_not_answer_is_the_reason_after_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    with (
        ApiClient(Configuration(host=url)) as client,
        pytest.raises(NotLive, match=f"the Kubernetes API at {url} did not answer"),
    ):
        KubernetesPlatform(client, poll_s=0.01).wait_until_live(NEW, 0.05)


# --- A release's view: the GitOps commit decides what live means -------------------------


class OneCommit:
    """A GitOps repository's commit as the release's platform reads it: files at a revision."""

    def __init__(self, files: dict[str, str]) -> None:
        self.at = files
        self.asked: list[str | None] = []

    def files(self, rev: str | None = None) -> dict[str, str]:
        self.asked.append(rev)
        return self.at


def test_a_commit_is_live_only_at_the_canary_weight_it_holds(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")  # Argo CD at NEW, the canary Ingress at 25%
    files = commit_files()
    assert read_state(files).weight == 25
    repo = OneCommit(files)
    assert GitOpsCluster(platform(), repo).wait_until_live(NEW, 1.0).live  # type: ignore[arg-type]
    assert repo.asked == [NEW]
    moved = write_state(files, read_state(files).with_weight(50))
    with pytest.raises(NotLive, match=r"sends 25% to the canary \(want 50%\)"):
        GitOpsCluster(platform(), OneCommit(moved)).wait_until_live(NEW, 0.05)  # type: ignore[arg-type]


def test_without_a_controller_the_commit_is_applied_before_it_is_waited_on(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api)
    heard: list[str] = []
    cluster_view = GitOpsCluster(
        platform(controller="direct"),
        OneCommit(commit_files()),  # type: ignore[arg-type]
        heard.append,
    )
    # The apply changed both Deployments' specs; no controller has observed them yet.
    with pytest.raises(NotLive, match="not yet observed by its controller"):
        cluster_view.wait_until_live(NEW, 0.05)
    record = api.get("v1", "ConfigMap", "inferops", RECORD_NAME)
    assert record["data"]["revision"] == NEW
    assert heard[0].startswith(f"applied {NEW[:12]}: ")


def test_a_later_commit_of_the_branch_holds_ours_but_an_unrelated_one_does_not(
    cluster: tuple[FakeKubeAPI, str], platform: Build, tmp_path: Path
) -> None:
    """One GitOps repository holds two environments; Argo CD syncs the branch's head."""
    api, _ = cluster
    remote = tmp_path / "gitops.git"
    ours = GitOpsRepo(remote, tmp_path / "work-prod", "main", "envs/prod")
    mine = ours.create(commit_files(), "seed prod", {})
    other = GitOpsRepo(remote, tmp_path / "work-gcp", "main", "envs/gcp")
    later = other.commit(commit_files(), "seed gcp", "", {})
    assert later is not None and later != mine

    def synced_at(revision: str) -> None:
        app = fixture("argocd-application-synced.json")
        app["status"]["sync"]["revision"] = revision
        api.put(app)

    running(api)
    synced_at(later)  # Argo CD applied the head: our commit and the other environment's
    assert GitOpsCluster(platform(), ours).wait_until_live(mine, 1.0).live
    synced_at(OLD)  # a commit our repository does not hold
    with pytest.raises(NotLive, match=r"is Synced at 3a7bd3e2360a \(want "):
        GitOpsCluster(platform(), ours).wait_until_live(mine, 0.05)


def test_a_rollout_that_cannot_finish_says_what_its_pods_are_waiting_on(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    api.put(
        fixture("argocd-application-synced.json"),
        fixture("deployment-stable.json"),
        fixture("deployment-canary-rolling.json"),
        fixture("ingress-canary.json"),
        fixture("pod-canary-unschedulable.json"),
    )
    message = not_live(platform)
    assert "Deployment inferops-service-canary: 1 of 2 replicas available; " in message
    assert "Unschedulable: 0/5 nodes are available: 3 Insufficient nvidia.com/gpu" in message
    listed = [r for r in api.seen("GET") if r.path == "/api/v1/namespaces/inferops/pods"]
    assert listed[0].query["labelSelector"] == (
        "app.kubernetes.io/name=inferops-service,inferops.io/track=canary"
    )


def test_pods_the_pipeline_may_not_list_leave_the_deployment_s_own_reason(
    cluster: tuple[FakeKubeAPI, str], platform: Build
) -> None:
    api, _ = cluster
    running(api, "argocd-application-synced.json")
    api.put(fixture("deployment-canary-rolling.json"))
    api.forbidden.add("/api/v1/namespaces/inferops/pods")  # this pipeline's RBAC grants no pods
    with pytest.raises(NotLive) as caught:
        platform().wait_until_live(NEW, 0.05, weight=25)
    assert str(caught.value).endswith(
        "Deployment inferops-service-canary: 1 of 2 replicas available"
    )
