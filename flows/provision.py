"""Provision an environment: plan, review, apply exactly what was reviewed; detect drift.

The runbook, in order: check the cloud credentials (before Terraform touches anything);
init against the environment's state backend; plan to a file; publish the summary and its
cost as an artifact (and, for a pull request, as a Markdown file); decide through the
gate in :mod:`inferops.provisioning`; when a person must approve, pause for their answer
(approve or reject, with a reason); apply that plan file and nothing else; record the
outputs. Terraform refuses a plan made before another apply, so what is applied is what
was reviewed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.settings import PREFECT_API_URL
from pydantic import Field

from inferops import credentials
from inferops.config import Config, load_config
from inferops.cost import load_prices
from inferops.environments import save_outputs, terraform_of, terraform_work_dir
from inferops.plan_review import PlanReview, review_plan
from inferops.provisioning import Drifted, Gate, ProvisionRefused, decide, drift_report

# Prefect checks a paused run for an answer this often.
APPROVAL_POLL_S = 2


class Approval(RunInput):
    """A person's answer to a paused provision run."""

    approve: bool = Field(description="Apply the plan exactly as reviewed.")
    reason: str = Field(default="", description="Why: kept with the run.")


@task
def check_credentials(config: Config, env: str) -> str:
    """Describe the identity Terraform will act as; fail before planning without one."""
    return credentials.check(config.environment(env).terraform.cloud)


@task
def plan(config: Config, env: str, plan_file: Path, destroy: bool = False) -> PlanReview:
    """Init, plan to ``plan_file``, and review the plan: its summary, cost and Markdown."""
    stack = terraform_of(config, env)
    stack.init()
    summary = stack.tf.plan(stack.variables, plan_file, destroy=destroy)
    return review_plan(env, stack.tf.show_plan(plan_file), load_prices(), summary)


@task
def apply(config: Config, env: str, plan_file: Path) -> dict[str, Any]:
    """Apply exactly the reviewed plan file, then record and return the outputs."""
    stack = terraform_of(config, env)
    stack.tf.apply(plan_file)
    outputs = stack.tf.output()
    save_outputs(config, env, outputs)
    return outputs


@task
def current_outputs(config: Config, env: str) -> dict[str, Any]:
    """Record and return the outputs of the state as it is."""
    outputs = terraform_of(config, env).tf.output()
    save_outputs(config, env, outputs)
    return outputs


@task
def destroy(config: Config, env: str) -> None:
    """Destroy the environment's Terraform state."""
    stack = terraform_of(config, env)
    stack.init()
    stack.tf.destroy(stack.variables)


def _publish(env: str, review: PlanReview, out: str | None) -> None:
    create_markdown_artifact(
        key=f"plan-{env}", markdown=review.markdown, description=f"Terraform plan of {env}"
    )
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(review.markdown)


def _discard(config: Config, env: str, plan_file: Path) -> None:
    """Remove a run's plan file: it is applied in the run that reviewed it, or never."""
    (terraform_work_dir(config, env) / plan_file).unlink(missing_ok=True)


def _plan_file() -> Path:
    """A plan file of this run's own, so concurrent runs never apply each other's plans."""
    return Path("plans") / f"{get_run_context().flow_run.id}.tfplan"  # type: ignore[union-attr]


def _wait_for_approval(env: str, reason: str, timeout_s: int) -> Approval:
    log = get_run_logger()
    if PREFECT_API_URL.value() is None:
        raise ProvisionRefused(
            f"{reason}; approving needs a Prefect server to pause on, and none is "
            f"configured: start one (`inferops up --env local` runs one) or set "
            f"PREFECT_API_URL, or re-run with --auto-approve; nothing was applied"
        )
    run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
    log.warning(
        "%s: %s. Waiting up to %ss for an answer: approve in the Prefect UI, or run "
        "`inferops approve %s --env %s` (add --reject --reason '...' to refuse)",
        env,
        reason,
        timeout_s,
        run_id,
        env,
    )
    answer = pause_flow_run(
        wait_for_input=Approval, timeout=timeout_s, poll_interval=APPROVAL_POLL_S
    )
    assert answer is not None  # a pause that waits for input resumes with it
    return answer


@flow(name="provision")
def provision(
    env: str = "local",
    config_path: str = "inferops.yaml",
    plan_only: bool = False,
    auto_approve: bool = False,
    allow_destroy: bool = False,
    out: str | None = None,
    approval_timeout_s: int = 3600,
) -> dict[str, Any]:
    """Plan ``env``, publish the review, and apply it once the gate allows."""
    log = get_run_logger()
    config = load_config(config_path)
    log.info("credentials: %s", check_credentials(config, env))
    plan_file = _plan_file()
    try:
        return _review_and_apply(
            config, env, plan_file, plan_only, auto_approve, allow_destroy, out, approval_timeout_s
        )
    finally:
        _discard(config, env, plan_file)


def _review_and_apply(
    config: Config,
    env: str,
    plan_file: Path,
    plan_only: bool,
    auto_approve: bool,
    allow_destroy: bool,
    out: str | None,
    approval_timeout_s: int,
) -> dict[str, Any]:
    log = get_run_logger()
    review = plan(config, env, plan_file)
    _publish(env, review, out)
    log.info("plan for %s: %s", env, review.text)
    decision = decide(
        review.has_changes,
        review.critical,
        plan_only=plan_only,
        auto_approve=auto_approve,
        allow_destroy=allow_destroy,
    )
    log.info("%s: %s", decision.gate.value, decision.reason)
    result: dict[str, Any] = {
        "env": env,
        "status": decision.gate.name.lower(),
        "summary": review.text,
        "monthly_usd": review.monthly_usd,
    }
    if decision.gate is Gate.PLAN_ONLY:
        return result
    if decision.gate is Gate.NOTHING:
        return {**result, "status": "unchanged", "outputs": current_outputs(config, env)}
    if decision.gate is Gate.APPROVAL:
        answer = _wait_for_approval(env, decision.reason, approval_timeout_s)
        if not answer.approve:
            raise ProvisionRefused(
                f"the plan for {env} was rejected: {answer.reason or 'no reason given'}; "
                "nothing was applied"
            )
        log.info("approved: %s", answer.reason or "no reason given")
    return {**result, "status": "applied", "outputs": apply(config, env, plan_file)}


@flow(name="drift")
def drift(env: str = "local", config_path: str = "inferops.yaml") -> dict[str, Any]:
    """Plan ``env`` without applying; fail, with the differences, when it drifted."""
    config = load_config(config_path)
    check_credentials(config, env)
    plan_file = _plan_file()
    try:
        review = plan(config, env, plan_file)
    finally:
        _discard(config, env, plan_file)
    drifted, report = drift_report(env, review.has_changes, review.text)
    create_markdown_artifact(
        key=f"drift-{env}",
        markdown=review.markdown if drifted else f"**{env}**: no drift.",
        description=f"Drift check of {env}",
    )
    if drifted:
        raise Drifted(report)
    get_run_logger().info(report)
    return {"env": env, "drifted": False, "summary": review.text}


def answer_approval(run_id: str, approve: bool, reason: str) -> None:
    """Resume a provision run paused for approval with a person's answer."""
    resume_flow_run(UUID(run_id), run_input={"approve": approve, "reason": reason})
