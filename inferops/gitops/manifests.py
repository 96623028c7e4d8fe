"""Desired state <-> manifests, as pure functions over file contents.

An environment's folder in the GitOps repository holds Kubernetes manifests:
a Deployment per track (``inferops.io/track: stable|canary``) with the image,
replicas and env, and a canary Ingress whose ``canary-weight`` annotation is
the share of traffic the canary takes. ``read_state`` extracts the desired
state; ``write_state`` returns the files with that state applied and nothing
else touched. Both reject manifests that do not have the expected shape,
naming the file and the object, before anything is committed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

TRACKS = ("stable", "canary")
TRACK_LABEL = "inferops.io/track"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
CONTAINER = "service"
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

    def same_release(self, other: TrackSpec) -> bool:
        """True when both run the same image with the same environment."""
        return self.image == other.image and self.env == other.env


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


def _track_spec(name: str, dep: dict[str, Any]) -> TrackSpec:
    c = _container(name, dep)
    env = tuple((str(e["name"]), str(e.get("value", ""))) for e in c.get("env") or [])
    replicas = dep.get("spec", {}).get("replicas", 1)
    if not isinstance(replicas, int):
        raise ManifestError(f"{name}: spec.replicas must be an integer")
    return TrackSpec(image=str(c.get("image", "")), replicas=replicas, env=env)


def read_state(files: Mapping[str, str]) -> DesiredState:
    """The desired state the manifests describe."""
    docs = _documents(files)
    stable = _track_spec(*_deployment(docs, "stable"))
    canary = _track_spec(*_deployment(docs, "canary"))
    name, ingress = _canary_ingress(docs)
    raw = ingress["metadata"]["annotations"].get(WEIGHT_ANNOTATION, "0")
    try:
        weight = int(raw)
    except ValueError:
        raise ManifestError(
            f"{name}: {WEIGHT_ANNOTATION} must be an integer, got {raw!r}"
        ) from None
    return DesiredState(stable=stable, canary=canary, weight=weight).validate()


def seed(files: Mapping[str, str], image: str, replicas: int) -> dict[str, str]:
    """The manifests of a new environment: ``image`` stable on ``replicas``, no canary."""
    stable = read_state(files).stable
    state = DesiredState(TrackSpec(image, replicas, stable.env), TrackSpec(image, 0, ()))
    return write_state(files, state)


def _set_track(dep: dict[str, Any], spec: TrackSpec) -> None:
    dep["spec"]["replicas"] = spec.replicas
    for c in dep["spec"]["template"]["spec"]["containers"]:
        if c.get("name") == CONTAINER:
            c["image"] = spec.image
            c["env"] = [{"name": k, "value": v} for k, v in spec.env]


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
        if changed:
            out[name] = yaml.safe_dump_all(docs, sort_keys=False, explicit_start=len(docs) > 1)
    return out
