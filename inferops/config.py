"""inferops.yaml: the one file that says what each environment is made of.

The file is validated completely before anything runs; an error names the
field and says what is allowed. Paths in the file are relative to the file's
folder. Secrets never live here: they come from the environment or Prefect
blocks at run time.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG = "inferops.yaml"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class ConfigError(Exception):
    """inferops.yaml (or a file it names) is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# What each remote state backend needs at init (partial configuration), and the key that
# locks the state: DynamoDB (or S3's own lock file) for s3; GCS locks by itself.
_BACKEND_KEYS: dict[str, tuple[str, ...]] = {
    "local": (),
    "s3": ("bucket", "key", "region"),
    "gcs": ("bucket",),
}


class BackendSettings(_Strict):
    """Where Terraform keeps the environment's state, and how it is locked."""

    type: Literal["local", "s3", "gcs"] = Field(
        default="local",
        description="local: a file under the environment's state folder; s3: an S3 "
        "bucket locked by a DynamoDB table (dynamodb_table) or S3's lock file "
        "(use_lockfile: 'true'); gcs: a GCS bucket (it locks by itself).",
    )
    config: dict[str, str] = Field(
        default_factory=dict,
        description="The backend's settings, passed to `terraform init -backend-config`.",
    )

    @model_validator(mode="after")
    def _complete(self) -> BackendSettings:
        missing = [key for key in _BACKEND_KEYS[self.type] if not self.config.get(key)]
        if missing:
            raise ValueError(f"the {self.type} backend needs config.{', config.'.join(missing)}")
        if (
            self.type == "s3"
            and "dynamodb_table" not in self.config
            and self.config.get("use_lockfile") != "true"
        ):
            raise ValueError(
                "the s3 backend needs a lock: set config.dynamodb_table (a DynamoDB table "
                "with a LockID string key) or config.use_lockfile: 'true'"
            )
        if self.type == "local" and self.config:
            raise ValueError("the local backend takes no config: its state lives in state_dir")
        return self


class TerraformSettings(_Strict):
    """Where the environment's Terraform lives and how to run it."""

    module: Path = Field(description="Terraform root module of the environment.")
    binary: str | None = Field(
        default=None,
        description="A terraform or tofu binary to use; unset uses the embedded Terraform.",
    )
    cloud: Literal["local", "aws", "gcp"] = Field(
        default="local",
        description="Whose credentials the module needs (checked before Terraform runs) and "
        "whose list prices its plan is costed at.",
    )
    backend: BackendSettings = Field(default_factory=BackendSettings)
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)


class CapacitySettings(_Strict):
    """What the service runs on, for planning steps on whole replicas and GPUs."""

    replica_rps: Annotated[float, Field(gt=0)] = Field(
        description="Requests per second one replica sustains within its SLOs."
    )
    peak_rps: Annotated[float, Field(gt=0)] = Field(description="Peak traffic to carry.")
    gpus_per_replica: Annotated[int, Field(ge=1)] = 1
    spare_gpus: Annotated[int, Field(ge=0)] = Field(
        default=0, description="GPUs beyond the stable's that the canary may use."
    )
    headroom: Annotated[float, Field(ge=0, le=5)] = 0.2


class CanaryPlan(_Strict):
    """How a canary advances: the traffic steps and how long each is judged."""

    steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(default=[10, 25, 50, 100])
    window_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0,
        description="Seconds of load between two looks of the judge, and the least time "
        "each step is judged (longer where the canary needs it to serve enough requests).",
    )
    warmup_s: Annotated[float, Field(ge=0, le=600)] = 1.0
    budget_s: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=1800.0,
        description="The release's time budget: a canary whose evidence stays unclear this "
        "long is rolled back, and a plan expected to need more than a third of it is refused "
        "before it starts, saying what traffic would make it fit.",
    )
    expected_rps: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="Total traffic through the router during a release (real plus the load "
        "generator's), for the plan, which refuses a release this traffic cannot judge in "
        "time; unset: on a cluster, the real traffic the metrics provider shows over the "
        "last 10 minutes, a lower bound the plan forecasts with but does not refuse on.",
    )
    live_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    load_profile: Path = Path("loadtests/profiles/step.yaml")
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=32, description="max_tokens of the load generator's requests."
    )
    capacity: CapacitySettings | None = Field(
        default=None,
        description="Plan steps on whole replicas within the GPUs held, scaling the stable "
        "down no faster than its share of traffic allows; unset keeps replicas fixed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_extensions" in data:
            raise ValueError(
                "max_extensions was replaced by budget_s, the release's time budget in seconds "
                "(each step now gathers evidence until it is clear, within that budget)"
            )
        return data

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("needs at least one step")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must strictly increase, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100 (full traffic), got {steps[-1]}")
        return steps


class ManifestSettings(_Strict):
    """What the environment's GitOps repository holds, and what a commit must pass."""

    source: Path = Field(
        default=Path("gitops/overlays/local"),
        description="The manifests' source: a folder of plain manifests, a kustomize "
        "overlay, or the Helm chart.",
    )
    renderer: Literal["plain", "kustomize", "helm"] = Field(
        default="plain",
        description="plain: the folder's files as they are; kustomize: `kubectl kustomize`; "
        "helm: `helm template` with the values files.",
    )
    values: Path | None = Field(
        default=None, description="The Helm values file of the environment (renderer helm)."
    )
    kubernetes_version: str = Field(
        default="1.33",
        pattern=r"^1\.[0-9]{2}$",
        description="The clusters' Kubernetes version: every commit is validated against "
        "its schemas.",
    )
    policies: bool = Field(
        default=True,
        description="Also run checkov's policies on every commit (a few seconds each); the "
        "schemas are always checked.",
    )

    @model_validator(mode="after")
    def _values_with_helm(self) -> ManifestSettings:
        if (self.values is not None) != (self.renderer == "helm"):
            raise ValueError("renderer helm takes a values file, and only it does")
        return self


class ClusterSettings(_Strict):
    """How the pipeline reaches a cluster environment, and what syncs it."""

    kubeconfig: Path | None = Field(
        default=None, description="A kubeconfig file; unset: KUBECONFIG or ~/.kube/config."
    )
    context: str | None = Field(default=None, description="The kubeconfig context to use.")
    in_cluster: bool = Field(
        default=False, description="Use the pod's service account (the pipeline runs inside)."
    )
    controller: Literal["argocd", "flux", "direct"] = Field(
        default="argocd",
        description="What applies the GitOps repository: an Argo CD Application, a Flux "
        "Kustomization, or the pipeline itself (server-side apply with prune).",
    )
    app: str = Field(
        default="inferops", description="The Argo CD Application or Flux Kustomization's name."
    )
    namespace: str = Field(default="inferops", description="The service's namespace.")
    gitops_url: str | None = Field(
        default=None,
        description="The GitOps repository on its Git host (https://, ssh://, git@host:), "
        "which the controller syncs.",
    )
    gitops_branch: str = Field(default="main", description="The branch the controller syncs.")
    gitops_path: str | None = Field(
        default=None, description="The environment's folder in it; unset: environments/<env>."
    )
    registry: str | None = Field(
        default=None,
        description="Where `build` pushes the image, as REGISTRY/inferops-service; unset: the "
        "repository the environment's Terraform made (ecr_repository_url or registry_url).",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The service's URL as clients reach it (the Ingress or Gateway host): "
        "each canary step's load goes there, so it must split traffic like production.",
    )
    prometheus_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="A Prometheus that scrapes the service through its ServiceMonitor; the "
        "judge reads both tracks there (series labelled namespace, track and version).",
    )
    scrape_interval_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=15.0,
        description="The ServiceMonitor's scrape interval: a window is read this long after "
        "it ends, twice over, so its last requests are in.",
    )
    canary_replicas: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Canary pods at each step (unless canary.capacity plans them)."
    )


class Environment(_Strict):
    """One place a release can go."""

    platform: Literal["local", "kubernetes"] = Field(
        default="local",
        description="local: processes on this machine; kubernetes: an EKS or GKE cluster "
        "(provisioned by its Terraform, reached through the cluster section).",
    )
    terraform: TerraformSettings
    metrics: Literal["prometheus"] = "prometheus"
    router: Literal["nginx", "gateway"] = Field(
        default="nginx",
        description="How canary traffic is split: nginx (a canary Ingress's weight; the "
        "local platform's nginx too) or gateway (a Gateway API HTTPRoute's weights).",
    )
    canary: CanaryPlan = Field(default_factory=CanaryPlan)
    slo_file: Path = Path("loadtests/slos.yaml")
    manifests: ManifestSettings = Field(default_factory=lambda: ManifestSettings())
    cluster: ClusterSettings | None = Field(
        default=None, description="How to reach the cluster (platform kubernetes)."
    )

    @model_validator(mode="after")
    def _cluster_only_for_kubernetes(self) -> Environment:
        # A cluster environment may have none yet: it is provisioned before it is reached.
        if self.cluster is not None and self.platform != "kubernetes":
            raise ValueError("a cluster section is for platform kubernetes only")
        return self

    prefect_server: bool = Field(
        default=True,
        description="Run a Prefect server and worker with the environment (local platform).",
    )


class Config(_Strict):
    """The whole inferops.yaml."""

    project: str = "inferops"
    service_source: Path = Field(
        default=Path("service"), description="Folder of the service to build."
    )
    state_dir: Path = Field(
        default=Path(".inferops"), description="Where environments keep their state."
    )
    environments: dict[str, Environment]
    root: Path = Field(default=Path("."), exclude=True)
    source: Path = Field(default=Path(DEFAULT_CONFIG), exclude=True)

    @field_validator("environments")
    @classmethod
    def _names(cls, envs: dict[str, Environment]) -> dict[str, Environment]:
        if not envs:
            raise ValueError("define at least one environment")
        for name in envs:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"environment name {name!r} must be lowercase letters, digits and '-'"
                )
        return envs

    def environment(self, name: str) -> Environment:
        """The named environment, or a ConfigError listing the known ones."""
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments))
            raise ConfigError(
                f"unknown environment {name!r}; inferops.yaml defines: {known}"
            ) from None

    def path(self, p: Path) -> Path:
        """A path from the file, resolved against the file's folder."""
        return p if p.is_absolute() else (self.root / p).resolve()

    def env_state_dir(self, name: str) -> Path:
        """The state folder of one environment."""
        return self.path(self.state_dir) / name


def _describe(err: ValidationError, source: Path) -> str:
    lines = [f"invalid {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_config(text: str, source: Path, root: Path) -> Config:
    """Parse and validate the text of an inferops.yaml."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping with an 'environments' key")
    try:
        return Config.model_validate({**data, "root": root, "source": root / source.name})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_config(path: Path | str | None = None) -> Config:
    """Load inferops.yaml (default: ./inferops.yaml; an empty path means the default)."""
    path = Path(path or DEFAULT_CONFIG)
    if not path.is_file():
        raise ConfigError(
            f"no {path} here: run inferops from the project folder or pass --config FILE"
        )
    return parse_config(path.read_text(), path, path.resolve().parent)
