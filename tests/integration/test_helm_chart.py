"""The Helm chart renders the same objects as the kustomize overlays.

``gitops/chart`` with ``values-<env>.yaml`` and ``gitops/overlays/<env>`` are two ways to
write one environment (gitops/README.md): whichever renders it, the GitOps repository must
receive the same objects. Each test renders both offline with the static ``helm`` and
``kubectl`` that ``make setup`` installs into ``.venv/bin`` and compares the parsed objects,
keyed by kind, namespace and name.

The one difference allowed: Helm's own bookkeeping labels (``helm.sh/chart`` and
``app.kubernetes.io/managed-by``), which the chart adds to each object's metadata and a
kustomize build cannot have, are dropped before comparing. Nothing else is ignored.
"""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferops.gitops.manifests import read_state

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
CHART = ROOT / "gitops" / "chart"
OVERLAYS = ROOT / "gitops" / "overlays"
ENVIRONMENTS = ("dev", "prod")
HELM_BOOKKEEPING_LABELS = frozenset({"helm.sh/chart", "app.kubernetes.io/managed-by"})

Key = tuple[str, str, str]


def tool(name: str) -> Path:
    """A binary from .venv/bin, or fail saying how to get it."""
    path = BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not in .venv/bin: run make setup (installs helm and kubectl)")
    return path


def execute(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run a command offline, Helm's cache and configuration kept in ``home``."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def run(*args: str | Path, home: Path) -> str:
    """Run a command that must succeed; return its stdout."""
    done = execute(*args, home=home)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def helm_template(home: Path, env: str, *extra: str) -> str:
    values = CHART / f"values-{env}.yaml"
    return run(tool("helm"), "template", "inferops-service", CHART, "-f", values, *extra, home=home)


def without_helm_bookkeeping(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without Helm's bookkeeping labels (an empty labels map is dropped too)."""
    metadata = obj.get("metadata") or {}
    labels = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k not in HELM_BOOKKEEPING_LABELS
    }
    metadata = {k: v for k, v in metadata.items() if k != "labels"}
    if labels:
        metadata["labels"] = labels
    return {**obj, "metadata": metadata}


def objects(text: str) -> dict[Key, dict[str, Any]]:
    """The rendered objects keyed by (kind, namespace, name); a key may occur only once."""
    found: dict[Key, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc.get("metadata") or {}
        key = (doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in found, f"{key} rendered twice"
        found[key] = without_helm_bookkeeping(doc)
    return found


def dump(obj: dict[str, Any]) -> list[str]:
    return yaml.safe_dump(obj, sort_keys=True).splitlines()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.mark.parametrize("values", ["values.yaml", "values-dev.yaml", "values-prod.yaml"])
def test_chart_lints_clean(home: Path, values: str) -> None:
    out = run(tool("helm"), "lint", "--strict", CHART, "-f", CHART / values, home=home)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_chart_renders_the_same_objects_as_the_overlay(home: Path, env: str) -> None:
    overlay = OVERLAYS / env
    if not (overlay / "kustomization.yaml").is_file():
        pytest.fail(f"{overlay.relative_to(ROOT)} has no kustomization.yaml")
    chart = objects(helm_template(home, env))
    kustomize = objects(run(tool("kubectl"), "kustomize", overlay, home=home))

    only_chart, only_overlay = sorted(chart.keys() - kustomize), sorted(kustomize.keys() - chart)
    assert not (only_chart or only_overlay), (
        f"only the chart renders {only_chart}; only overlays/{env} renders {only_overlay}"
    )
    differing = {}
    for key, expected in kustomize.items():
        if chart[key] != expected:
            diff = difflib.unified_diff(
                dump(expected), dump(chart[key]), f"overlays/{env}", "chart", lineterm=""
            )
            differing[key] = "\n".join(diff)
    if differing:
        pytest.fail("\n\n".join(f"{k}:\n{d}" for k, d in differing.items()), pytrace=False)


@pytest.mark.parametrize(("env", "kind"), [("dev", "Ingress"), ("prod", "HTTPRoute")])
# The pipeline finds the canary's image, replicas and weight in rendered manifests by the
# contract's names and labels; whichever router the values choose, it must find them.
def test_the_pipeline_reads_the_canary_weight_the_chart_renders(
    home: Path, env: str, kind: str
) -> None:
    text = helm_template(
        home,
        env,
        "--set",
        "canary.weight=25",
        "--set",
        "canary.replicas=1",
        "--set",
        "canary.image.tag=v2",
    )
    assert any(key[0] == kind for key in objects(text)), f"{env} renders no {kind}"
    state = read_state({"manifests.yaml": text})
    assert state.weight == 25
    assert state.canary.replicas == 1
    assert state.canary.image.endswith(":v2")
    assert state.canary.image != state.stable.image


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("router=mesh", "router must be nginx or gateway"),
        ("canary.weight=101", "canary.weight must be 0..100"),
    ],
)
def test_the_chart_refuses_a_router_it_cannot_render(
    home: Path, setting: str, message: str
) -> None:
    done = execute(tool("helm"), "template", "inferops-service", CHART, "--set", setting, home=home)
    assert done.returncode != 0
    assert message in done.stderr
