"""The manifest sources pass checkov and work with the real tools that consume them.

Runs the project's checkov (``.venv-checkov``), its static kubectl and the service's own
configuration check; ``make setup`` installs all three.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferops.gitops.render import (
    GITOPS_DIR,
    KUSTOMIZATION,
    RenderError,
    find_tool,
    render,
    render_kustomize,
    split_objects,
)
from inferops.gitops.validate import ValidatorError, find_checkov, run_checkov, validate

SKIP_PREFIX = "checkov.io/skip"


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    """dev and prod, rendered once for the module; fails with what to install."""
    try:
        find_tool("kubectl")
        find_checkov()
        return {env: render(env) for env in ("dev", "prod")}
    except (RenderError, ValidatorError) as exc:
        pytest.fail(str(exc))


def _skips(files: dict[str, str]) -> dict[str, str]:
    """``{check id: reason}`` of every checkov skip annotation in ``files``."""
    found: dict[str, str] = {}
    for text in files.values():
        notes = (yaml.safe_load(text).get("metadata") or {}).get("annotations") or {}
        for key, value in notes.items():
            if key.startswith(SKIP_PREFIX):
                check, _, reason = str(value).partition("=")
                found[check] = reason
    return found


def _without_skips(files: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, text in files.items():
        doc: dict[str, Any] = yaml.safe_load(text)
        notes = (doc.get("metadata") or {}).get("annotations") or {}
        for key in [k for k in notes if k.startswith(SKIP_PREFIX)]:
            del notes[key]
        out[name] = yaml.safe_dump(doc, sort_keys=False)
    return out


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rendered_environments_pass_schemas_and_checkov(
    rendered: dict[str, dict[str, str]], env: str
) -> None:
    assert validate(rendered[env]) == []


def test_the_controllers_pass_schemas_and_checkov() -> None:
    controllers = GITOPS_DIR / "controllers"
    files = {str(p.relative_to(controllers)): p.read_text() for p in controllers.rglob("*.yaml")}
    assert validate(files) == []


def test_each_checkov_skip_has_a_reason_and_is_still_needed(
    rendered: dict[str, dict[str, str]],
) -> None:
    skips = _skips(rendered["dev"])
    assert set(skips) == {"CKV_K8S_15", "CKV_K8S_40", "CKV_K8S_43"}
    assert all(len(reason.split()) >= 5 for reason in skips.values()), skips
    # Without the annotations checkov fails exactly the skipped checks: none is stale.
    failed = {p.message.split(":")[0] for p in run_checkov(_without_skips(rendered["dev"]))}
    assert failed == set(skips)


def test_checkov_reports_a_privileged_container_by_object_and_field(
    rendered: dict[str, dict[str, str]],
) -> None:
    name = "deployment-inferops-service-canary.yaml"
    doc = yaml.safe_load(rendered["dev"][name])
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    problems = run_checkov({**rendered["dev"], name: yaml.safe_dump(doc)})
    assert [(p.object, p.field, p.message.split(":")[0]) for p in problems] == [
        (
            "Deployment/inferops/inferops-service-canary",
            "spec.template.spec.containers[0].securityContext.privileged",
            "CKV_K8S_16",
        )
    ]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_rendered_folder_builds_as_argo_cd_and_flux_build_it(
    rendered: dict[str, dict[str, str]], env: str, tmp_path: Path
) -> None:
    for name, text in rendered[env].items():
        (tmp_path / name).write_text(text)
    rebuilt = split_objects(render_kustomize(tmp_path))
    assert rebuilt == rendered[env]
    assert (tmp_path / KUSTOMIZATION).is_file()


def test_the_configmap_is_a_valid_service_configuration(
    rendered: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    service_cli = Path(sys.executable).parent / "inferops-service"
    if not service_cli.is_file():
        pytest.fail("inferops-service is not installed: run `make setup`")
    config = yaml.safe_load(rendered["prod"]["configmap-inferops-service-config.yaml"])
    path = tmp_path / "service.yaml"
    path.write_text(config["data"]["service.yaml"])
    done = subprocess.run(
        [str(service_cli), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["telemetry"]["log_format"] == "json"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_chart_renders_the_same_files_and_they_validate(
    rendered: dict[str, dict[str, str]], env: str
) -> None:
    try:
        from_chart = render(env, source="helm")
    except RenderError as exc:
        pytest.fail(str(exc))
    assert set(from_chart) == set(rendered[env])
    assert validate(from_chart) == []
