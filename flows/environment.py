"""Bring an environment up (provision, seed its GitOps repo, start it) and down.

A cluster environment is provisioned by ``provision`` (its plans wait for a
person); ``up`` seeds its GitOps repository with the image built and pushed
from HEAD, and waits until the cluster runs it.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.build import build
from flows.provision import destroy, provision
from flows.runs import clean_orphans
from inferops import rollout as steps
from inferops.config import ConfigError, load_config
from inferops.environments import Target, manifest_files, open_target, retire_outputs
from inferops.gitops import messages
from inferops.gitops.manifests import seed
from inferops.lock import EnvironmentBusy
from inferops.platforms.base import LiveState
from inferops.platforms.local import LocalPlatform


@task
def seed_gitops(target: Target, image: str) -> str:
    """Create the GitOps repository with the stable image, unless it exists."""
    repo = target.repo()
    if repo.exists():
        return repo.head()
    files = seed(manifest_files(target.config, target.name), image, target.stable_replicas)
    msg = messages.seed(target.name, image)
    return repo.create(files, msg.subject, msg.trailers)


@flow(name="up")
def up(env: str = "local", config_path: str = "inferops.yaml") -> dict[str, object]:
    """Provision ``env``, seed its GitOps repository and start it (on a cluster: seed, wait)."""
    log = get_run_logger()
    config = load_config(config_path)
    if config.environment(env).platform == "kubernetes":
        return _up_cluster(open_target(config, env), config_path)
    # The local environment holds no clusters: its plans are applied without a person.
    provision(env, config_path, auto_approve=True)
    target = open_target(config, env)
    if not target.repo().exists():
        image = build(env, "HEAD", config_path)
        seed_gitops(target, image["ref"])
    layout = target.local
    platform = LocalPlatform(layout)
    state: LiveState = platform.start(progress=log.info)
    state = _finish_killed_releases(target, platform) or state
    log.info(
        "environment %s is live at %s: router %s, prometheus %s",
        env,
        (state.revision or "")[:12],
        layout.router_url,
        layout.prometheus_url,
    )
    return {
        "revision": state.revision,
        "router": layout.router_url,
        "prometheus": layout.prometheus_url,
        "prefect": layout.prefect_api_url if layout.prefect_enabled else None,
    }


def _finish_killed_releases(target: Target, platform: LocalPlatform) -> LiveState | None:
    """What a killed release left: its Prefect runs are marked crashed, its load stopped,
    and, unless a release runs now, the canary it left is rolled back; the live state
    after that rollback, or None when none was needed."""
    clean_orphans(target.state_dir)
    try:
        with target.lock("inferops up"):
            sha = steps.converge(target.repo(), "when inferops up brought the environment up")
            if sha is None:
                return None
            get_run_logger().warning(
                "rolled back the canary of a release that was killed (%s)", sha[:12]
            )
            return platform.wait_until_live(sha, target.env.canary.live_timeout_s)
    except EnvironmentBusy:
        get_run_logger().info("a release is running: its canary is its own")
        return None


def _up_cluster(target: Target, config_path: str) -> dict[str, object]:
    """Seed a cluster environment's GitOps repository (once) and wait until the cluster runs it."""
    log = get_run_logger()
    repo = target.repo()
    if repo.exists():
        log.info("%s's GitOps repository is seeded already; waiting for its head", target.name)
    else:
        image = build(target.name, "HEAD", config_path)
        seed_gitops(target, image["ref"])
    revision = repo.head()
    target.platform(log.info).wait_until_live(revision, target.env.canary.live_timeout_s)
    log.info("environment %s is live at %s: %s", target.name, revision[:12], target.router_url)
    return {
        "revision": revision,
        "endpoint": target.router_url,
        "prometheus": target.prometheus_url,
    }


@flow(name="down")
def down(env: str = "local", config_path: str = "inferops.yaml") -> bool:
    """Stop everything ``env`` runs and destroy its Terraform state (local environments)."""
    log = get_run_logger()
    config = load_config(config_path)
    if config.environment(env).platform != "local":
        raise ConfigError(
            f"environment {env!r} is a cluster: `inferops down` stops local environments only. "
            "A cluster's infrastructure changes through a reviewed plan (`inferops provision`)"
        )
    stopped = False
    try:
        stopped = LocalPlatform(open_target(config, env).local).stop()
    except Exception as exc:  # not provisioned: nothing runs, still destroy the state
        log.info("nothing running for %s (%s)", env, exc)
    destroy(config, env)
    retire_outputs(config, env)
    log.info("environment %s is down; its GitOps history is kept", env)
    return stopped
