"""Build the service at a git revision into a content-addressed image."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from inferops.builders.local import build as build_image
from inferops.builders.local import source_repo
from inferops.config import load_config


@flow(name="build")
def build(
    env: str = "local", version: str = "HEAD", config_path: str = "inferops.yaml"
) -> dict[str, str]:
    """Build ``service/`` at ``version``; returns the image (ref, digest, revision)."""
    config = load_config(config_path)
    images_dir = config.env_state_dir(env) / "images"
    repo, source = source_repo(config.path(config.service_source))
    image = build_image(repo, version, source, images_dir)
    get_run_logger().info("built %s from %s at %s", image.ref, image.source, image.revision[:12])
    return asdict(image)
