"""Desired state <-> manifests, as pure functions over file contents.

An environment's folder in the GitOps repository holds Kubernetes manifests:
a Deployment per track (``inferops.io/track: stable|canary``) with the image,
replicas and env, and one traffic router that says the share of traffic the
canary takes: either a canary Ingress (ingress-nginx) whose ``canary-weight``
annotation is that share, or a Gateway API HTTPRoute whose backendRefs send
``100 - w`` to the stable Service and ``w`` to the canary Service.
``read_state`` extracts the desired state; ``write_state`` returns the files
with that state applied and nothing else touched. Both reject manifests that
do not have the expected shape, naming the file and the object, before anything
is committed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

TRACKS = ("stable", "canary")
TRACK_LABEL = "inferops.io/track"
VERSION_LABEL = "inferops.io/version"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
CONTAINER = "service"
STABLE_SERVICE = "inferops-service-stable"
CANARY_SERVICE = "inferops-service-canary"
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(ValueError):
    """The manifests or the requested state are invalid; nothing was changed."""


@dataclass(frozen=True)
class TrackSpec:
    """What one track runs: an image, how many replicas, and its environment."""

    image: str
    replicas: int
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DesiredState:
    """The whole desired state of an environment's service."""

    stable: TrackSpec
    canary: TrackSpec
    weight: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def validate(self) -> DesiredState:
        """Return self, or raise ManifestError when the state cannot run."""
        if not 0 <= self.weight <= 100:
            raise ManifestError(f"canary weight must be 0..100, got {self.weight}")
        for name, spec in (("stable", self.stable), ("canary", self.canary)):
            if spec.replicas < 0:
                raise ManifestError(f"{name} replicas must be >= 0, got {spec.replicas}")
            if not _IMAGE.match(spec.image):
                raise ManifestError(f"{name} image {spec.image!r} is not a valid image reference")
            for key, _ in spec.env:
                if not _ENV_KEY.match(key):
                    raise ManifestError(f"{name} env name {key!r} is not a valid variable name")
        if self.weight > 0 and self.canary.replicas == 0:
            raise ManifestError(f"canary weight {self.weight} needs canary replicas > 0")
        if self.weight < 100 and self.stable.replicas == 0:
            raise ManifestError(f"stable takes {100 - self.weight}% of traffic but has 0 replicas")
        return self

    def with_weight(self, weight: int) -> DesiredState:
        """This state with the canary at another weight."""
        return replace(self, weight=weight).validate()


def _documents(files: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml")) or name.endswith("kustomization.yaml"):
            continue
        try:
            loaded = list(yaml.safe_load_all(files[name]))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{name}: not valid YAML: {exc}") from None
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise ManifestError(f"{name}: every document must be a Kubernetes object")
            docs.append((name, doc))
    return docs


def _deployment(docs: list[tuple[str, dict[str, Any]]], track: str) -> tuple[str, dict[str, Any]]:
    found = [
        (n, d)
        for n, d in docs
        if d.get("kind") == "Deployment"
        and (d.get("metadata") or {}).get("labels", {}).get(TRACK_LABEL) == track
    ]
    if len(found) != 1:
        raise ManifestError(
            f"expected exactly one Deployment labelled {TRACK_LABEL}={track}, found {len(found)}"
        )
    return found[0]


def _container(name: str, dep: dict[str, Any]) -> dict[str, Any]:
    try:
        containers = dep["spec"]["template"]["spec"]["containers"]
    except (KeyError, TypeError):
        raise ManifestError(f"{name}: Deployment has no spec.template.spec.containers") from None
    for c in containers:
        if c.get("name") == CONTAINER:
            return dict(c)
    raise ManifestError(f"{name}: Deployment has no container named {CONTAINER!r}")


def _canary_ingress(docs: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    found = [
        (n, d)
        for n, d in docs
        if d.get("kind") == "Ingress"
        and (d.get("metadata") or {}).get("annotations", {}).get(CANARY_ANNOTATION) == "true"
    ]
    if len(found) != 1:
        raise ManifestError(
            f"expected exactly one Ingress annotated {CANARY_ANNOTATION}: 'true', "
            f"found {len(found)}"
        )
    return found[0]


def _route_backends(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The backendRefs of an HTTPRoute's rules that name the stable or canary Service."""
    rules = (doc.get("spec") or {}).get("rules") or []
    return [
        ref
        for rule in rules
        if isinstance(rule, dict)
        for ref in rule.get("backendRefs") or []
        if isinstance(ref, dict) and ref.get("name") in (STABLE_SERVICE, CANARY_SERVICE)
    ]


def _canary_routes(docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (n, d)
        for n, d in docs
        if d.get("kind") == "HTTPRoute"
        and any(ref.get("name") == CANARY_SERVICE for ref in _route_backends(d))
    ]


def _route_weight(name: str, route: dict[str, Any]) -> int:
    """The canary's share of an HTTPRoute whose weights add up to 100."""
    weights: dict[str, int] = {}
    for ref in _route_backends(route):
        value = ref.get("weight", 1)
        if not isinstance(value, int):
            raise ManifestError(f"{name}: backendRef {ref['name']} weight must be an integer")
        weights[ref["name"]] = weights.get(ref["name"], 0) + value
    if set(weights) != {STABLE_SERVICE, CANARY_SERVICE} or sum(weights.values()) != 100:
        raise ManifestError(
            f"{name}: HTTPRoute {route.get('metadata', {}).get('name')} must send weights "
            f"adding up to 100 to {STABLE_SERVICE} and {CANARY_SERVICE}, got {weights}"
        )
    return weights[CANARY_SERVICE]


def _weight(docs: list[tuple[str, dict[str, Any]]]) -> int:
    """The canary's share from the one router the manifests hold."""
    routes = _canary_routes(docs)
    ingresses = [
        d
        for _, d in docs
        if d.get("kind") == "Ingress"
        and (d.get("metadata") or {}).get("annotations", {}).get(CANARY_ANNOTATION) == "true"
    ]
    if routes and ingresses:
        raise ManifestError(
            "the manifests hold both a canary Ingress and an HTTPRoute to the canary: keep "
            "one router, so that one field says the canary's share"
        )
    if routes:
        if len(routes) != 1:
            raise ManifestError(f"expected one HTTPRoute to {CANARY_SERVICE}, found {len(routes)}")
        return _route_weight(*routes[0])
    name, ingress = _canary_ingress(docs)
    raw = ingress["metadata"]["annotations"].get(WEIGHT_ANNOTATION, "0")
    try:
        return int(raw)
    except ValueError:
        raise ManifestError(
            f"{name}: {WEIGHT_ANNOTATION} must be an integer, got {raw!r}"
        ) from None


def _track_spec(name: str, dep: dict[str, Any]) -> TrackSpec:
    c = _container(name, dep)
    # Variables from the downward API or a Secret (valueFrom) belong to the manifests, not to
    # a release: they are kept as they are and are not part of the track's environment.
    env = tuple(
        (str(e["name"]), str(e.get("value", "")))
        for e in c.get("env") or []
        if "valueFrom" not in e
    )
    replicas = dep.get("spec", {}).get("replicas", 1)
    if not isinstance(replicas, int):
        raise ManifestError(f"{name}: spec.replicas must be an integer")
    return TrackSpec(image=str(c.get("image", "")), replicas=replicas, env=env)


def read_state(files: Mapping[str, str]) -> DesiredState:
    """The desired state the manifests describe."""
    docs = _documents(files)
    stable = _track_spec(*_deployment(docs, "stable"))
    canary = _track_spec(*_deployment(docs, "canary"))
    return DesiredState(stable=stable, canary=canary, weight=_weight(docs)).validate()


def seed(files: Mapping[str, str], image: str, replicas: int | None = None) -> dict[str, str]:
    """The manifests of a new environment: ``image`` stable on ``replicas``, no canary.

    Unset ``replicas`` keeps the stable replicas the manifests hold.
    """
    stable = read_state(files).stable
    replicas = stable.replicas if replicas is None else replicas
    state = DesiredState(TrackSpec(image, replicas, stable.env), TrackSpec(image, 0, ()))
    return write_state(files, state)


def image_version(image: str) -> str:
    """What a track's version is called: the image's short digest, or its tag (a label value)."""
    digest = image.rpartition("@sha256:")[2]
    if digest != image:
        return digest[:12]
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
    return re.sub(r"[^A-Za-z0-9._-]", "-", tag)[:63].strip("-._") or "unset"


def _set_track(dep: dict[str, Any], spec: TrackSpec) -> None:
    dep["spec"]["replicas"] = spec.replicas
    labels = ((dep["spec"]["template"].get("metadata") or {}).get("labels")) or {}
    if VERSION_LABEL in labels:
        # The version goes with the image: its pods and every series they export say which.
        labels[VERSION_LABEL] = image_version(spec.image)
    for c in dep["spec"]["template"]["spec"]["containers"]:
        if c.get("name") == CONTAINER:
            c["image"] = spec.image
            names = {k for k, _ in spec.env}
            kept = [e for e in c.get("env") or [] if "valueFrom" in e and e["name"] not in names]
            c["env"] = kept + [{"name": k, "value": v} for k, v in spec.env]


def write_state(files: Mapping[str, str], state: DesiredState) -> dict[str, str]:
    """The files with ``state`` applied; files that do not change keep their text."""
    state.validate()
    read_state(files)  # the manifests must have the expected shape before we edit them
    out = dict(files)
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml")) or name.endswith("kustomization.yaml"):
            continue
        docs = [d for d in yaml.safe_load_all(files[name]) if d is not None]
        changed = False
        for doc in docs:
            labels = (doc.get("metadata") or {}).get("labels") or {}
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            if doc.get("kind") == "Deployment" and labels.get(TRACK_LABEL) in TRACKS:
                before = yaml.safe_dump(doc)
                _set_track(doc, state.stable if labels[TRACK_LABEL] == "stable" else state.canary)
                changed |= before != yaml.safe_dump(doc)
            elif (
                doc.get("kind") == "Ingress"
                and annotations.get(CANARY_ANNOTATION) == "true"
                and annotations.get(WEIGHT_ANNOTATION) != str(state.weight)
            ):
                annotations[WEIGHT_ANNOTATION] = str(state.weight)
                changed = True
            elif doc.get("kind") == "HTTPRoute":
                for ref in _route_backends(doc):
                    wanted = state.weight if ref["name"] == CANARY_SERVICE else 100 - state.weight
                    if ref.get("weight") != wanted:
                        ref["weight"] = wanted
                        changed = True
        if changed:
            out[name] = yaml.safe_dump_all(docs, sort_keys=False, explicit_start=len(docs) > 1)
    return out
