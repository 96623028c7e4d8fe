"""The local environment's Terraform module, planned and applied by real Terraform.

Every scenario runs with the embedded Terraform; the same scenario runs through a
``terraform`` binary when one is on PATH.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferops.terraform import Terraform, TerraformError, TerraformStateLocked, terraform_for

MODULE = Path(__file__).resolve().parents[2] / "terraform" / "environments" / "local"
COMPONENTS = {"redis", "prometheus", "router", "prefect", "services", "gitops", "images"}


def _binary_or_skip() -> str:
    """The terraform binary on PATH, or skip the test."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary on PATH; the embedded Terraform covers this scenario")
    return binary


@pytest.fixture(params=["embedded", "binary"])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Terraform:
    """An initialised runner for the local module with its files in tmp_path."""
    binary = _binary_or_skip() if request.param == "binary" else None
    terraform = terraform_for(MODULE, tmp_path / "terraform", binary=binary)
    terraform.init()
    return terraform


@pytest.fixture(autouse=True)
def module_untouched() -> Iterator[None]:
    """Fail the test if anything in the module's folder was created, changed or removed."""
    before = _listing(MODULE)
    yield
    assert _listing(MODULE) == before


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under folder, hidden ones included, with its size and mtime."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
    }


def _variables(tmp_path: Path, **overrides: object) -> dict[str, object]:
    """Variables for an environment whose state folder is under tmp_path."""
    return {"state_dir": str(tmp_path / ".inferops" / "local"), **overrides}


def test_environment_lifecycle(runner: Terraform, tmp_path: Path) -> None:
    variables = _variables(tmp_path, base_port=20000)
    state_dir = variables["state_dir"]

    created = runner.plan(variables, Path("create.tfplan"))
    assert (created.adds, created.changes, created.destroys) == (7, 0, 0)
    assert {c.address for c in created.resource_changes} == {
        f"terraform_data.{name}" for name in COMPONENTS
    }

    runner.apply(Path("create.tfplan"))
    outputs = runner.output()
    assert set(outputs) == COMPONENTS | {"environment", "state_dir"}
    assert (outputs["environment"], outputs["state_dir"]) == ("local", state_dir)
    assert outputs["redis"] == {"host": "127.0.0.1", "port": 20079, "dir": f"{state_dir}/redis"}
    assert (outputs["router"]["port"], outputs["prometheus"]["port"]) == (20080, 20090)
    assert outputs["prefect"]["port"] == 20042
    assert (outputs["services"]["port_start"], outputs["services"]["port_end"]) == (20100, 20199)
    assert outputs["gitops"]["path"] == "environments/local"
    assert (tmp_path / "terraform" / "terraform.tfstate").is_file()

    assert not runner.plan(variables, Path("again.tfplan")).has_changes

    moved = runner.plan({**variables, "base_port": 21000}, Path("move.tfplan"))
    assert moved.has_changes
    assert moved.changes == 5  # every component with a port; gitops and images stay
    assert moved.adds == moved.destroys == 0

    runner.destroy(variables)
    assert runner.output() == {}


def test_a_destroy_plan_removes_every_component(runner: Terraform, tmp_path: Path) -> None:
    variables = _variables(tmp_path)
    runner.plan(variables, Path("create.tfplan"))
    runner.apply(Path("create.tfplan"))

    removal = runner.plan(variables, Path("destroy.tfplan"), destroy=True)
    assert (removal.adds, removal.destroys) == (0, 7)
    plan_json = runner.show_plan(Path("destroy.tfplan"))
    assert plan_json["resource_changes"][0]["change"]["actions"] == ["delete"]

    runner.apply(Path("destroy.tfplan"))
    assert runner.output() == {}


def test_an_invalid_variable_names_the_validation(runner: Terraform, tmp_path: Path) -> None:
    with pytest.raises(TerraformError) as raised:
        runner.plan(_variables(tmp_path, base_port=80), Path("bad.tfplan"))

    assert raised.value.exit_code == 1
    assert "Invalid value for variable" in str(raised.value)
    assert "base_port must be a whole number from 1024 to 64000" in str(raised.value)


def test_a_relative_state_dir_is_refused(runner: Terraform) -> None:
    with pytest.raises(TerraformError, match="state_dir must be an absolute path"):
        runner.plan({"state_dir": "relative/dir"}, Path("bad.tfplan"))


def test_a_held_state_lock_is_reported(runner: Terraform, tmp_path: Path) -> None:
    variables = _variables(tmp_path)
    runner.plan(variables, Path("create.tfplan"))
    runner.apply(Path("create.tfplan"))

    # The local backend locks the state file with a POSIX record lock; hold one.
    with (tmp_path / "terraform" / "terraform.tfstate").open("r+") as state:
        fcntl.lockf(state, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TerraformStateLocked, match="holds the state lock"):
            runner.plan(variables, Path("blocked.tfplan"))


def test_planning_before_init_says_to_init(tmp_path: Path) -> None:
    terraform = terraform_for(MODULE, tmp_path / "terraform")

    with pytest.raises(TerraformError, match=r"Run init\(\)"):
        terraform.plan(_variables(tmp_path), Path("early.tfplan"))


def test_the_module_is_formatted(tmp_path: Path) -> None:
    assert terraform_for(MODULE, tmp_path / "terraform").fmt_check() == []


def test_fmt_check_lists_unformatted_files(tmp_path: Path) -> None:
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text('locals {\n  a = "x"\n  bb = "y"\n}\n')

    assert terraform_for(module, tmp_path / "terraform").fmt_check() == ["main.tf"]
