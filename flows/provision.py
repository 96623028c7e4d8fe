"""Provision an environment: Terraform init, plan, apply; record the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from inferops.config import Config, load_config
from inferops.environments import save_outputs, terraform_of


@task
def plan_and_apply(config: Config, env: str) -> dict[str, Any]:
    """Plan, show the plan, apply exactly that plan, and return the outputs."""
    log = get_run_logger()
    tf, variables = terraform_of(config, env)
    tf.init()
    plan_file = Path("tfplan")
    summary = tf.plan(variables, plan_file)
    log.info("terraform plan for %s: %s", env, summary.describe())
    if summary.has_changes:
        tf.apply(plan_file)
    outputs = tf.output()
    save_outputs(config, env, outputs)
    return outputs


@task
def destroy(config: Config, env: str) -> None:
    """Destroy the environment's Terraform state."""
    tf, variables = terraform_of(config, env)
    tf.init()
    tf.destroy(variables)


@flow(name="provision")
def provision(env: str = "local", config_path: str = "inferops.yaml") -> dict[str, Any]:
    """Provision ``env`` with Terraform and record its outputs."""
    config = load_config(config_path)
    outputs = plan_and_apply(config, env)
    create_markdown_artifact(
        key=f"provision-{env}",
        markdown="\n".join(f"- **{k}**: `{v}`" for k, v in sorted(outputs.items())),
        description=f"Terraform outputs of {env}",
    )
    return outputs
