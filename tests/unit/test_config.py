"""inferops.yaml validation: the shipped file loads; bad files name the field."""

from pathlib import Path

import pytest

from inferops.config import ConfigError, load_config, parse_config
from inferops.environments import (
    NotProvisioned,
    Target,
    cluster_platform,
    image_repository,
    load_slos,
    open_target,
    save_outputs,
)

ROOT = Path(__file__).parents[2]


def test_the_shipped_configuration_and_slos_are_valid() -> None:
    config = load_config(ROOT / "inferops.yaml")
    env = config.environment("local")
    assert env.canary.steps == [10, 25, 50, 100]
    assert load_slos(config.path(env.slo_file)).min_requests >= 1
    assert config.path(env.canary.load_profile).is_file()


def parse(text: str):
    return parse_config(text, Path("inferops.yaml"), ROOT)


BASE = "environments:\n  local:\n    terraform: {module: terraform/environments/local}\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    canary: {steps: [10, 5, 100]}\n", "strictly increase"),
        ("    canary: {steps: [10, 50]}\n", "must be 100"),
        ("    canary: {window_s: -1}\n", "environments.local.canary.window_s"),
        ("    platform: mainframe\n", "environments.local.platform"),
        ("    colour: blue\n", "environments.local.colour"),
    ],
)
def test_invalid_configuration_names_the_field(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(BASE + extra)


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse("environments: [")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse("- a list")


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*local"):
        parse(BASE).environment("prod")


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "inferops.yaml")


def test_an_environment_that_was_never_provisioned(tmp_path: Path) -> None:
    config = parse_config(BASE + "state_dir: x\n", Path("inferops.yaml"), tmp_path)
    with pytest.raises(NotProvisioned, match="inferops up --env local"):
        open_target(config, "local")


def cloud(backend: str) -> str:
    return (
        "environments:\n  prod:\n    platform: kubernetes\n    terraform:\n"
        f"      module: terraform/environments/aws\n      cloud: aws\n      backend: {backend}\n"
    )


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("{type: s3, config: {bucket: b, key: k}}", "s3 backend needs config.region"),
        ("{type: s3, config: {bucket: b, key: k, region: r}}", "needs a lock"),
        ("{type: gcs, config: {prefix: p}}", "gcs backend needs config.bucket"),
        ("{type: local, config: {path: x}}", "local backend takes no config"),
        ("{type: azurerm}", "environments.prod.terraform.backend.type"),
    ],
)
def test_a_state_backend_without_what_it_needs_is_refused(backend: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(cloud(backend))


def test_the_shipped_cloud_environments_keep_remote_locked_state() -> None:
    config = load_config(ROOT / "inferops.yaml")
    aws = config.environment("aws").terraform
    assert (aws.cloud, aws.backend.type) == ("aws", "s3")
    assert "dynamodb_table" in aws.backend.config
    gcp = config.environment("gcp").terraform
    assert (gcp.cloud, gcp.backend.type) == ("gcp", "gcs")


def test_the_shipped_cluster_environments_open_as_release_targets() -> None:
    config = load_config(ROOT / "inferops.yaml")
    for name in ("aws", "gcp"):
        target = open_target(config, name)
        assert target.on_cluster and target.layout is None
        assert target.router_url == "https://inference.example.com"
        assert target.track_labels("canary", "r/x@sha256:" + "a" * 64) == {
            "namespace": "inferops",
            "track": "canary",
            "version": "a" * 12,
        }
        assert target.track_labels("stable") == {"namespace": "inferops", "track": "stable"}
        assert target.repo().path == f"environments/{name}"
    with pytest.raises(ConfigError, match="runs on a cluster"):
        _ = open_target(config, "aws").local


CLUSTER = (
    "state_dir: state\n"
    "environments:\n  dev:\n    platform: kubernetes\n"
    "    terraform: {module: terraform/environments/aws, cloud: aws}\n"
    "    cluster: {context: dev, gitops_url: 'file:///srv/gitops.git'%s}\n"
)


def test_releasing_to_a_cluster_needs_where_to_send_load_and_read_metrics() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.endpoint, cluster\.prometheus_url"):
        open_target(parse(CLUSTER % ""), "dev")
    with pytest.raises(ConfigError, match=r"environments\.dev\.cluster\.endpoint"):
        parse(CLUSTER % ", endpoint: inference.example.com")
    target = open_target(
        parse(CLUSTER % ", endpoint: 'http://lb:8080/', prometheus_url: 'http://prom:9090'"),
        "dev",
    )
    assert (target.router_url, target.prometheus_url) == ("http://lb:8080", "http://prom:9090")
    assert (target.scrape_interval_s, target.canary_replicas, target.stable_replicas) == (
        15.0,
        1,
        None,
    )


def test_the_image_repository_is_configured_or_the_one_terraform_made(tmp_path: Path) -> None:
    where = ", endpoint: 'http://lb', prometheus_url: 'http://prom'"
    config = parse_config(CLUSTER % where, Path("inferops.yaml"), tmp_path)
    with pytest.raises(ConfigError, match=r"set cluster\.registry"):
        image_repository(config, "dev")
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/inferops/service"
    save_outputs(config, "dev", {"ecr_repository_url": ecr})
    assert image_repository(config, "dev") == ecr
    save_outputs(config, "dev", {"registry_url": "us-central1-docker.pkg.dev/acme/inferops"})
    assert image_repository(config, "dev") == (
        "us-central1-docker.pkg.dev/acme/inferops/inferops-service"
    )
    configured = parse_config(
        CLUSTER % (where + ", registry: 'registry.example/team/'"), Path("inferops.yaml"), tmp_path
    )
    assert image_repository(configured, "dev") == "registry.example/team/inferops-service"


def test_a_local_target_selects_its_series_by_environment_and_version(tmp_path: Path) -> None:
    local = load_config(ROOT / "inferops.yaml")
    target = Target(
        "local",
        local,
        local.environment("local"),
        state_dir=tmp_path,
        router_url="http://127.0.0.1:1",
        prometheus_url="http://127.0.0.1:2",
        scrape_interval_s=1.0,
        canary_replicas=2,
        stable_replicas=2,
    )
    assert target.track_labels("canary", "inferops-service@sha256:" + "b" * 64) == {
        "env": "local",
        "track": "canary",
        "version": "b" * 12,
    }
    assert target.track_labels("stable") == {"env": "local", "track": "stable"}


def test_a_cluster_section_is_only_for_kubernetes_and_is_needed_to_reach_one() -> None:
    with pytest.raises(ConfigError, match="for platform kubernetes only"):
        parse(BASE + "    cluster: {context: prod}\n")
    config = parse(
        "environments:\n  prod:\n    platform: kubernetes\n"
        "    terraform: {module: terraform/environments/aws, cloud: aws}\n"
    )
    with pytest.raises(ConfigError, match="no cluster section"):
        cluster_platform(config, "prod")
