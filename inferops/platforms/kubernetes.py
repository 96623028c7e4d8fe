"""The Kubernetes platform: whether a cluster runs a GitOps commit, asked of its API server.

A commit is live when all of these agree:

- the controller reports it: Argo CD's Application is Synced and Healthy at the
  commit, or Flux's Kustomization has applied it and is Ready for its generation;
  in direct mode (no controller), ``apply`` has applied it and pruned what left it;
- both Deployments (stable and canary) have rolled out: their generation is
  observed, every replica updated and available, no progress deadline exceeded;
- the router sends the canary the weight asked for: the canary Ingress's
  ``canary-weight`` (router ``nginx``) or the canary's share of the HTTPRoute's
  backendRefs, the route accepted by its Gateway (router ``gateway``).

``status`` and ``wait_until_live`` only read, except that a wait asks the
controller once to look at Git now (Argo CD's refresh annotation, Flux's
``reconcile.fluxcd.io/requestedAt``) rather than at its next poll; turn that
off with ``nudge=False`` where the credentials may only read.

Direct mode's ``apply`` server-side applies every object of the rendered commit
(field manager ``inferops``, conflicts forced), labelled
``inferops.io/managed-by: inferops``; then deletes the objects in the namespace
with that label that the commit no longer holds, of the kinds this or the
previously applied commit holds; then records the commit and its kinds in the
ConfigMap ``inferops-applied`` (not labelled, so never pruned). One environment
per namespace: the label does not say which environment applied an object.

The API client is a constructor parameter (``api_client`` builds one from a
kubeconfig or the pod's service account). Refused credentials (401, 403) raise
PlatformError at once, as waiting will not help; anything else (an object not
there yet, a 5xx, the server unreachable) is a reason that blocks, polled until
the timeout.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient, LazyDiscoverer
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from urllib3.exceptions import HTTPError

from inferops.gitops.manifests import ManifestError, read_state
from inferops.gitops.repo import GitOpsRepo
from inferops.platforms import kubernetes_checks as checks
from inferops.platforms.base import LiveState, NotLive, PlatformError

MERGE_CONTENT_TYPE = "application/merge-patch+json"
RECORD_NAME = "inferops-applied"
ARGO_REFRESH = "argocd.argoproj.io/refresh"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

Controller = Literal["argocd", "flux", "direct"]
Router = Literal["nginx", "gateway"]
Progress = Callable[[str], None]

_CONTROLLER_NAMESPACE = {"argocd": "argocd", "flux": "flux-system", "direct": ""}
_CONTROLLER_API = {
    "argocd": ("argoproj.io/v1alpha1", "Application"),
    "flux": ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
}


@dataclass(frozen=True)
class KubernetesTarget:
    """Where the environment runs in the cluster, and how commits reach it."""

    namespace: str = "inferops"
    """The namespace of the service's objects."""
    controller: Controller = "argocd"
    """argocd or flux: that controller syncs the GitOps repository; direct: ``apply`` does."""
    app: str = "inferops"
    """The name of the Argo CD Application or Flux Kustomization that syncs the environment."""
    controller_namespace: str | None = None
    """The namespace of that object (default: argocd, or flux-system)."""
    router: Router = "nginx"
    """nginx: the canary Ingress's weight annotation; gateway: the HTTPRoute's weights."""
    service: str = "inferops-service"
    """The base name of the service's objects (``<service>-stable``, ``<service>-canary``)."""
    field_manager: str = "inferops"
    """The field manager of server-side apply and of the controller nudges."""

    @property
    def app_namespace(self) -> str:
        """The namespace of the controller's object."""
        return self.controller_namespace or _CONTROLLER_NAMESPACE[self.controller]


@dataclass(frozen=True)
class Applied:
    """What direct mode's ``apply`` did: the commit, the objects applied, those pruned."""

    revision: str
    applied: tuple[str, ...]
    pruned: tuple[str, ...]


def api_client(
    kubeconfig: str | Path | None = None, context: str | None = None, in_cluster: bool = False
) -> k8s.ApiClient:
    """An API client from a kubeconfig (file and context; the default one if unset) or the pod's."""
    configuration = k8s.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            # persist_config=False: a refreshed token is not written back into the user's file.
            k8s_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError) as exc:
        where = "the pod's service account" if in_cluster else (kubeconfig or "the kubeconfig")
        raise PlatformError(f"cannot configure the Kubernetes client from {where}: {exc}") from exc
    return k8s.ApiClient(configuration)


class _MemoryDiscoverer(LazyDiscoverer):
    """The dynamic client's discovery, kept in memory: nothing written to a shared temp file."""

    def __init__(self, client: DynamicClient, cache_file: str | None) -> None:
        # A path that never exists, so the cache starts empty; _write_cache never creates it.
        unused = os.path.join(tempfile.gettempdir(), f"inferops-discovery-{uuid.uuid4().hex}")
        # The library's constructor is unannotated.
        super().__init__(client, unused)  # type: ignore[no-untyped-call]

    def _write_cache(self) -> None:
        pass


class _Unavailable(PlatformError):
    """The API cannot answer now (not there yet, a 5xx, unreachable); the message says why."""


class _NotServed(_Unavailable):
    """The cluster does not serve a kind (its CRD is not installed)."""


def _raw(_: object, data: Any) -> Any:
    """The dynamic client's answer as the JSON the server sent."""
    return data


def _api_message(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {message or exc.reason}"


class KubernetesPlatform:
    """A GitOps environment on a cluster, read (in direct mode, applied) through its API."""

    def __init__(
        self,
        api: k8s.ApiClient,
        target: KubernetesTarget | None = None,
        *,
        poll_s: float = 2.0,
        nudge: bool = True,
    ) -> None:
        self.api = api
        self.target = target or KubernetesTarget()
        self.poll_s = poll_s
        self.nudge = nudge
        self._dynamic: DynamicClient | None = None

    @classmethod
    def connect(
        cls,
        target: KubernetesTarget | None = None,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        **options: Any,
    ) -> KubernetesPlatform:
        """The platform with a client from a kubeconfig or the pod's service account."""
        return cls(api_client(kubeconfig, context, in_cluster), target, **options)

    # --- reading -------------------------------------------------------------------------

    def status(self) -> LiveState:
        """The live state now: the controller's commit, the rollouts, the router's weight
        and each track's pods with their container restarts."""
        return self._observe(None, None, with_pods=True)

    def wait_until_live(
        self,
        revision: str,
        timeout_s: float,
        *,
        weight: int | None = None,
        progress: Progress | None = None,
        reached: checks.Reached = checks.same_commit,
    ) -> LiveState:
        """Block until ``revision`` is live (at canary ``weight``, if given), or raise NotLive.

        ``reached`` tells whether the commit the controller reports holds ``revision``
        (by default: only when it is that commit).
        """
        deadline = time.monotonic() + timeout_s
        nudged = not self.nudge or self.target.controller == "direct"
        reported: str | None = None
        while True:
            state = self._observe(revision, weight, reached)
            if state.live:
                return state
            if not nudged and not reached(state.revision, revision):
                self._nudge(progress)
                nudged = True
            if progress is not None and state.error != reported:
                progress(f"waiting for {checks.short(revision)}: {state.error}")
            reported = state.error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotLive(
                    f"commit {checks.short(revision)} not live after {timeout_s:g}s: {state.error}"
                )
            time.sleep(min(self.poll_s, remaining))

    def _observe(
        self,
        revision: str | None,
        weight: int | None,
        reached: checks.Reached = checks.same_commit,
        *,
        with_pods: bool = False,
    ) -> LiveState:
        t = self.target
        blockers: list[str] = []
        components: dict[str, dict[str, Any]] = {}
        pods: list[dict[str, Any]] = []

        seen, blocker, summary = self._controller(revision, reached)
        components["controller"] = summary
        if blocker:
            blockers.append(blocker)

        for track in ("stable", "canary"):
            name = f"{t.service}-{track}"
            try:
                dep = self._get("apps/v1", "Deployment", name, t.namespace)
            except _Unavailable as exc:
                blockers.append(str(exc))
                continue
            components[f"deployment/{name}"] = checks.deployment_summary(dep)
            blocker = checks.deployment_blocker(dep)
            listed = self._pods_of(dep) if blocker or with_pods else []
            if blocker:
                problem = checks.pod_problem(listed)
                blockers.append(f"{blocker}; {problem}" if problem else blocker)
            if with_pods:
                pods += [checks.pod_entry(p, track) for p in listed]

        live_weight, blocker = self._router(weight)
        if blocker:
            blockers.append(blocker)
        weights = (
            {} if live_weight is None else {"stable": 100 - live_weight, "canary": live_weight}
        )
        return LiveState(
            revision=seen,
            live=not blockers,
            pods=tuple(pods),
            weights=weights,
            error=blockers[0] if blockers else None,
            endpoints={"kubernetes": str(self.api.configuration.host)},
            components=components,
        )

    def _pods_of(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """A Deployment's pods, or none when they cannot be read (or may not be)."""
        selector = checks.selector_of(dep)
        if selector is None:
            return []
        try:
            listed = self._guard(
                "listing pods",
                lambda: self.dynamic.get(
                    self._resource("v1", "Pod"),
                    namespace=self.target.namespace,
                    label_selector=selector,
                    serializer=_raw,
                ),
            )
        except (PlatformError, ApiException):
            return []  # no pods to read (or no right to): the Deployment's blocker says enough
        return list(listed.get("items") or [])

    def _controller(
        self, revision: str | None, reached: checks.Reached
    ) -> tuple[str | None, str | None, dict[str, Any]]:
        """The commit the controller reports, why it blocks ``revision``, and a summary."""
        t = self.target
        if t.controller == "direct":
            return self._direct_revision(revision)
        api_version, kind = _CONTROLLER_API[t.controller]
        try:
            obj = self._get(api_version, kind, t.app, t.app_namespace)
        except _Unavailable as exc:
            return None, str(exc), {"kind": kind, "name": t.app}
        if t.controller == "argocd":
            seen, blocker = checks.argo_revision(obj), checks.argo_blocker(obj, revision, reached)
        else:
            seen, blocker = checks.flux_revision(obj), checks.flux_blocker(obj, revision, reached)
        return seen, blocker, {"kind": kind, "name": t.app, "revision": seen, "blocker": blocker}

    def _direct_revision(
        self, revision: str | None
    ) -> tuple[str | None, str | None, dict[str, Any]]:
        summary: dict[str, Any] = {"kind": "ConfigMap", "name": RECORD_NAME}
        try:
            record = self._get("v1", "ConfigMap", RECORD_NAME, self.target.namespace)
        except _Unavailable as exc:
            return None, str(exc), summary
        seen = (record.get("data") or {}).get("revision")
        summary["revision"] = seen
        if revision is not None and not checks.same_commit(seen, revision):
            blocker = (
                f"namespace {self.target.namespace} has {checks.short(seen)} applied "
                f"(want {checks.short(revision)})"
            )
            return seen, blocker, summary
        return seen, None, summary

    def _router(self, want: int | None) -> tuple[int | None, str | None]:
        """The canary's live weight and why it blocks ``want``."""
        t = self.target
        try:
            if t.router == "nginx":
                name = f"{t.service}-canary"
                ingress = self._get("networking.k8s.io/v1", "Ingress", name, t.namespace)
                live = checks.ingress_canary_weight(ingress)
                return live, checks.weight_blocker(f"Ingress {name}", live, want)
            route = self._get("gateway.networking.k8s.io/v1", "HTTPRoute", t.service, t.namespace)
        except _Unavailable as exc:
            return None, str(exc)
        live = checks.httproute_canary_weight(route, f"{t.service}-canary")
        blocker = checks.weight_blocker(f"HTTPRoute {t.service}", live, want)
        return live, blocker or checks.httproute_blocker(route)

    def _nudge(self, progress: Progress | None) -> None:
        """Ask the controller to read Git now rather than at its next poll."""
        t = self.target
        api_version, kind = _CONTROLLER_API[t.controller]
        now = datetime.now(UTC).isoformat()
        if t.controller == "argocd":
            targets = [(api_version, kind, t.app, t.app_namespace, {ARGO_REFRESH: "normal"})]
        else:
            targets = [(api_version, kind, t.app, t.app_namespace, {FLUX_REQUESTED_AT: now})]
            try:
                ks = self._get(api_version, kind, t.app, t.app_namespace)
                source = (ks.get("spec") or {}).get("sourceRef") or {}
            except _Unavailable:
                source = {}
            if source.get("kind") == "GitRepository":
                targets.insert(
                    0,
                    (
                        "source.toolkit.fluxcd.io/v1",
                        "GitRepository",
                        source["name"],
                        source.get("namespace") or t.app_namespace,
                        {FLUX_REQUESTED_AT: now},
                    ),
                )
        for version, what, name, namespace, notes in targets:
            body = {"metadata": {"annotations": notes}}
            try:
                self.dynamic.patch(
                    self._resource(version, what),
                    body=body,
                    name=name,
                    namespace=namespace,
                    content_type=MERGE_CONTENT_TYPE,
                    field_manager=t.field_manager,
                    serializer=_raw,
                )
            except (ApiException, HTTPError, PlatformError) as exc:
                why = _api_message(exc) if isinstance(exc, ApiException) else str(exc)
                if progress is not None:
                    progress(f"could not ask {what} {name} to reconcile now ({why}); waiting")
                return

    # --- direct mode ---------------------------------------------------------------------

    def apply(
        self, revision: str, files: Mapping[str, str], progress: Progress | None = None
    ) -> Applied:
        """Server-side apply a rendered commit, prune what left it, and record the commit."""
        t = self.target
        try:
            objects = checks.parse_objects(files)
        except ValueError as exc:
            raise PlatformError(f"commit {checks.short(revision)}: {exc}") from None
        desired: set[checks.ObjectKey] = set()
        kinds: dict[tuple[str, str], str] = {}
        applied: list[str] = []
        for obj in checks.apply_order(objects):
            api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
            resource = self._resource(api_version, kind)
            body = checks.managed(obj, t.namespace if resource.namespaced else None)
            key = checks.key_of(body)
            # A dict, not text: every client version sends it as JSON, which is YAML too.
            self._write(
                f"apply {key}",
                partial(
                    self.dynamic.server_side_apply,
                    resource,
                    body=body,
                    name=key.name,
                    namespace=key.namespace or None,
                    field_manager=t.field_manager,
                    force_conflicts=True,
                    serializer=_raw,
                ),
            )
            desired.add(key)
            kinds.setdefault((key.group, kind), api_version)
            applied.append(str(key))
            if progress is not None:
                progress(f"applied {key}")
        pruned = self._prune(desired, kinds, progress)
        self._record(revision, kinds)
        return Applied(revision, tuple(applied), tuple(pruned))

    def _prune(
        self,
        desired: set[checks.ObjectKey],
        kinds: Mapping[tuple[str, str], str],
        progress: Progress | None,
    ) -> list[str]:
        """Delete the managed objects in the namespace that the commit no longer holds."""
        t = self.target
        every = dict(self._recorded_kinds())
        every.update(kinds)
        pruned: list[str] = []
        for (group, kind), api_version in sorted(every.items()):
            try:
                resource = self._resource(api_version, kind)
            except _NotServed:
                continue  # the cluster no longer serves the kind: nothing of it to delete
            if not resource.namespaced:
                continue
            listed = self._write(
                f"list {kind} in {t.namespace}",
                partial(
                    self.dynamic.get,
                    resource,
                    namespace=t.namespace,
                    label_selector=checks.MANAGED_SELECTOR,
                    serializer=_raw,
                ),
            )
            for key, uid in checks.prune_candidates(
                group, kind, listed.get("items") or [], desired
            ):
                options: dict[str, Any] = {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "propagationPolicy": "Background",
                }
                if uid:
                    options["preconditions"] = {"uid": uid}
                try:
                    self._guard(
                        f"prune {key}",
                        partial(
                            self.dynamic.delete,
                            resource,
                            name=key.name,
                            namespace=key.namespace,
                            body=options,
                            serializer=_raw,
                        ),
                    )
                except ApiException:  # only a 404 passes _guard: deleted meanwhile
                    continue
                pruned.append(str(key))
                if progress is not None:
                    progress(f"pruned {key}")
        return pruned

    def _recorded_kinds(self) -> list[tuple[tuple[str, str], str]]:
        try:
            record = self._get("v1", "ConfigMap", RECORD_NAME, self.target.namespace)
        except _Unavailable:
            return []
        try:
            listed = json.loads((record.get("data") or {}).get("kinds") or "[]")
        except ValueError:
            return []
        return [((checks.group_of(v), k), v) for v, k in listed]

    def _record(self, revision: str, kinds: Mapping[tuple[str, str], str]) -> None:
        record = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": RECORD_NAME, "namespace": self.target.namespace},
            "data": {
                "revision": revision,
                "kinds": json.dumps(sorted([v, k] for (_, k), v in kinds.items())),
            },
        }
        resource = self._resource("v1", "ConfigMap")
        self._write(
            f"record {checks.short(revision)} in ConfigMap {RECORD_NAME}",
            lambda: self.dynamic.server_side_apply(
                resource,
                body=record,
                name=RECORD_NAME,
                namespace=self.target.namespace,
                field_manager=self.target.field_manager,
                force_conflicts=True,
                serializer=_raw,
            ),
        )

    # --- the API -------------------------------------------------------------------------

    @property
    def dynamic(self) -> DynamicClient:
        """The dynamic client, made (discovery starts) on first use."""
        if self._dynamic is None:
            self._dynamic = self._guard(
                "discovery", lambda: DynamicClient(self.api, discoverer=_MemoryDiscoverer)
            )
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        """The dynamic client's resource for a kind; _NotServed when the cluster lacks it."""
        try:
            return self._guard(
                f"discovery of {kind} ({api_version})",
                lambda: self.dynamic.resources.get(api_version=api_version, kind=kind),
            )
        except ResourceNotFoundError:
            raise _NotServed(
                f"the cluster does not serve {kind} ({api_version}): is its CRD installed?"
            ) from None

    def _get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any]:
        """An object as the server returns it; _Unavailable with the reason when it cannot."""
        what = f"{kind} {namespace}/{name}"
        resource = self._resource(api_version, kind)
        try:
            obj = self._guard(
                f"reading {what}",
                lambda: self.dynamic.get(resource, name=name, namespace=namespace, serializer=_raw),
            )
        except ApiException as exc:
            if exc.status == 404:
                raise _Unavailable(f"{what} not found") from exc
            raise
        return dict(obj)

    def _guard(self, what: str, request: Callable[[], Any]) -> Any:
        """Run a request: 401/403 raise PlatformError; 404 passes through; the rest _Unavailable."""
        try:
            return request()
        except ApiException as exc:
            if exc.status in (401, 403):
                raise PlatformError(
                    f"{what}: the Kubernetes API refused the credentials "
                    f"({_api_message(exc)}); check the kubeconfig's user and its RBAC permissions"
                ) from exc
            if exc.status == 404:
                raise
            raise _Unavailable(f"{what}: {_api_message(exc)}") from exc
        except HTTPError as exc:
            raise _Unavailable(
                f"{what}: the Kubernetes API at {self.api.configuration.host} "
                f"did not answer ({exc})"
            ) from exc

    def _write(self, what: str, request: Callable[[], Any]) -> Any:
        """Run a write or a list; any failure is a PlatformError that says what failed."""
        try:
            return self._guard(what, request)
        except ApiException as exc:
            raise PlatformError(f"{what}: {_api_message(exc)}") from exc


class GitOpsCluster:
    """A cluster environment as a release sees it: its GitOps repository and its API.

    A commit is live when the cluster reports it at the canary weight the commit
    holds, so a router that lags behind the Deployments still blocks. The controller
    may report a later commit of the branch (one repository often holds several
    environments): that counts when it descends from ours. Without a
    GitOps controller (``controller: direct``) this is the controller: the commit's
    files are applied first, then waited on like any other.
    """

    def __init__(
        self, cluster: KubernetesPlatform, repo: GitOpsRepo, progress: Progress | None = None
    ) -> None:
        self.cluster = cluster
        self.repo = repo
        self.progress = progress
        self._descends: dict[tuple[str, str], bool] = {}
        """The repository's answers by (controller's commit, ours): every poll asks again."""

    def status(self) -> LiveState:
        """The live state now."""
        return self.cluster.status()

    def wait_until_live(self, revision: str, timeout_s: float) -> LiveState:
        """Apply ``revision`` (direct mode), then block until the cluster runs it, or NotLive."""
        files = self.repo.files(revision)
        try:
            weight = read_state(files).weight
        except ManifestError as exc:
            raise PlatformError(f"commit {checks.short(revision)}: {exc}") from None
        if self.cluster.target.controller == "direct":
            done = self.cluster.apply(revision, files)
            if self.progress is not None:
                self.progress(
                    f"applied {checks.short(revision)}: {len(done.applied)} objects"
                    + (f", pruned {', '.join(done.pruned)}" if done.pruned else "")
                )
        return self.cluster.wait_until_live(
            revision, timeout_s, weight=weight, progress=self.progress, reached=self._reached
        )

    def _reached(self, seen: str | None, want: str) -> bool:
        """The controller's commit is ours, or a later one of the branch (another folder's)."""
        if checks.same_commit(seen, want):
            return True
        if seen is None:
            return False
        if (seen, want) not in self._descends:
            self._descends[seen, want] = self.repo.is_ancestor(want, seen)
        return self._descends[seen, want]
