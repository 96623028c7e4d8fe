"""Render an environment's manifests as the GitOps repository holds them.

Contract:

- ``render(env)`` builds ``gitops/overlays/<env>`` with ``kubectl kustomize``;
  ``render(env, source="helm")`` builds ``gitops/chart`` with ``values-<env>.yaml`` through
  ``helm template``. Both give the same shape: ``{filename: yaml_text}``.
- Each object is one file named ``<kind>-<name>.yaml`` in lower case
  (``deployment-inferops-service-stable.yaml``), so a file's name says what it holds and stays
  the same from one render to the next; ``kustomization.yaml`` lists them all, so Argo CD and
  Flux can apply the folder as it is.
- The binaries come from the project's virtualenv first (``make setup`` installs static
  ``kubectl`` and ``helm`` there), then from ``PATH``.
- Every failure is a :class:`RenderError` that says what to install or fix; nothing is written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITOPS_DIR = ROOT / "gitops"
NAMESPACE = "inferops"
RELEASE = "inferops-service"
KUSTOMIZATION = "kustomization.yaml"
TIMEOUT_S = 120
Source = Literal["kustomize", "helm"]


class RenderError(RuntimeError):
    """The manifests could not be rendered; the message says what to install or fix."""


def find_tool(name: str) -> str:
    """The path of ``name``: the active virtualenv's, the project's ``.venv``'s, or PATH's."""
    candidates = [ROOT / ".venv" / "bin" / name]
    if sys.prefix != sys.base_prefix:
        candidates.insert(0, Path(sys.prefix) / "bin" / name)
    for path in candidates:
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise RenderError(f"{name} is not installed: run `make setup` (installs {name} into .venv)")
    return found


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{what}: no answer after {TIMEOUT_S} s ({' '.join(argv)})") from None
    except OSError as exc:
        raise RenderError(f"{what}: cannot run {argv[0]}: {exc}; run `make setup`") from None
    if done.returncode != 0:
        raise RenderError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def render_kustomize(directory: Path, *, kubectl: str | None = None) -> str:
    """The multi-document YAML ``kubectl kustomize directory`` prints."""
    if not (directory / KUSTOMIZATION).is_file():
        raise RenderError(f"{directory} has no {KUSTOMIZATION}: not a kustomize overlay")
    tool = kubectl or find_tool("kubectl")
    # Components and `labels:` need kustomize 5 (kubectl 1.27+); older kubectl fails here.
    return _run(
        [tool, "kustomize", str(directory)],
        f"kubectl kustomize {directory} (needs kubectl 1.27 or newer: `make setup` installs one)",
    )


def render_helm(
    chart: Path,
    values: Path,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    helm: str | None = None,
) -> str:
    """The multi-document YAML ``helm template`` prints for ``chart`` with ``values``."""
    if not (chart / "Chart.yaml").is_file():
        raise RenderError(f"{chart} has no Chart.yaml: not a Helm chart")
    if not values.is_file():
        raise RenderError(f"{values} does not exist: add the environment's values file")
    tool = helm or find_tool("helm")
    argv = [tool, "template", release, str(chart), "--namespace", namespace, "-f", str(values)]
    return _run(argv, f"helm template {chart} -f {values.name}")


def object_filename(obj: Mapping[str, Any]) -> str:
    """The file an object lives in: ``<kind>-<name>.yaml``, lower case."""
    kind = str(obj.get("kind", "")).lower()
    name = str((obj.get("metadata") or {}).get("name", "")).lower()
    if not kind or not name:
        raise RenderError(f"rendered object without a kind and a name: {dict(obj)!r:.200}")
    return f"{kind}-{name}.yaml"


def split_objects(stream: str) -> dict[str, str]:
    """One file per object of a multi-document YAML stream, plus a ``kustomization.yaml``."""
    try:
        docs = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"the renderer printed invalid YAML: {exc}") from None
    files: dict[str, str] = {}
    for doc in _flatten(docs):
        name = object_filename(doc)
        if name in files:
            raise RenderError(f"two rendered objects would share {name}: rename one")
        files[name] = yaml.safe_dump(doc, sort_keys=False)
    if KUSTOMIZATION in files:
        raise RenderError(f"a rendered object would overwrite {KUSTOMIZATION}")
    files[KUSTOMIZATION] = kustomization(files)
    return dict(sorted(files.items()))


def _flatten(docs: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            raise RenderError(
                f"the renderer printed a document that is not an object: {doc!r:.200}"
            )
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from _flatten(doc["items"])
        else:
            yield doc


def kustomization(files: Iterable[str]) -> str:
    """The ``kustomization.yaml`` that lists ``files``, so GitOps controllers apply the folder."""
    resources = sorted(f for f in files if f != KUSTOMIZATION)
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": resources,
        },
        sort_keys=False,
    )


def render(
    env: str, source: Source = "kustomize", *, gitops_dir: Path = GITOPS_DIR
) -> dict[str, str]:
    """The files of ``env``'s folder in the GitOps repository, rendered from ``source``."""
    if source == "kustomize":
        overlay = gitops_dir / "overlays" / env
        if not overlay.is_dir():
            known = sorted(p.name for p in (gitops_dir / "overlays").glob("*") if p.is_dir())
            raise RenderError(f"no overlay for environment {env!r} (known: {', '.join(known)})")
        return split_objects(render_kustomize(overlay))
    chart = gitops_dir / "chart"
    return split_objects(render_helm(chart, chart / f"values-{env}.yaml"))
