"""Judgements of Kubernetes objects as the API server returns them: pure, no client, no I/O.

Each ``*_blocker`` takes an object (a dict shaped as the API serves it, fields
the server omits when zero or empty treated as such) and returns the reason it
still keeps a commit from being live, or None when it does not. The reasons
name the object and what is missing, so an operator reading a ``NotLive`` knows
where to look. ``inferops.platforms.kubernetes`` fetches the objects and
composes these checks.

Direct mode's planning lives here too: which objects a commit holds
(``parse_objects``), in what order to apply them (``apply_order``), the label
that marks what inferops applied (``managed``) and, of the objects so marked,
which left the commit (``prune_candidates``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

MANAGED_LABEL = "inferops.io/managed-by"
MANAGED_VALUE = "inferops"
MANAGED_SELECTOR = f"{MANAGED_LABEL}={MANAGED_VALUE}"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
WEIGHT_TOTAL_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight-total"

# Applied first: what the rest of a commit lives in or is defined by.
_FIRST = {"Namespace": 0, "CustomResourceDefinition": 1}


def short(sha: str | None) -> str:
    """A commit as people read it: its first 12 characters, or 'nothing'."""
    return sha[:12] if sha else "nothing"


def same_commit(seen: str | None, want: str) -> bool:
    """True when ``seen`` names the commit ``want`` (either may be abbreviated, >= 7 chars)."""
    if not seen or min(len(seen), len(want)) < 7:
        return False
    a, b = seen.lower(), want.lower()
    return a.startswith(b) or b.startswith(a)


Reached = Callable[[str | None, str], bool]
"""Whether the commit a controller reports (first) holds the commit wanted (second). A
controller syncs the branch's head, which may be a later commit to another folder of the
repository: only the caller, who has the repository, can tell that it descends from ours."""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _detail(reason: str | None, message: str | None) -> str:
    parts = [p for p in (reason, message) if p]
    return f": {': '.join(parts)}" if parts else ""


# --- Deployments -----------------------------------------------------------------------


def deployment_blocker(dep: Mapping[str, Any]) -> str | None:
    """Why the Deployment has not finished rolling out (as kubectl rollout status), or None."""
    name = f"Deployment {_meta(dep).get('name', '?')}"
    spec, status = dep.get("spec") or {}, _status(dep)
    generation = int(_meta(dep).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return f"{name}: generation {generation} not yet observed by its controller"
    progressing = _condition(dep, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"{name}: exceeded its progress deadline{_detail(None, progressing.get('message'))}"
    if spec.get("paused"):
        return f"{name}: rollout is paused"
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return f"{name}: {updated} of {want} replicas updated"
    if current > updated:
        return f"{name}: {current - updated} old replicas pending termination"
    if available < want:
        return f"{name}: {available} of {want} replicas available"
    return None


_STARTING = frozenset({"ContainerCreating", "PodInitializing"})


def selector_of(dep: Mapping[str, Any]) -> str | None:
    """The Deployment's pod selector as a label selector string (matchLabels only)."""
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def pod_problem(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """Why a Deployment's pods do not run, as an operator would look first: a container
    waiting on something other than its start (ImagePullBackOff, CrashLoopBackOff...),
    or a pod the scheduler cannot place (no node with a free GPU, say). None: no problem."""
    for pod in pods:
        name = f"pod {_meta(pod).get('name', '?')}"
        status = _status(pod)
        containers = (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        )
        for c in containers:
            waiting = (c.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason not in _STARTING:
                last = ((c.get("lastState") or {}).get("terminated") or {}).get("reason")
                after = f" (last exit: {last})" if last else ""
                return (
                    f"{name}: container {c.get('name', '?')} {reason}{after}"
                    f"{_detail(None, waiting.get('message'))}"
                )
        scheduled = _condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            return (
                f"{name}: {scheduled.get('reason') or 'not scheduled'}"
                f"{_detail(None, scheduled.get('message'))}"
            )
    return None


def pod_entry(pod: Mapping[str, Any], track: str) -> dict[str, Any]:
    """A pod as ``LiveState.pods`` lists it: name, track, container restarts, last exit."""
    containers = _status(pod).get("containerStatuses") or []
    last = None
    for c in containers:
        ended = ((c.get("lastState") or {}).get("terminated") or {}).get("reason")
        last = ended or last
    return {
        "name": _meta(pod).get("name"),
        "track": track,
        "phase": _status(pod).get("phase"),
        "restarts": sum(int(c.get("restartCount") or 0) for c in containers),
        "last": last,
    }


def deployment_summary(dep: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a Deployment an operator looks at first."""
    status = _status(dep)
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
    return {
        "replicas": int((dep.get("spec") or {}).get("replicas", 1)),
        "updated": int(status.get("updatedReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
        "images": [c.get("image") for c in containers or []],
    }


# --- Argo CD ---------------------------------------------------------------------------


def argo_revision(app: Mapping[str, Any]) -> str | None:
    """The commit the Application last compared with the cluster (first source's, if many)."""
    sync = _status(app).get("sync") or {}
    if sync.get("revision"):
        return str(sync["revision"])
    revisions = sync.get("revisions") or []
    return str(revisions[0]) if revisions else None


def argo_blocker(
    app: Mapping[str, Any], revision: str | None, reached: Reached = same_commit
) -> str | None:
    """Why the Application is not Synced and Healthy at ``revision`` (None: at any), or None."""
    name = f"Argo CD Application {_meta(app).get('name', '?')}"
    status = _status(app)
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    health = status.get("health") or {}
    seen = argo_revision(app)
    if revision is not None and not reached(seen, revision):
        operation = status.get("operationState") or {}
        failed = ""
        if operation.get("phase") in ("Failed", "Error"):
            detail = _detail(None, operation.get("message"))
            failed = f"; its last sync {operation['phase'].lower()}{detail}"
        return f"{name} is {sync} at {short(seen)} (want {short(revision)}){failed}"
    if sync != "Synced":
        return f"{name} is {sync} at {short(seen)}"
    if health.get("status") != "Healthy":
        state = health.get("status") or "Unknown"
        return f"{name} is {state} at {short(seen)}{_detail(None, health.get('message'))}"
    return None


# --- Flux ------------------------------------------------------------------------------


def flux_revision(ks: Mapping[str, Any]) -> str | None:
    """The commit of ``status.lastAppliedRevision`` (``main@sha1:<sha>``, or ``main/<sha>``)."""
    applied = _status(ks).get("lastAppliedRevision")
    if not applied:
        return None
    return str(applied).rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def flux_blocker(
    ks: Mapping[str, Any], revision: str | None, reached: Reached = same_commit
) -> str | None:
    """Why the Kustomization is not Ready at ``revision`` (None: at any), or None."""
    name = f"Flux Kustomization {_meta(ks).get('name', '?')}"
    if (ks.get("spec") or {}).get("suspend"):
        return f"{name} is suspended"
    ready = _condition(ks, "Ready") or {}
    seen = flux_revision(ks)
    if revision is not None and not reached(seen, revision):
        attempted = str(_status(ks).get("lastAttemptedRevision") or "")
        failed = ""
        if ready.get("status") == "False" and attempted.endswith(revision):
            failed = f"; applying it failed{_detail(ready.get('reason'), ready.get('message'))}"
        return f"{name} has applied {short(seen)} (want {short(revision)}){failed}"
    generation = int(_meta(ks).get("generation") or 0)
    observed = int(ready.get("observedGeneration", _status(ks).get("observedGeneration")) or 0)
    if observed < generation:
        return f"{name}: generation {generation} not yet reconciled at {short(seen)}"
    if ready.get("status") != "True":
        detail = _detail(ready.get("reason"), ready.get("message"))
        return f"{name} is not Ready at {short(seen)}{detail or ': no Ready condition yet'}"
    return None


# --- Routers ---------------------------------------------------------------------------


def ingress_canary_weight(ingress: Mapping[str, Any]) -> int:
    """The percentage of requests the nginx canary Ingress sends to the canary."""
    notes = _meta(ingress).get("annotations") or {}
    if notes.get(CANARY_ANNOTATION) != "true":
        return 0
    weight = int(notes.get(WEIGHT_ANNOTATION) or 0)
    total = int(notes.get(WEIGHT_TOTAL_ANNOTATION) or 100)
    return round(100 * weight / total) if total > 0 else 0


def httproute_canary_weight(route: Mapping[str, Any], canary_service: str) -> int:
    """The canary Service's share (percent) of the first rule that routes to it."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        if not any(r.get("name") == canary_service for r in refs):
            continue
        # The Gateway API's default weight is 1.
        total = sum(int(r.get("weight", 1)) for r in refs)
        canary = sum(int(r.get("weight", 1)) for r in refs if r.get("name") == canary_service)
        return round(100 * canary / total) if total > 0 else 0
    return 0


def httproute_blocker(route: Mapping[str, Any]) -> str | None:
    """Why no Gateway serves the HTTPRoute as it is now (accepted, refs resolved), or None."""
    name = f"HTTPRoute {_meta(route).get('name', '?')}"
    generation = int(_meta(route).get("generation") or 0)
    parents = _status(route).get("parents") or []
    if not parents:
        return f"{name} is not accepted by any Gateway yet"
    for parent in parents:
        gateway = (parent.get("parentRef") or {}).get("name", "?")
        for kind in ("Accepted", "ResolvedRefs"):
            cond = next((c for c in parent.get("conditions") or [] if c.get("type") == kind), None)
            if cond is None or int(cond.get("observedGeneration") or 0) < generation:
                return f"{name}: Gateway {gateway} has not processed generation {generation}"
            if cond.get("status") != "True":
                detail = _detail(cond.get("reason"), cond.get("message"))
                return f"{name}: Gateway {gateway} reports {kind} False{detail}"
    return None


def weight_blocker(where: str, live: int, want: int | None) -> str | None:
    """Why the router's live canary weight is not ``want`` (None: any), or None."""
    if want is None or live == want:
        return None
    return f"{where} sends {live}% to the canary (want {want}%)"


# --- Direct mode -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ObjectKey:
    """An object's identity across API versions: group, kind, namespace ('' if none), name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        group = f".{self.group}" if self.group else ""
        return f"{self.kind}{group} {where}{self.name}"


def group_of(api_version: str) -> str:
    """The API group of an ``apiVersion`` ('' for the core group's ``v1``)."""
    return api_version.rpartition("/")[0]


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    """The identity of a manifest or an object the API returned with its apiVersion and kind."""
    meta = _meta(obj)
    return ObjectKey(
        group_of(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def parse_objects(files: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendered commit, in file order (``kind: List`` expanded).

    Files other than YAML, and kustomize's own ``kustomization.yaml``, are not objects.
    Raises ValueError naming the file when a document is not a nameable object.
    """
    out: list[dict[str, Any]] = []
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml", ".json")) or name.rsplit("/", 1)[-1] in (
            "kustomization.yaml",
            "kustomization.yml",
        ):
            continue
        try:
            docs = (
                [json.loads(files[name])]
                if name.endswith(".json")
                else list(yaml.safe_load_all(files[name]))
            )
        except (yaml.YAMLError, ValueError) as exc:
            raise ValueError(f"{name}: not valid YAML or JSON: {exc}") from None
        for doc in docs:
            items = (
                doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else None
            )
            for obj in items if items is not None else [doc]:
                if obj is None:
                    continue
                if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
                    raise ValueError(f"{name}: a document is not a Kubernetes object")
                if not _meta(obj).get("name"):
                    raise ValueError(f"{name}: a {obj['kind']} has no metadata.name")
                out.append(obj)
    return out


def apply_order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces, then CRDs, then the rest as the commit lists them."""
    return sorted(objects, key=lambda o: _FIRST.get(str(o.get("kind")), len(_FIRST)))


def managed(obj: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
    """The object labelled as applied by inferops, in ``namespace`` (None: cluster-scoped)."""
    meta = dict(_meta(obj))
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_LABEL: MANAGED_VALUE}
    if namespace is None:
        meta.pop("namespace", None)
    else:
        meta["namespace"] = meta.get("namespace") or namespace
    return {**obj, "metadata": meta}


def prune_candidates(
    group: str,
    kind: str,
    items: Iterable[Mapping[str, Any]],
    desired: set[ObjectKey],
) -> list[tuple[ObjectKey, str | None]]:
    """Of listed objects of one kind, those inferops applied that the commit no longer holds.

    ``items`` are a list response's items (the server leaves out their kind), so
    the kind is given. Each candidate comes with its uid, to delete that object only.
    """
    out = []
    for item in items:
        meta = _meta(item)
        if (meta.get("labels") or {}).get(MANAGED_LABEL) != MANAGED_VALUE:
            continue
        key = ObjectKey(group, kind, str(meta.get("namespace") or ""), str(meta.get("name")))
        if key not in desired:
            out.append((key, meta.get("uid")))
    return sorted(out, key=lambda c: c[0])
