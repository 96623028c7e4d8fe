"""Rendered manifests are validated before any GitOps commit, and by `inferops validate`.

Real git, the real renderers (kubectl kustomize, helm template) and the real validators
(kubernetes-validate strict, the vendored CRD schemas, checkov offline).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from support import run_cli

from inferops.config import parse_config
from inferops.environments import manifest_check, manifest_files
from inferops.gitops.manifests import (
    DesiredState,
    ManifestError,
    TrackSpec,
    read_state,
    seed,
    write_state,
)
from inferops.gitops.repo import GitOpsRepo

ROOT = Path(__file__).resolve().parents[2]


def config_for(tmp_path: Path, source: Path, renderer: str = "plain", policies: bool = False):
    text = f"""
state_dir: {tmp_path / "state"}
environments:
  local:
    terraform: {{module: {ROOT / "terraform/environments/local"}}}
    manifests: {{source: {source}, renderer: {renderer}, policies: {str(policies).lower()}}}
"""
    (tmp_path / "inferops.yaml").write_text(text)
    return parse_config(text, tmp_path / "inferops.yaml", tmp_path)


def broken_overlay(tmp_path: Path) -> Path:
    """The local overlay with a field Kubernetes does not know in the canary Deployment."""
    copy = tmp_path / "overlay"
    shutil.copytree(ROOT / "gitops" / "overlays" / "local", copy)
    canary = yaml.safe_load((copy / "canary.yaml").read_text())
    canary["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    (copy / "canary.yaml").write_text(yaml.safe_dump(canary, sort_keys=False))
    return copy


def test_a_commit_that_does_not_validate_is_refused_and_nothing_moves(tmp_path: Path) -> None:
    good = config_for(tmp_path, ROOT / "gitops" / "overlays" / "local")
    repo = GitOpsRepo(
        tmp_path / "remote.git",
        tmp_path / "work",
        "main",
        "environments/local",
        check=manifest_check(good, "local"),
    )
    files = manifest_files(good, "local")
    head = repo.create(files, "seed", {})
    state = read_state(files)
    bad = write_state(files, state)
    broken = yaml.safe_load(bad["canary.yaml"])
    broken["spec"]["replicas"] = "two"
    bad["canary.yaml"] = yaml.safe_dump(broken)
    with pytest.raises(ManifestError) as refused:
        repo.commit(bad, "a broken change", "", {})
    message = str(refused.value)
    assert "nothing was committed" in message
    assert "Deployment/inferops-service-canary" in message
    assert "spec.replicas" in message
    assert repo.head() == head
    assert repo.files() == files


def test_validate_names_the_object_and_field_and_exits_1(tmp_path: Path) -> None:
    config_for(tmp_path, broken_overlay(tmp_path))
    result = run_cli(tmp_path, "validate", "--env", "local")
    assert result.returncode == 1
    assert "Deployment/inferops-service-canary" in result.stderr
    assert "imagePullPolicyy" in result.stderr


def test_render_writes_the_files_the_gitops_repo_holds(tmp_path: Path) -> None:
    config_for(tmp_path, ROOT / "gitops" / "overlays" / "prod", renderer="kustomize")
    result = run_cli(tmp_path, "render", "--env", "local", "--out", "rendered")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "rendered").iterdir())
    assert "deployment-inferops-service-canary.yaml" in names
    assert "httproute-inferops-service.yaml" in names
    listed = yaml.safe_load((tmp_path / "rendered" / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == sorted(n for n in names if n != "kustomization.yaml")
    validated = run_cli(tmp_path, "validate", "--env", "local")
    assert validated.returncode == 0, validated.stderr


@pytest.mark.parametrize("env", ["aws", "gcp"])
def test_the_shipped_cluster_environments_validate_with_their_policies(env: str) -> None:
    result = run_cli(ROOT, "validate", "--env", env)
    assert result.returncode == 0, result.stderr
    assert f"{env}: 12 files valid for Kubernetes 1.33" in result.stdout


def changed_fields(before: object, after: object, path: str = "") -> list[str]:
    """The paths of every leaf that differs between two parsed objects."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            change
            for key in sorted(set(before) | set(after), key=str)
            for change in changed_fields(before.get(key), after.get(key), f"{path}.{key}")
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            change
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for change in changed_fields(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [path]


@pytest.mark.parametrize(
    ("overlay", "router_file", "weight_fields"),
    [
        (
            "dev",
            "ingress-inferops-service-canary.yaml",
            [".metadata.annotations.nginx.ingress.kubernetes.io/canary-weight"],
        ),
        (
            "prod",
            "httproute-inferops-service.yaml",
            [".spec.rules[0].backendRefs[0].weight", ".spec.rules[0].backendRefs[1].weight"],
        ),
    ],
)
def test_a_canary_step_moves_only_the_weight_and_the_canary(
    tmp_path: Path, overlay: str, router_file: str, weight_fields: list[str]
) -> None:
    config = config_for(tmp_path, ROOT / "gitops" / "overlays" / overlay, renderer="kustomize")
    image = "registry.example.com/inferops-service@sha256:" + "a" * 64
    candidate = "registry.example.com/inferops-service@sha256:" + "b" * 64
    seeded = seed(manifest_files(config, "local"), image, 3)
    state = read_state(seeded)
    first = write_state(seeded, DesiredState(state.stable, TrackSpec(candidate, 2), 10))
    second = write_state(first, read_state(first).with_weight(25))
    moved = {
        name: changed_fields(yaml.safe_load(first[name]), yaml.safe_load(second[name]))
        for name in first
        if first[name] != second[name]
    }
    # From one step to the next, only the router's weight moves.
    assert sorted(moved) == [router_file]
    assert sorted(moved[router_file]) == sorted(weight_fields)
    # The first step also starts the canary: its image (and the version label that names it)
    # and its replicas, nothing else.
    started = {
        name: changed_fields(yaml.safe_load(seeded[name]), yaml.safe_load(first[name]))
        for name in seeded
        if seeded[name] != first[name]
    }
    assert sorted(started) == sorted(["deployment-inferops-service-canary.yaml", router_file])
    assert sorted(started["deployment-inferops-service-canary.yaml"]) == [
        ".spec.replicas",
        ".spec.template.metadata.labels.inferops.io/version",
        ".spec.template.spec.containers[0].image",
    ]
    canary = yaml.safe_load(first["deployment-inferops-service-canary.yaml"])
    assert canary["spec"]["template"]["metadata"]["labels"]["inferops.io/version"] == "b" * 12
    assert manifest_check(config, "local")(second) is None
