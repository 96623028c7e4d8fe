"""Plan summaries, runner selection and error reporting, without a real Terraform."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from inferops.terraform import (
    BinaryTerraform,
    EmbeddedTerraform,
    PlanSummary,
    ResourceChange,
    TerraformError,
    TerraformStateLocked,
    summarise_plan,
    terraform_for,
)


def _change(address: str, actions: list[str], **extra: Any) -> dict[str, Any]:
    """One entry of a plan's resource_changes, shaped like Terraform's JSON output."""
    resource_type, _, name = address.partition(".")
    return {
        "address": address,
        "mode": "managed",
        "type": resource_type,
        "name": name,
        "provider_name": "terraform.io/builtin/terraform",
        "change": {"actions": actions, "before": None, "after": {}},
        **extra,
    }


def _plan(*changes: dict[str, Any], outputs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A saved plan's JSON with the given resource and output changes."""
    return {
        "format_version": "1.2",
        "terraform_version": "1.15.5",
        "resource_changes": list(changes),
        "output_changes": {name: {"actions": acts} for name, acts in (outputs or {}).items()},
    }


def test_summary_counts_each_kind_of_action_as_terraform_does() -> None:
    plan = _plan(
        _change("terraform_data.redis", ["create"]),
        _change("terraform_data.router", ["update"]),
        _change("terraform_data.images", ["delete"]),
        _change("terraform_data.gitops", ["delete", "create"]),
        _change("terraform_data.prefect", ["create", "delete"]),
        _change("terraform_data.services", ["no-op"]),
    )

    summary = summarise_plan(plan)

    assert (summary.adds, summary.changes, summary.destroys, summary.replaces) == (3, 1, 3, 2)
    assert summary.has_changes
    assert [c.address for c in summary.resource_changes] == [
        "terraform_data.redis",
        "terraform_data.router",
        "terraform_data.images",
        "terraform_data.gitops",
        "terraform_data.prefect",
    ]
    assert summary.resource_changes[3] == ResourceChange(
        "terraform_data.gitops", "terraform_data", ("delete", "create")
    )
    assert summary.resource_changes[3].is_replace
    assert not summary.resource_changes[1].is_replace


def test_a_plan_of_no_ops_has_no_changes() -> None:
    plan = _plan(
        _change("terraform_data.redis", ["no-op"]),
        _change("terraform_data.router", ["no-op"]),
        outputs={"redis": ["no-op"]},
    )

    assert summarise_plan(plan) == PlanSummary(0, 0, 0, 0, (), ())
    assert not summarise_plan(plan).has_changes


def test_an_empty_configuration_has_no_changes() -> None:
    assert not summarise_plan({"format_version": "1.2"}).has_changes


def test_output_only_changes_count_as_changes() -> None:
    plan = _plan(
        _change("terraform_data.redis", ["no-op"]),
        outputs={"state_dir": ["update"], "environment": ["create"], "redis": ["no-op"]},
    )

    summary = summarise_plan(plan)

    assert summary.output_changes == ("environment", "state_dir")
    assert summary.resource_changes == ()
    assert summary.has_changes


def test_a_moved_resource_is_a_change_even_without_actions() -> None:
    plan = _plan(
        _change("terraform_data.router", ["no-op"], previous_address="terraform_data.nginx")
    )

    summary = summarise_plan(plan)

    assert summary.has_changes
    assert summary.adds == summary.changes == summary.destroys == 0


def test_a_destroy_plan_counts_every_resource_as_destroyed() -> None:
    names = ["redis", "prometheus", "router", "prefect", "services", "gitops", "images"]
    plan = _plan(*(_change(f"terraform_data.{n}", ["delete"]) for n in names))

    summary = summarise_plan(plan)

    assert summary.destroys == 7
    assert summary.adds == summary.changes == summary.replaces == 0


def test_a_missing_binary_says_what_to_configure(tmp_path: Path) -> None:
    with pytest.raises(TerraformError) as raised:
        terraform_for(tmp_path, tmp_path / "work", binary="no-such-terraform-xyz")

    message = str(raised.value)
    assert "'no-such-terraform-xyz' was not found on PATH or is not executable" in message
    assert "embedded Terraform" in message


def test_a_binary_path_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    binary = tmp_path / "terraform"
    binary.write_text("#!/bin/sh\n")

    with pytest.raises(TerraformError, match="not found on PATH or is not executable"):
        terraform_for(tmp_path, tmp_path / "work", binary=str(binary))


def test_without_a_binary_the_embedded_terraform_is_used(tmp_path: Path, module: Path) -> None:
    runner = terraform_for(module, tmp_path / "work")

    assert isinstance(runner, EmbeddedTerraform)


def test_a_missing_module_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match="does not exist"):
        terraform_for(tmp_path / "absent", tmp_path / "work")


def test_a_work_dir_inside_the_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match="inside module_dir"):
        terraform_for(tmp_path, tmp_path / ".work")


def _fake_terraform(folder: Path, stderr: str, exit_code: int, stdout: str = "") -> str:
    """An executable that records its argv and environment, prints and exits like Terraform."""
    (folder / "stderr.txt").write_text(stderr)
    (folder / "stdout.txt").write_text(stdout)
    script = folder / "fake-terraform"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{folder}/argv.txt"\n'
        f'env > "{folder}/env.txt"\n'
        f'cat "{folder}/stdout.txt"\n'
        f'cat "{folder}/stderr.txt" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    """An empty module folder the fake binaries run against."""
    folder = tmp_path / "module"
    folder.mkdir()
    return folder


VALIDATION_ERROR = """
Error: Invalid value for variable

  on variables.tf line 22:
  22: variable "base_port" {
    ├────────────────
    │ var.base_port is 80

The base_port must be a whole number from 1024 to 64000.

This was checked by the validation rule at variables.tf:27,3-13.
"""

LOCK_ERROR = """
Error: Error acquiring the state lock

Error message: resource temporarily unavailable

Terraform acquires a state lock to protect the state from being written
by multiple users at the same time.
"""


def test_errors_carry_the_command_exit_code_and_diagnostics(tmp_path: Path, module: Path) -> None:
    binary = _fake_terraform(tmp_path, VALIDATION_ERROR, 1)
    runner = terraform_for(module, tmp_path / "work", binary=binary)

    with pytest.raises(TerraformError) as raised:
        runner.plan({"base_port": 80, "state_dir": "/srv/x"}, Path("local.tfplan"))

    error = raised.value
    assert type(error) is TerraformError
    assert error.exit_code == 1
    assert error.command[0] == "plan"
    assert "-var=base_port=80" in error.command
    assert error.diagnostics == (
        "Invalid value for variable: The base_port must be a whole number from 1024 to 64000. "
        "This was checked by the validation rule at variables.tf:27,3-13.",
    )
    message = str(error)
    assert "plan failed (exit code 1)" in message
    assert "The base_port must be a whole number from 1024 to 64000" in message
    assert "var.base_port is 80" not in message
    assert "Fix the configuration or the variable values" in message


def test_a_held_state_lock_raises_the_lock_error(tmp_path: Path, module: Path) -> None:
    runner = terraform_for(
        module, tmp_path / "work", binary=_fake_terraform(tmp_path, LOCK_ERROR, 1)
    )

    with pytest.raises(TerraformStateLocked, match="wait for it to finish and retry"):
        runner.apply(Path("local.tfplan"))


def test_output_without_diagnostics_falls_back_to_the_last_lines(
    tmp_path: Path, module: Path
) -> None:
    binary = _fake_terraform(tmp_path, "panic: something odd\ngoroutine 1\n", 2)
    runner = terraform_for(module, tmp_path / "work", binary=binary)

    with pytest.raises(TerraformError, match="panic: something odd goroutine 1") as raised:
        runner.output()
    assert raised.value.exit_code == 2


def test_commands_run_in_the_module_with_files_kept_in_work_dir(
    tmp_path: Path, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CLI_ARGS_plan", "-refresh=false")
    monkeypatch.setenv("TF_LOG", "WARN")
    outputs = {"redis": {"sensitive": False, "type": "object", "value": {"port": 18079}}}
    binary = _fake_terraform(tmp_path, "", 0, stdout=json.dumps(outputs))
    work = tmp_path / "work"
    runner = terraform_for(module, work, binary=binary)
    assert isinstance(runner, BinaryTerraform)

    assert runner.output() == {"redis": {"port": 18079}}

    argv = (tmp_path / "argv.txt").read_text().splitlines()
    lines = (tmp_path / "env.txt").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert argv[:2] == [f"-chdir={module}", "output"]
    assert env["TF_DATA_DIR"] == str(work / ".terraform")
    assert env["TF_CLI_CONFIG_FILE"] == str(work / "terraform.rc")
    assert (work / "terraform.rc").read_text() == ""
    assert (env["TF_IN_AUTOMATION"], env["TF_INPUT"], env["TF_LOG"]) == ("1", "0", "WARN")
    assert "TF_CLI_ARGS_plan" not in env
    assert os.listdir(module) == []


def test_init_defaults_the_state_to_work_dir(tmp_path: Path, module: Path) -> None:
    runner = terraform_for(module, tmp_path / "work", binary=_fake_terraform(tmp_path, "", 0))

    runner.init()

    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert f"-backend-config=path={tmp_path / 'work' / 'terraform.tfstate'}" in argv
    assert "-lockfile=readonly" in argv


def test_variables_are_passed_as_terraform_values(tmp_path: Path, module: Path) -> None:
    runner = terraform_for(module, tmp_path / "work", binary=_fake_terraform(tmp_path, "", 0))

    runner.destroy({"state_dir": "/srv/a b", "base_port": 18000, "flags": {"on": True}})

    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv[1:3] == ["apply", "-no-color"]
    assert "-destroy" in argv
    assert "-var=state_dir=/srv/a b" in argv
    assert "-var=base_port=18000" in argv
    assert '-var=flags={"on": true}' in argv


def test_the_description_lists_what_changes_and_skips_no_ops() -> None:
    summary = summarise_plan(
        _plan(
            _change("terraform_data.a", ["create"]),
            _change("terraform_data.b", ["no-op"]),
            _change("terraform_data.c", ["delete", "create"]),
        )
    )
    assert summary.describe().splitlines() == [
        "2 to add, 0 to change, 1 to destroy",
        "  create terraform_data.a",
        "  delete/create terraform_data.c",
    ]
