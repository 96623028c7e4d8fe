"""One place that maps an environment of inferops.yaml to its clients.

A ``Target`` is everything a flow needs to act on one environment: its
configuration, its provisioned layout (from the Terraform outputs saved by
``provision``), the GitOps repository, the platform and the metrics provider.
Nothing here runs at import time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from inferops.analysis.spec import AnalysisSpec, parse_spec
from inferops.config import Config, ConfigError, Environment
from inferops.gitops import render
from inferops.gitops.manifests import ManifestError
from inferops.gitops.repo import GitOpsRepo
from inferops.gitops.validate import Problem, format_problems, validate
from inferops.metrics import MetricsProvider, provider_for
from inferops.platforms.layout import LocalLayout
from inferops.platforms.local import LocalPlatform
from inferops.terraform import Terraform, terraform_for

if TYPE_CHECKING:
    from inferops.platforms.kubernetes import KubernetesPlatform

OUTPUTS_FILE = "outputs.json"
LAST_OUTPUTS_FILE = "outputs.last.json"
CODE_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding prefect.yaml and flows/, where deployments are made from."""


class NotProvisioned(Exception):
    """The environment has no provisioned state yet."""


@dataclass(frozen=True)
class Target:
    """One environment, wired to its clients."""

    name: str
    config: Config
    env: Environment
    layout: LocalLayout

    @property
    def state_dir(self) -> Path:
        """The environment's state folder."""
        return self.layout.state_dir

    def repo(self) -> GitOpsRepo:
        """The environment's GitOps repository; it refuses files that do not validate."""
        lay = self.layout
        return GitOpsRepo(
            lay.gitops_remote,
            lay.gitops_workdir,
            lay.gitops_branch,
            lay.gitops_path,
            check=manifest_check(self.config, self.name),
        )

    def platform(self) -> LocalPlatform:
        """The platform that runs what the repository says."""
        return LocalPlatform(self.layout)

    def metrics(self) -> MetricsProvider:
        """The metrics provider the judge reads."""
        return provider_for(self.env.metrics, base_url=self.layout.prometheus_url)

    def slos(self) -> AnalysisSpec:
        """The checks a canary must pass (the environment's SLO file)."""
        return load_slos(self.config.path(self.env.slo_file))

    def lock_path(self) -> Path:
        """The file that holds the environment's release lock."""
        return self.state_dir / "release.lock"


@dataclass(frozen=True)
class Stack:
    """An environment's Terraform: the runner, its variables and its backend."""

    tf: Terraform
    variables: dict[str, Any]
    backend_config: dict[str, str] | None
    """What ``init`` passes as ``-backend-config``; None keeps the state in the work dir."""

    def init(self) -> None:
        """Initialise the working folder against the environment's state backend."""
        self.tf.init(self.backend_config)


def terraform_work_dir(config: Config, name: str) -> Path:
    """Where the environment's Terraform writes: its data, local state and plan files."""
    return config.env_state_dir(name) / "terraform"


def terraform_of(config: Config, name: str) -> Stack:
    """The environment's Terraform, working under its state folder, with its variables."""
    settings = config.environment(name).terraform
    work_dir = terraform_work_dir(config, name)
    work_dir.mkdir(parents=True, exist_ok=True)
    tf = terraform_for(config.path(settings.module), work_dir, settings.binary)
    variables: dict[str, Any] = {
        "environment": name,
        "state_dir": str(config.env_state_dir(name)),
        **settings.variables,
    }
    backend = settings.backend
    backend_config = None if backend.type == "local" else dict(backend.config)
    return Stack(tf, variables, backend_config)


def manifest_files(config: Config, name: str) -> dict[str, str]:
    """The environment's manifests as its GitOps repository holds them, rendered."""
    settings = config.environment(name).manifests
    source = config.path(settings.source)
    if settings.renderer == "kustomize":
        return render.split_objects(render.render_kustomize(source))
    if settings.renderer == "helm":
        assert settings.values is not None  # the configuration requires it
        return render.split_objects(render.render_helm(source, config.path(settings.values)))
    if not source.is_dir():
        raise ConfigError(f"environment {name!r}: manifests.source {source} is not a folder")
    return {
        path.name: path.read_text()
        for path in sorted(source.iterdir())
        if path.is_file() and path.suffix in (".yaml", ".yml")
    }


def manifest_problems(config: Config, name: str, files: Mapping[str, str]) -> list[Problem]:
    """What is wrong with ``files`` for the environment: schemas, then its policies."""
    settings = config.environment(name).manifests
    return validate(files, version=settings.kubernetes_version, checkov=settings.policies)


def manifest_check(config: Config, name: str) -> Callable[[Mapping[str, str]], None]:
    """The check a GitOps commit passes first: valid objects, or ManifestError naming them."""

    def check(files: Mapping[str, str]) -> None:
        problems = manifest_problems(config, name, files)
        if problems:
            version = config.environment(name).manifests.kubernetes_version
            raise ManifestError(
                f"refusing to commit manifests that do not validate for Kubernetes {version} "
                f"(nothing was committed):\n{format_problems(problems)}"
            )

    return check


def cluster_platform(config: Config, name: str) -> KubernetesPlatform:
    """The platform driver of a cluster environment, connected with its kubeconfig."""
    # The Kubernetes client is imported only by the commands that reach a cluster.
    from inferops.platforms.kubernetes import KubernetesPlatform, KubernetesTarget

    env = config.environment(name)
    if env.platform != "kubernetes":
        raise ConfigError(f"environment {name!r} runs on {env.platform}, not on a cluster")
    if env.cluster is None:
        raise ConfigError(
            f"environment {name!r} has no cluster section in inferops.yaml: add its kubeconfig "
            "context and controller (once `inferops provision` has made the cluster)"
        )
    cluster = env.cluster
    target = KubernetesTarget(
        namespace=cluster.namespace,
        controller=cluster.controller,
        app=cluster.app,
        router=env.router,
    )
    kubeconfig = None if cluster.kubeconfig is None else config.path(cluster.kubeconfig)
    return KubernetesPlatform.connect(target, kubeconfig, cluster.context, cluster.in_cluster)


def cluster_repo(config: Config, name: str) -> GitOpsRepo:
    """A cluster environment's GitOps repository on its Git host, checked on every commit."""
    cluster = config.environment(name).cluster
    if cluster is None or cluster.gitops_url is None:
        raise ConfigError(
            f"environment {name!r} names no GitOps repository: set cluster.gitops_url "
            "(and gitops_branch, gitops_path) in inferops.yaml"
        )
    return GitOpsRepo(
        cluster.gitops_url,
        config.env_state_dir(name) / "gitops-work",
        cluster.gitops_branch,
        cluster.gitops_path or f"environments/{name}",
        check=manifest_check(config, name),
    )


def load_slos(path: Path) -> AnalysisSpec:
    """Read and validate an SLO file."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read SLO file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"SLO file {path} is not valid YAML: {exc}") from None
    return parse_spec(data, str(path))


def save_outputs(config: Config, name: str, outputs: dict[str, Any]) -> Path:
    """Record the Terraform outputs that describe a provisioned environment."""
    path = config.env_state_dir(name) / OUTPUTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outputs, indent=2))
    return path


def retire_outputs(config: Config, name: str) -> None:
    """Mark an environment destroyed, keeping its last outputs for reading its history."""
    path = config.env_state_dir(name) / OUTPUTS_FILE
    if path.exists():
        path.replace(path.with_name(LAST_OUTPUTS_FILE))


def open_target(config: Config, name: str, destroyed_ok: bool = False) -> Target:
    """The wired environment, or NotProvisioned saying what to run.

    With ``destroyed_ok`` an environment that was brought down is opened from
    its last outputs, for reading what it left (its GitOps history).
    """
    env = config.environment(name)
    if env.platform != "local":
        raise ConfigError(
            f"environment {name!r} runs on {env.platform}: `inferops provision`, `render` "
            f"and `validate` work on it (`inferops provision --env {name}` makes its "
            "cluster), but the release commands drive only the local platform so far"
        )
    state = config.env_state_dir(name)
    candidates = [state / OUTPUTS_FILE] + ([state / LAST_OUTPUTS_FILE] if destroyed_ok else [])
    outputs = None
    for path in candidates:
        try:
            outputs = json.loads(path.read_text())
            break
        except (OSError, ValueError):
            continue
    if outputs is None:
        raise NotProvisioned(
            f"environment {name!r} is not provisioned: run `inferops up --env {name}`"
        ) from None
    layout = LocalLayout.from_outputs(
        outputs, CODE_ROOT, config.source.resolve(), env.prefect_server
    )
    return Target(name, config, env, layout)
