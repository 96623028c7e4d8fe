"""One place that maps an environment of inferops.yaml to its clients.

A ``Target`` is everything a flow needs to act on one environment: its
configuration, the GitOps repository, the platform, where to send load and the
metrics provider. A local environment's come from its provisioned layout (the
Terraform outputs saved by ``provision``); a cluster's from the cluster section
of inferops.yaml. Nothing here runs at import time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from inferops.analysis.spec import AnalysisSpec, parse_spec
from inferops.builders.local import REPOSITORY
from inferops.config import ClusterSettings, Config, ConfigError, Environment
from inferops.gitops import render
from inferops.gitops.manifests import ManifestError, image_version
from inferops.gitops.repo import GitOpsRepo
from inferops.gitops.validate import Problem, format_problems, validate
from inferops.lock import EnvironmentLock, Hold
from inferops.metrics import MetricsProvider, provider_for
from inferops.platforms.base import Platform
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


def accepts(url: str, timeout_s: float = 1.0) -> bool:
    """Whether the host and port of ``url`` accept a TCP connection now."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Target:
    """One environment, wired to its clients: the local platform's processes, or a cluster.

    The rollout sees only this: where to send load, where the metrics are, the GitOps
    repository and the platform that reports a commit live. ``layout`` is the local
    platform's description (None on a cluster).
    """

    name: str
    config: Config
    env: Environment
    state_dir: Path
    router_url: str
    """Where each step's load goes: nginx locally, the Ingress or Gateway's URL on a cluster."""
    prometheus_url: str
    scrape_interval_s: float
    canary_replicas: int
    stable_replicas: int | None
    """The stable track's replicas when the environment is seeded (None: as its manifests say)."""
    layout: LocalLayout | None = None

    @property
    def on_cluster(self) -> bool:
        """True when the environment runs on a Kubernetes cluster."""
        return self.env.platform == "kubernetes"

    @property
    def local(self) -> LocalLayout:
        """The local platform's layout; a ConfigError on a cluster environment."""
        if self.on_cluster or self.layout is None:
            raise ConfigError(f"environment {self.name!r} runs on a cluster, not on this machine")
        return self.layout

    def repo(self) -> GitOpsRepo:
        """The environment's GitOps repository; it refuses files that do not validate."""
        if self.on_cluster:
            return cluster_repo(self.config, self.name)
        lay = self.local
        return GitOpsRepo(
            lay.gitops_remote,
            lay.gitops_workdir,
            lay.gitops_branch,
            lay.gitops_path,
            check=manifest_check(self.config, self.name),
        )

    def platform(self, progress: Callable[[str], None] | None = None) -> Platform:
        """The platform that runs what the repository says; ``progress`` hears a cluster's waits."""
        if self.on_cluster:
            from inferops.platforms.kubernetes import GitOpsCluster

            return GitOpsCluster(cluster_platform(self.config, self.name), self.repo(), progress)
        return LocalPlatform(self.local)

    def metrics(self) -> MetricsProvider:
        """The metrics provider the judge reads."""
        return provider_for(self.env.metrics, base_url=self.prometheus_url)

    def track_labels(self, track: str, image: str | None = None) -> dict[str, str]:
        """The labels that select one track's series (and, with ``image``, its version's).

        Locally every series carries env, track and version; on a cluster the
        ServiceMonitor gives namespace, track and version (from the pods' labels).
        """
        if self.on_cluster:
            labels = {"namespace": _cluster_section(self.config, self.name).namespace}
        else:
            labels = {"env": self.name}
        labels["track"] = track
        if image is not None:
            labels["version"] = image_version(image)
        return labels

    def outage(self) -> str | None:
        """What is down when the environment cannot serve right now, else None.

        It cannot serve when its router refuses connections. Locally it cannot either
        when its agent is gone (nothing will start anything again) and no stable pod
        answers behind the router; the reason then names all that is gone, the Prefect
        server included.
        """
        router = accepts(self.router_url)
        if self.on_cluster or self.layout is None:
            return None if router else f"the router at {self.router_url} refuses connections"
        platform = LocalPlatform(self.layout)
        agent = platform.keeper_pid() is not None or platform.agent_pid() is not None
        if router and agent:
            return None
        found = [] if router else [f"the router at {self.router_url} refuses connections"]
        if not agent:
            pods = [p for p in platform.status().pods if p.get("track") == "stable"]
            if router and any(p.get("answering") for p in pods):
                return None  # it serves; a release finds the agent gone when it waits
            found += ["the local agent is not running", "no stable pod answers"]
        if self.layout.prefect_enabled and not accepts(self.layout.prefect_api_url):
            found.append(f"its Prefect server at {self.layout.prefect_api_url} is gone")
        return ", ".join(found)

    def slos(self) -> AnalysisSpec:
        """The checks a canary must pass (the environment's SLO file)."""
        return load_slos(self.config.path(self.env.slo_file))

    def lock_path(self) -> Path:
        """The file that holds a local environment's release lock."""
        return self.state_dir / "release.lock"

    def lock(self, holder: str) -> AbstractContextManager[Hold]:
        """Hold the environment for one release, or EnvironmentBusy naming who holds it.

        Locally a file lock; on a cluster a Lease in its namespace, which holds across
        every machine that releases to it.
        """
        if self.on_cluster:
            from inferops.platforms.kubernetes_lease import ReleaseLease

            namespace = _cluster_section(self.config, self.name).namespace
            api = cluster_platform(self.config, self.name).api
            return ReleaseLease(api, namespace, self.name, holder)
        return EnvironmentLock(self.lock_path(), self.name, holder)


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


def _cluster_section(config: Config, name: str) -> ClusterSettings:
    """The cluster section of an environment on Kubernetes, or a ConfigError saying what to add."""
    env = config.environment(name)
    if env.platform != "kubernetes":
        raise ConfigError(f"environment {name!r} runs on {env.platform}, not on a cluster")
    if env.cluster is None:
        raise ConfigError(
            f"environment {name!r} has no cluster section in inferops.yaml: add its kubeconfig "
            "context and controller (once `inferops provision` has made the cluster)"
        )
    return env.cluster


def cluster_platform(config: Config, name: str) -> KubernetesPlatform:
    """The platform driver of a cluster environment, connected with its kubeconfig."""
    # The Kubernetes client is imported only by the commands that reach a cluster.
    from inferops.platforms.kubernetes import KubernetesPlatform, KubernetesTarget

    cluster = _cluster_section(config, name)
    target = KubernetesTarget(
        namespace=cluster.namespace,
        controller=cluster.controller,
        app=cluster.app,
        router=config.environment(name).router,
    )
    kubeconfig = None if cluster.kubeconfig is None else config.path(cluster.kubeconfig)
    return KubernetesPlatform.connect(target, kubeconfig, cluster.context, cluster.in_cluster)


def cluster_repo(config: Config, name: str) -> GitOpsRepo:
    """A cluster environment's GitOps repository on its Git host, checked on every commit."""
    cluster = _cluster_section(config, name)
    if cluster.gitops_url is None:
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
    """The wired environment, or NotProvisioned (ConfigError on a cluster) saying what to do.

    With ``destroyed_ok`` a local environment that was brought down is opened from
    its last outputs, for reading what it left (its GitOps history).
    """
    env = config.environment(name)
    if env.platform == "kubernetes":
        return _cluster_target(config, name)
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
    return Target(
        name,
        config,
        env,
        state_dir=layout.state_dir,
        router_url=layout.router_url,
        prometheus_url=layout.prometheus_url,
        scrape_interval_s=layout.scrape_interval_s,
        canary_replicas=layout.canary_replicas,
        stable_replicas=layout.stable_replicas,
        layout=layout,
    )


def _cluster_target(config: Config, name: str) -> Target:
    """A cluster environment's target, from its cluster section; it must say where to load."""
    env = config.environment(name)
    cluster = _cluster_section(config, name)
    missing = [
        key for key in ("endpoint", "prometheus_url", "gitops_url") if getattr(cluster, key) is None
    ]
    if missing:
        needs = ", ".join(f"cluster.{key}" for key in missing)
        raise ConfigError(
            f"environment {name!r}: releasing to a cluster needs {needs} in inferops.yaml"
            " (the service's URL for the load, the Prometheus that scrapes it, "
            "and the GitOps repository the cluster syncs)"
        )
    assert cluster.endpoint is not None and cluster.prometheus_url is not None
    return Target(
        name,
        config,
        env,
        state_dir=config.env_state_dir(name),
        router_url=cluster.endpoint.rstrip("/"),
        prometheus_url=cluster.prometheus_url.rstrip("/"),
        scrape_interval_s=cluster.scrape_interval_s,
        canary_replicas=cluster.canary_replicas,
        stable_replicas=None,
    )


def image_repository(config: Config, name: str) -> str:
    """Where a cluster environment's images are pushed: the configured registry, or the
    repository its Terraform made (ECR's repository URL, Artifact Registry's URL)."""
    cluster = _cluster_section(config, name)
    if cluster.registry:
        return f"{cluster.registry.rstrip('/')}/{REPOSITORY}"
    try:
        outputs = json.loads((config.env_state_dir(name) / OUTPUTS_FILE).read_text())
    except (OSError, ValueError):
        outputs = {}
    if outputs.get("ecr_repository_url"):
        return str(outputs["ecr_repository_url"])
    if outputs.get("registry_url"):
        return f"{str(outputs['registry_url']).rstrip('/')}/{REPOSITORY}"
    raise ConfigError(
        f"environment {name!r} has no image registry: set cluster.registry in inferops.yaml, "
        f"or run `inferops provision --env {name}`, whose outputs name the repository it made"
    )
