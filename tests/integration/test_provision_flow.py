"""The provision and drift flows on the local module: real Terraform, a real Prefect server.

Prefect's test harness runs a temporary server, so a run that waits for approval really
pauses and is really resumed with a person's answer (as the Prefect UI or ``inferops
approve`` would send it). Terraform is the embedded one, on the local module, whose only
resources are ``terraform_data``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
from prefect.client.schemas.filters import FlowRunFilterStateType as StateTypeFilter
from prefect.client.schemas.objects import StateType
from prefect.testing.utilities import prefect_test_harness
from support import run_cli, write_config

from flows.provision import answer_approval, drift, provision
from inferops.config import load_config
from inferops.credentials import CredentialsError
from inferops.environments import terraform_of
from inferops.provisioning import Drifted, ProvisionRefused
from inferops.terraform import TerraformPlanStale, TerraformStateLocked

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def config_path(tmp_path: Path) -> str:
    return str(write_config(tmp_path, base_port=27000))


def state_file(config_path: str) -> Path:
    return load_config(config_path).env_state_dir("local") / "terraform" / "terraform.tfstate"


def resources(config_path: str) -> list[str]:
    path = state_file(config_path)
    if not path.exists():
        return []
    return sorted(f"{r['type']}.{r['name']}" for r in json.loads(path.read_text())["resources"])


def in_background(**kwargs: Any) -> Future[dict[str, Any]]:
    """Run the provision flow in a thread, as a worker would; its result comes later."""
    done: Future[dict[str, Any]] = Future()

    def run() -> None:
        try:
            done.set_result(provision(**kwargs))
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return done


def paused_run_id(started: Future[dict[str, Any]]) -> str:
    """The id of the provision run that waits for approval."""
    paused = FlowRunFilter(state=FlowRunFilterState(type=StateTypeFilter(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if started.done():
                pytest.fail(f"the run ended instead of pausing: {started.result()}")
            runs = client.read_flow_runs(flow_run_filter=paused)
            if runs:
                return str(runs[0].id)
            time.sleep(0.5)
    pytest.fail("no provision run paused for approval within 120 s")


def test_plan_only_writes_the_review_and_applies_nothing(config_path: str, tmp_path: Path) -> None:
    out = tmp_path / "review" / "plan.md"
    result = provision("local", config_path, plan_only=True, out=str(out))
    assert result["status"] == "plan_only"
    markdown = out.read_text()
    assert markdown.startswith("#")
    assert "to add" in markdown
    assert "terraform_data" in markdown
    assert resources(config_path) == []


def test_auto_approve_applies_then_a_second_run_has_nothing_to_do(config_path: str) -> None:
    applied = provision("local", config_path, auto_approve=True)
    assert applied["status"] == "applied"
    assert applied["outputs"]["router"]["port"] == 27000 + 80
    assert resources(config_path)
    again = provision("local", config_path, auto_approve=True)
    assert again["status"] == "unchanged"
    assert again["outputs"] == applied["outputs"]


def test_a_run_pauses_until_a_person_approves(config_path: str) -> None:
    started = in_background(env="local", config_path=config_path, approval_timeout_s=300)
    run_id = paused_run_id(started)
    assert resources(config_path) == []  # nothing applied while it waits
    answer_approval(run_id, True, "reviewed in the PR")
    result = started.result(timeout=120)
    assert result["status"] == "applied"
    assert resources(config_path)


def test_a_rejected_plan_is_not_applied(config_path: str) -> None:
    started = in_background(env="local", config_path=config_path, approval_timeout_s=300)
    answer_approval(paused_run_id(started), False, "wrong region")
    with pytest.raises(ProvisionRefused, match="rejected: wrong region; nothing was applied"):
        started.result(timeout=120)
    assert resources(config_path) == []


def test_a_plan_made_before_another_apply_is_refused_at_apply(config_path: str) -> None:
    # Plan A waits for its reviewer; meanwhile another run plans and applies.
    started = in_background(env="local", config_path=config_path, approval_timeout_s=300)
    run_id = paused_run_id(started)
    provision("local", config_path, auto_approve=True)
    applied = resources(config_path)
    answer_approval(run_id, True, "looked fine an hour ago")
    with pytest.raises(TerraformPlanStale, match="nothing was applied; plan again"):
        started.result(timeout=120)
    assert resources(config_path) == applied


def test_a_held_state_lock_fails_the_run_and_changes_nothing(config_path: str) -> None:
    provision("local", config_path, auto_approve=True)
    before = state_file(config_path).read_text()
    stack = terraform_of(load_config(config_path), "local")
    # The local backend locks its state file with fcntl; hold that lock as a run would.
    import fcntl

    with state_file(config_path).open("r+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TerraformStateLocked, match="holds the state lock"):
            provision("local", config_path, auto_approve=True)
    assert state_file(config_path).read_text() == before
    assert stack.tf.plan(stack.variables, Path("check.tfplan")).has_changes is False


def test_drift_fails_with_what_differs_and_passes_when_in_step(config_path: str) -> None:
    provision("local", config_path, auto_approve=True)
    assert drift("local", config_path)["drifted"] is False
    # Someone changes the live state by hand: one component's recorded input differs.
    path = state_file(config_path)
    state = json.loads(path.read_text())
    state["serial"] += 1
    first = state["resources"][0]
    first["instances"][0]["attributes"]["input"] = {"value": "changed by hand", "type": "string"}
    path.write_text(json.dumps(state))
    with pytest.raises(Drifted, match="differs from the code") as caught:
        drift("local", config_path)
    assert f"{first['type']}.{first['name']}" in str(caught.value)


def test_missing_cloud_credentials_stop_the_run_before_terraform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = tmp_path / "inferops.yaml"
    path.write_text(
        f"""
state_dir: {tmp_path / "state"}
environments:
  prod:
    platform: kubernetes
    terraform:
      module: {ROOT / "terraform/environments/local"}
      cloud: aws
"""
    )
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        provision("prod", str(path), auto_approve=True)
    assert not (tmp_path / "state").exists()


def test_the_cli_writes_a_review_for_a_pull_request_and_refuses_unknown_environments(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, base_port=27200)
    planned = run_cli(tmp_path, "provision", "--env", "local", "--plan-only", "--out", "plan.md")
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "local: plan_only" in planned.stdout
    assert "review written to plan.md" in planned.stdout
    assert "7 to add" in (tmp_path / "plan.md").read_text()
    unknown = run_cli(tmp_path, "provision", "--env", "nope")
    assert unknown.returncode == 1
    assert "unknown environment 'nope'" in unknown.stderr


def test_no_plan_file_outlives_its_run(config_path: str) -> None:
    provision("local", config_path, plan_only=True)
    provision("local", config_path, auto_approve=True)
    plans = load_config(config_path).env_state_dir("local") / "terraform" / "plans"
    assert list(plans.glob("*.tfplan")) == []
