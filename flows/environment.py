"""Bring an environment up (provision, seed its GitOps repo, start it) and down."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.build import build
from flows.provision import destroy, provision
from inferops.config import load_config
from inferops.environments import Target, manifest_files, open_target, retire_outputs
from inferops.gitops import messages
from inferops.gitops.manifests import seed
from inferops.platforms.base import LiveState


@task
def seed_gitops(target: Target, image: str) -> str:
    """Create the GitOps repository with the stable image, unless it exists."""
    repo = target.repo()
    if repo.exists():
        return repo.head()
    files = seed(manifest_files(target.config, target.name), image, target.layout.stable_replicas)
    msg = messages.seed(target.name, image)
    return repo.create(files, msg.subject, msg.trailers)


@flow(name="up")
def up(env: str = "local", config_path: str = "inferops.yaml") -> dict[str, object]:
    """Provision ``env``, seed its GitOps repository and start it."""
    log = get_run_logger()
    config = load_config(config_path)
    # The local environment holds no clusters: its plans are applied without a person.
    provision(env, config_path, auto_approve=True)
    target = open_target(config, env)
    if not target.repo().exists():
        image = build(env, "HEAD", config_path)
        seed_gitops(target, image["ref"])
    state: LiveState = target.platform().start(progress=log.info)
    log.info(
        "environment %s is live at %s: router %s, prometheus %s",
        env,
        (state.revision or "")[:12],
        target.layout.router_url,
        target.layout.prometheus_url,
    )
    return {
        "revision": state.revision,
        "router": target.layout.router_url,
        "prometheus": target.layout.prometheus_url,
        "prefect": target.layout.prefect_api_url if target.layout.prefect_enabled else None,
    }


@flow(name="down")
def down(env: str = "local", config_path: str = "inferops.yaml") -> bool:
    """Stop everything ``env`` runs and destroy its Terraform state."""
    log = get_run_logger()
    config = load_config(config_path)
    stopped = False
    try:
        stopped = open_target(config, env).platform().stop()
    except Exception as exc:  # not provisioned: nothing runs, still destroy the state
        log.info("nothing running for %s (%s)", env, exc)
    destroy(config, env)
    retire_outputs(config, env)
    log.info("environment %s is down; its GitOps history is kept", env)
    return stopped
