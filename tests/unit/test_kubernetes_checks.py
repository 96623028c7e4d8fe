"""The Kubernetes platform's decisions, on objects recorded as the API returns them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from k8s_api import fixture

from inferops.platforms import kubernetes_checks as checks
from inferops.platforms.kubernetes_checks import ObjectKey

NEW = "8c2f4e1a9b3d7f60c5e2a4b18d9f3c7e6a1b2d40"
OLD = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c4"


def edited(name: str, **paths: Any) -> dict[str, Any]:
    """A recorded object with fields replaced, given as ``a__b__c=value``."""
    obj = copy.deepcopy(fixture(name))
    for path, value in paths.items():
        *parents, leaf = path.split("__")
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return obj


# --- commits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seen", "want", "same"),
    [
        (NEW, NEW, True),
        (NEW[:12], NEW, True),
        (NEW, NEW[:7].upper(), True),
        (NEW, OLD, False),
        (NEW[:6], NEW, False),
        (None, NEW, False),
    ],
)
def test_a_commit_matches_itself_abbreviated_to_seven_characters_or_more(
    seen: str | None, want: str, same: bool
) -> None:
    assert checks.same_commit(seen, want) is same


# --- Deployments -----------------------------------------------------------------------


def test_a_rolled_out_deployment_does_not_block() -> None:
    assert checks.deployment_blocker(fixture("deployment-stable.json")) is None
    assert checks.deployment_blocker(fixture("deployment-canary.json")) is None


def test_a_canary_on_zero_replicas_does_not_block() -> None:
    # The API leaves out replica counts that are zero.
    dep = edited("deployment-canary.json", spec__replicas=0)
    dep["status"] = {"observedGeneration": 9, "conditions": dep["status"]["conditions"]}
    assert checks.deployment_blocker(dep) is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"metadata__generation": 10},
            "generation 10 not yet observed by its controller",
        ),
        ({"status__availableReplicas": 1}, "1 of 2 replicas available"),
        ({"status__updatedReplicas": 1}, "1 of 2 replicas updated"),
        ({"status__replicas": 3}, "1 old replicas pending termination"),
        ({"spec__paused": True}, "rollout is paused"),
    ],
)
def test_a_deployment_mid_rollout_blocks_and_says_why(fields: dict[str, Any], reason: str) -> None:
    dep = edited("deployment-canary.json", **fields)
    assert checks.deployment_blocker(dep) == f"Deployment inferops-service-canary: {reason}"


def test_a_deployment_past_its_progress_deadline_says_so() -> None:
    dep = fixture("deployment-canary-rolling.json")
    dep["status"]["conditions"][1].update(
        status="False",
        reason="ProgressDeadlineExceeded",
        message='ReplicaSet "inferops-service-canary-58c7d9f6b4" has timed out progressing.',
    )
    assert checks.deployment_blocker(dep) == (
        "Deployment inferops-service-canary: exceeded its progress deadline: "
        'ReplicaSet "inferops-service-canary-58c7d9f6b4" has timed out progressing.'
    )


# --- Argo CD ---------------------------------------------------------------------------


def test_an_application_synced_and_healthy_at_the_commit_does_not_block() -> None:
    app = fixture("argocd-application-synced.json")
    assert checks.argo_revision(app) == NEW
    assert checks.argo_blocker(app, NEW) is None
    assert checks.argo_blocker(app, None) is None


def test_an_application_at_another_commit_names_both_and_a_failed_sync() -> None:
    app = edited("argocd-application-synced.json", status__sync__revision=OLD)
    app["status"]["operationState"].update(phase="Failed", message="one or more objects failed")
    assert checks.argo_blocker(app, NEW) == (
        "Argo CD Application inferops-prod is Synced at 3a7bd3e2360a (want 8c2f4e1a9b3d); "
        "its last sync failed: one or more objects failed"
    )


def test_a_multi_source_application_reports_its_first_revision() -> None:
    app = fixture("argocd-application-synced.json")
    del app["status"]["sync"]["revision"]
    app["status"]["sync"]["revisions"] = [NEW, OLD]
    assert checks.argo_blocker(app, NEW) is None


def test_an_application_without_status_blocks() -> None:
    app = fixture("argocd-application-synced.json")
    del app["status"]
    assert checks.argo_blocker(app, NEW) == (
        "Argo CD Application inferops-prod is Unknown at nothing (want 8c2f4e1a9b3d)"
    )


def test_a_controller_at_a_later_commit_that_holds_ours_does_not_block() -> None:
    """The caller, who has the repository, says whether the controller's commit holds ours."""

    def holds(seen: str | None, want: str) -> bool:
        return (seen, want) == (OLD, NEW)  # OLD is a later commit, built on NEW

    app = edited("argocd-application-synced.json", status__sync__revision=OLD)
    assert checks.argo_blocker(app, NEW, holds) is None
    assert checks.argo_blocker(app, NEW) is not None  # by default only the same commit
    ks = edited("flux-kustomization-ready.json", status__lastAppliedRevision=f"main@sha1:{OLD}")
    assert checks.flux_blocker(ks, NEW, holds) is None
    assert checks.flux_blocker(ks, NEW) is not None


# --- Flux ------------------------------------------------------------------------------


@pytest.mark.parametrize("applied", [f"main@sha1:{NEW}", f"main/{NEW}", f"sha1:{NEW}"])
def test_the_applied_revision_is_read_in_each_flux_format(applied: str) -> None:
    ks = edited("flux-kustomization-ready.json", status__lastAppliedRevision=applied)
    assert checks.flux_revision(ks) == NEW


def test_a_kustomization_ready_at_the_commit_does_not_block() -> None:
    assert checks.flux_blocker(fixture("flux-kustomization-ready.json"), NEW) is None


def test_a_kustomization_ready_for_an_older_generation_blocks() -> None:
    ks = edited("flux-kustomization-ready.json", metadata__generation=8)
    assert checks.flux_blocker(ks, NEW) == (
        "Flux Kustomization inferops-prod: generation 8 not yet reconciled at 8c2f4e1a9b3d"
    )


def test_a_kustomization_that_failed_to_apply_the_commit_says_why() -> None:
    ks = edited("flux-kustomization-not-ready.json", status__lastAppliedRevision=f"main@sha1:{OLD}")
    ks["status"]["conditions"][0].update(reason="BuildFailed", message="kustomize build failed")
    assert checks.flux_blocker(ks, NEW) == (
        "Flux Kustomization inferops-prod has applied 3a7bd3e2360a (want 8c2f4e1a9b3d); "
        "applying it failed: BuildFailed: kustomize build failed"
    )


def test_a_suspended_kustomization_blocks() -> None:
    ks = edited("flux-kustomization-ready.json", spec__suspend=True)
    assert checks.flux_blocker(ks, NEW) == "Flux Kustomization inferops-prod is suspended"


# --- routers ---------------------------------------------------------------------------


def test_the_canary_ingress_weight_is_a_share_of_its_total() -> None:
    ingress = fixture("ingress-canary.json")
    assert checks.ingress_canary_weight(ingress) == 25
    ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight-total"] = "1000"
    assert checks.ingress_canary_weight(ingress) == 2  # 25 of 1000 requests, rounded


def test_an_ingress_that_is_not_a_canary_sends_it_nothing() -> None:
    ingress = fixture("ingress-canary.json")
    ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] = "false"
    assert checks.ingress_canary_weight(ingress) == 0


def test_the_httproute_weight_is_the_canary_share_with_the_default_weight_one() -> None:
    route = fixture("httproute.json")
    assert checks.httproute_canary_weight(route, "inferops-service-canary") == 25
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        del ref["weight"]
    assert checks.httproute_canary_weight(route, "inferops-service-canary") == 50
    assert checks.httproute_canary_weight(route, "another-service") == 0


def test_an_httproute_its_gateway_has_not_accepted_blocks() -> None:
    route = fixture("httproute.json")
    assert checks.httproute_blocker(route) is None
    route["metadata"]["generation"] = 32
    assert checks.httproute_blocker(route) == (
        "HTTPRoute inferops-service: Gateway inference has not processed generation 32"
    )
    route["status"]["parents"][0]["conditions"][1].update(
        observedGeneration=32,
        status="False",
        reason="BackendNotFound",
        message="service inferops/inferops-service-canary not found",
    )
    route["status"]["parents"][0]["conditions"][0]["observedGeneration"] = 32
    assert checks.httproute_blocker(route) == (
        "HTTPRoute inferops-service: Gateway inference reports ResolvedRefs False: "
        "BackendNotFound: service inferops/inferops-service-canary not found"
    )
    route["status"] = {}
    assert checks.httproute_blocker(route) == (
        "HTTPRoute inferops-service is not accepted by any Gateway yet"
    )


def test_the_weight_blocks_only_when_asked_for_and_different() -> None:
    assert checks.weight_blocker("Ingress x", 25, None) is None
    assert checks.weight_blocker("Ingress x", 25, 25) is None
    assert (
        checks.weight_blocker("Ingress x", 5, 25) == "Ingress x sends 5% to the canary (want 25%)"
    )


# --- direct mode -----------------------------------------------------------------------

COMMIT = {
    "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
    "README.md": "# not an object\n",
    "app.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}\n"
    ),
    "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: inferops}\n",
}


def test_a_commit_s_objects_are_its_yaml_documents_namespaces_first() -> None:
    objects = checks.apply_order(checks.parse_objects(COMMIT))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Namespace", "inferops"),
        ("Service", "svc"),
        ("ConfigMap", "cm"),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a: [", "x.yaml: not valid YAML or JSON"),
        ("- 1\n- 2\n", "x.yaml: a document is not a Kubernetes object"),
        ("apiVersion: v1\nkind: Service\nmetadata: {}\n", "x.yaml: a Service has no metadata.name"),
    ],
)
def test_a_document_that_is_not_a_nameable_object_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        checks.parse_objects({"x.yaml": text})


def test_managed_objects_carry_the_label_and_a_namespace_where_one_applies() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "labels": {"a": "b"}}}
    body = checks.managed(svc, "inferops")
    assert body["metadata"] == {
        "name": "svc",
        "labels": {"a": "b", "inferops.io/managed-by": "inferops"},
        "namespace": "inferops",
    }
    assert svc["metadata"] == {"name": "svc", "labels": {"a": "b"}}  # the manifest is kept
    ns = checks.managed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, None)
    assert "namespace" not in ns["metadata"]
    assert checks.key_of(body) == ObjectKey("", "Service", "inferops", "svc")


def test_prune_candidates_are_the_managed_objects_that_left_the_commit() -> None:
    legacy = fixture("configmap-legacy.json")
    kept = copy.deepcopy(legacy)
    kept["metadata"].update(name="inferops-service-config", uid="u-kept")
    unmanaged = fixture("configmap-kube-root-ca.json")
    desired = {ObjectKey("", "ConfigMap", "inferops", "inferops-service-config")}
    assert checks.prune_candidates("", "ConfigMap", [legacy, kept, unmanaged], desired) == [
        (
            ObjectKey("", "ConfigMap", "inferops", "inferops-service-legacy"),
            legacy["metadata"]["uid"],
        )
    ]


def test_an_object_is_the_same_whatever_version_of_its_group_serves_it() -> None:
    v1 = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
    }
    v2 = {**v1, "apiVersion": "autoscaling/v2"}
    assert checks.key_of(v1) == checks.key_of(v2)
    assert str(checks.key_of(v2)) == "HorizontalPodAutoscaler.autoscaling h"


# --- Pods: why a rollout does not finish ----------------------------------------------


def test_a_pod_no_node_can_take_says_what_the_scheduler_said() -> None:
    problem = checks.pod_problem([fixture("pod-canary-unschedulable.json")])
    assert problem is not None
    assert problem.startswith("pod inferops-service-canary-58c7d9f6b4-q9m4t: Unschedulable: ")
    assert "3 Insufficient nvidia.com/gpu" in problem


def test_a_container_that_cannot_start_names_its_reason() -> None:
    problem = checks.pod_problem([fixture("pod-canary-imagepull.json")])
    assert problem is not None
    assert problem.startswith(
        "pod inferops-service-canary-58c7d9f6b4-x7k2p: container service ImagePullBackOff: "
    )
    assert "403 Forbidden" in problem


def test_a_crash_loop_says_how_the_container_last_ended() -> None:
    pod = fixture("pod-canary-imagepull.json")
    (status,) = pod["status"]["containerStatuses"]
    status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
    status["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    assert checks.pod_problem([pod]) == (
        "pod inferops-service-canary-58c7d9f6b4-x7k2p: container service CrashLoopBackOff "
        "(last exit: OOMKilled): back-off 40s"
    )


def test_pods_that_are_only_starting_are_no_problem() -> None:
    pod = fixture("pod-canary-imagepull.json")
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    assert checks.pod_problem([pod]) is None
    assert checks.pod_problem([]) is None


def test_a_deployment_s_pods_are_found_by_its_selector() -> None:
    dep = fixture("deployment-canary-rolling.json")
    assert checks.selector_of(dep) == (
        "app.kubernetes.io/name=inferops-service,inferops.io/track=canary"
    )
    del dep["spec"]["selector"]
    assert checks.selector_of(dep) is None


def test_a_pod_is_listed_with_its_restarts_and_how_it_last_ended() -> None:
    pod = fixture("pod-canary-imagepull.json")
    (status,) = pod["status"]["containerStatuses"]
    status["restartCount"] = 3
    status["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    assert checks.pod_entry(pod, "canary") == {
        "name": "inferops-service-canary-58c7d9f6b4-x7k2p",
        "track": "canary",
        "phase": pod["status"]["phase"],
        "restarts": 3,
        "last": "OOMKilled",
    }
