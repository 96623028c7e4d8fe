"""Build the service at a git revision: a content-addressed artifact, or a pushed OCI image.

A local environment runs the reproducible source artifact; a cluster environment
runs the image Docker builds from that same artifact, pushed to its registry.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from inferops.builders.docker import DockerBuilder
from inferops.builders.local import build as build_image
from inferops.builders.local import source_repo
from inferops.config import load_config
from inferops.environments import image_repository


@flow(name="build")
def build(
    env: str = "local", version: str = "HEAD", config_path: str = "inferops.yaml"
) -> dict[str, str]:
    """Build ``service/`` at ``version``; returns the image (ref, digest, revision)."""
    log = get_run_logger()
    config = load_config(config_path)
    repo, source = source_repo(config.path(config.service_source))
    if config.environment(env).platform == "kubernetes":
        repository = image_repository(config, env)
        log.info("building %s at %s with docker for %s", source, version, repository)
        image = DockerBuilder(repository).build(repo, version, source)
    else:
        image = build_image(repo, version, source, config.env_state_dir(env) / "images")
    log.info("built %s from %s at %s", image.ref, image.source, image.revision[:12])
    return asdict(image)
